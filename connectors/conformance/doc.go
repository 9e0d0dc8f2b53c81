// Package conformance is the acceptance suite every connector runs: one
// driver per connector (in the connector's own tests) says how to build an
// instance and, where it can, how to read the target back; the suite runs
// every check the connector's capabilities allow.
//
// Sinks (RunSink): every sink is opened, written, flushed and closed with
// no goroutine and no Arrow memory left behind, within a bound. A sink the
// suite can read back must end with exactly the state its changes describe;
// replaying the batches after a checkpoint into a restarted instance must
// leave the same state; a dropped and re-created job (new job id) must load
// everything again. An exactly-once sink shows nothing before Commit,
// commits at Recover what the checkpoint prepared and discards later work.
// A sink that follows schema changes keeps data through ADD, RENAME and
// DROP COLUMN, and a replayed older schema never drops a column or nulls
// its values. The data holds unicode text (emoji, CJK, quotes,
// backslashes, tabs), NULLs and integers.
//
// Sources (RunSource): reopening at every position a batch carried yields
// exactly what followed it (the state the changes describe ends equal); a
// Read cut short by its context consumes nothing; Close leaks nothing.
//
// Transforms (RunTransform): a batch in, a batch out, ownership handed
// over, nothing leaked.
//
// Every type's exact round trip is checked per connector (mysqlcdc's type
// tests, the sinks' encoders), where the expected text of each type is
// known; the suite checks the shapes every connector shares.
package conformance
