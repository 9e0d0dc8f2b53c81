// Package exec is the worker runtime and, on the Raft leader, the
// coordinator: it reconciles the jobs in the catalog with the tasks running
// here, runs each task as a chain of stages exchanging Arrow batches through
// bounded queues, and keeps per job × table metrics.
//
// exec reads and writes the catalog only through the Catalog interface it
// defines, and builds connectors from a connectors.Registry. See DESIGN.md.
package exec
