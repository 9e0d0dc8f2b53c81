package connectors

import "time"

// Table phases as a source reports them (sluice.job_tables adds PAUSED
// and ERROR from the job's state).
const (
	PhaseSnapshot  = "SNAPSHOT"  // the initial snapshot has yet to read (all of) the table
	PhaseStreaming = "STREAMING" // the table's snapshot is done (or none was asked for); changes follow
	PhaseDone      = "DONE"      // a bounded source read all of the table
)

// TableState is a source's account of one table it reads.
type TableState struct {
	Table TableID
	Phase string
	// Snapshot progress. Snapshot is false when the source takes no
	// snapshot of the table (or no longer knows its figures: a restart
	// after the snapshot ended). RowsTotal is an estimate from the
	// source's statistics until Exact (the table's snapshot is done).
	Snapshot                bool
	RowsDone, RowsTotal     int64
	ChunksDone, ChunksTotal int64
	Exact                   bool
	// LastEventAt is the source commit time of the last change of the
	// table the source read (zero: none since it started).
	LastEventAt time.Time
}

// SourceStatus is what a Reporter says about the source as a whole.
type SourceStatus struct {
	// CurrentAt: every change committed at the source before this time
	// has been read (now, while the reader waits for the next change).
	CurrentAt time.Time
	// Head is the source's newest position (its binlog head), in the
	// same notation as its checkpointed positions; empty if unknown.
	Head string
}

// Reporter is a source that reports per-table progress for the system
// tables. Both methods may be called from any goroutine, at any time
// between Open and Close, and must not block on the data path.
type Reporter interface {
	TableStates() []TableState
	Status() SourceStatus
}

// SourceClock is a source that knows how current its position is. The
// engine calls SourceTime at a barrier, from the goroutine that calls
// Read, right after Position: every change committed at the source before
// the returned time is covered by that position (zero: unknown, the
// engine takes the last batch's event time). The checkpoint stores it, so
// lag can be told from the last checkpoint the target has.
type SourceClock interface {
	SourceTime() time.Time
}

// RetentionInfo is a source server's purge forecast for one position
// (sluice.binlog_risk).
type RetentionInfo struct {
	Server       string        // host:port
	Oldest       string        // the oldest log the server still has
	Head         string        // the server's newest position
	Position     string        // the position examined, in the server's terms
	BytesBehind  int64         // log bytes from the position to the head
	BytesToPurge int64         // retained bytes older than what the position needs (purged before it)
	Retention    time.Duration // the server's time-based retention (0: none)
	// PurgeAt: the earliest time the server may purge what the position
	// needs (zero: no time-based purge). Purged: it is gone already.
	PurgeAt time.Time
	Purged  bool
}
