// Package catalog is sluice's replicated state machine: jobs (spec, plan,
// state, error, restart count), cluster nodes and the event log. Every change
// is a numbered command applied through Raft (package raftstore) in the same
// order on every node; reads come from the local copy.
//
// See DESIGN.md in this directory for the commands, the invariants and the
// locking.
package catalog
