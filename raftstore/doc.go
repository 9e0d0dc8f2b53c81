// Package raftstore runs hashicorp/raft over real TCP with raft-boltdb as the
// log and stable store and a file snapshot store, all under one data
// directory. It opens, bootstraps a single-node cluster on first start,
// recovers on restart, and applies opaque commands with a context.
//
// It knows nothing of jobs: the state machine (package catalog) is handed in
// as a raft.FSM. It is the one place that turns a context into Raft timeouts.
package raftstore
