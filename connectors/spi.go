package connectors

import (
	"context"
	"errors"
	"log/slog"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// Sentinel errors of the SPI.
var (
	ErrBadBatch          = errors.New("malformed batch")
	ErrUnknownConnector  = errors.New("unknown connector")
	ErrUnknownOption     = errors.New("unknown option")
	ErrMissingOption     = errors.New("missing required option")
	ErrBadOptionValue    = errors.New("invalid option value")
	ErrDuplicateRegister = errors.New("connector registered twice")
	// ErrUnreachable: a source or target could not be reached or refused
	// the credentials. ErrPrecondition: it was reached but cannot serve the
	// job as configured (binlog off, missing privilege, unknown table, …).
	// Checks at CREATE return them; the message says what to fix.
	ErrUnreachable  = errors.New("cannot connect")
	ErrPrecondition = errors.New("not usable as configured")
)

// Env is what the engine tells a connector instance about where it runs.
type Env struct {
	Job         string
	JobID       uint64 // unique for the catalog's lifetime; sources derive ids from it
	Attempt     int    // the job's run number; sinks put it in transaction labels
	Pipeline    int    // the pipeline of the job this instance runs in
	Subtask     int    // 0-based index of this parallel instance
	Parallelism int    // number of parallel instances of the vertex
	// LastCheckpointID is the highest checkpoint id the catalog recorded
	// for the pipeline (committed or failed) when the task was built; 0 if
	// unknown. Checkpoints after the one a sink recovers from, up to here
	// and one more (in flight at a crash), may have left pre-commits.
	LastCheckpointID uint64
	Alloc            memory.Allocator
	Logger           *slog.Logger
}

// Source produces batches.
//
// Read blocks until a batch is ready, the context ends, or the input is
// exhausted (io.EOF; only bounded sources return it). A Read cut short by
// its context consumes nothing: the engine cancels reads to take
// checkpoints and calls Read again. Each batch carries the
// Position just after it; Open(ctx, pos) resumes right after that batch.
type Source interface {
	Open(ctx context.Context, from Position) error
	Read(ctx context.Context) (Batch, error)
	Close() error
}

// Sink consumes batches. Write does not take ownership of the batch: a sink
// that keeps a record past Write must Retain it. Flush makes everything
// written so far durable at the target.
type Sink interface {
	Open(ctx context.Context) error
	Write(ctx context.Context, b Batch) error
	Flush(ctx context.Context) error
	Close() error
}

// TwoPhaseSink is a sink that takes part in checkpoints, for exactly-once
// delivery. The engine calls, in its sink goroutine:
//   - Recover once after Open, before any Write, with the last checkpoint
//     committed in the catalog (0 and nil when there is none) and the state
//     this task returned for it: make everything pre-committed up to that id
//     visible, and discard anything newer or not pre-committed (the source
//     replays it).
//   - PreCommit at a checkpoint barrier: make everything written since the
//     last barrier durable but not visible; the returned state is stored in
//     the checkpoint.
//   - Commit once the checkpoint is committed in the catalog: make every
//     pre-commit up to that id visible. Commit must be idempotent.
type TwoPhaseSink interface {
	Sink
	Recover(ctx context.Context, checkpointID uint64, state []byte) error
	PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error)
	Commit(ctx context.Context, checkpointID uint64, state []byte) error
}

// Drainer is a sink that may hold rows across checkpoints (a TwoPhaseSink
// returning them in its PreCommit state, to keep loads per target table
// infrequent). At a final barrier — the job finishing, pausing or being
// dropped — the engine calls Drain instead of Flush: write everything.
type Drainer interface {
	Drain(ctx context.Context) error
}

// PositionAcker is a source that wants to know when positions are safe:
// everything up to pos is committed at the sink and in the catalog, so the
// source may release it upstream. Ack may be called from another goroutine.
type PositionAcker interface {
	Ack(ctx context.Context, pos Position) error
}

// Positioner is a source whose position can move without a batch: a binlog
// reader skipping other tables' changes, or following heartbeats. The
// engine calls Position at a barrier, from the goroutine that calls Read.
// The result covers everything Read has returned and nothing it has not;
// nil means "the last batch's position".
type Positioner interface {
	Position() Position
}

// Transform rewrites batches one at a time. It receives ownership of in and
// returns ownership of the result (which may be in itself). On error it
// returns the batch it still holds, for the caller to release.
type Transform interface {
	Apply(ctx context.Context, in Batch) (Batch, error)
}

// Checker verifies at CREATE time what can be verified before a job runs:
// reachability, credentials, server settings, tables. It returns errors
// wrapping ErrUnreachable or ErrPrecondition, or an *OptionError.
type Checker func(ctx context.Context, cfg Config) error

// Factories build connector instances from validated options.
type (
	SourceFactory    func(cfg Config, env Env) (Source, error)
	SinkFactory      func(cfg Config, env Env) (Sink, error)
	TransformFactory func(cfg Config, env Env) (Transform, error)
)
