// Package coordinator places jobs on nodes. It runs on the Raft leader
// only and writes each decision as one catalog command: a job's next
// attempt with the node and slot of every task, a job that waits for
// slots, or one refused. Workers (package exec) run what the catalog
// places on them; the catalog is the only interface between the two. See
// DESIGN.md.
package coordinator
