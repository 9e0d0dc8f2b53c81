package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CmdType numbers a replicated command. Numbers are only ever appended:
// a log written by an older version must decode forever.
type CmdType uint8

// FlagSkippable, set in the type byte of an entry, tells a node that does
// not know the command type (an older version during a rolling upgrade)
// that skipping it is safe: the command only refreshes advisory state
// (liveness) that no other command depends on. An unknown command without
// the flag stops the node instead of letting its state diverge.
const FlagSkippable = 0x80

// skippable lists the command types written with FlagSkippable.
var skippable = map[CmdType]bool{CmdSetNodeStatus: true}

// Command types.
const (
	CmdCreateJob          CmdType = 1
	CmdDropJob            CmdType = 2
	CmdSetJobState        CmdType = 3
	CmdAlterJob           CmdType = 4
	CmdAppendEvent        CmdType = 5
	CmdRegisterNode       CmdType = 6
	CmdCommitCheckpoint   CmdType = 7
	CmdFailCheckpoint     CmdType = 8
	CmdSetUsers           CmdType = 9
	CmdRemoveNode         CmdType = 10
	CmdSetNodeStatus      CmdType = 11
	CmdExpire             CmdType = 12
	CmdSetVerifications   CmdType = 13
	CmdCreateNotification CmdType = 14
	CmdDropNotification   CmdType = 15
	CmdNotified           CmdType = 16
)

// Domain errors returned by apply (and so by the client methods).
var (
	ErrJobExists     = errors.New("sync job already exists")
	ErrJobNotFound   = errors.New("sync job does not exist")
	ErrBadTransition = errors.New("job state does not allow this")
	ErrStaleAttempt  = errors.New("checkpoint from a stale attempt")
	ErrBadCheckpoint = errors.New("checkpoint refused")
	// ErrConflict: the command was computed from a state that changed
	// meanwhile (a read-modify-write lost its race); re-read and retry.
	ErrConflict = errors.New("changed concurrently")
	// ErrClaimTaken: a value that must be unique across jobs (a CDC
	// server_id) is already used by another job.
	ErrClaimTaken   = errors.New("already used by another job")
	ErrNodeNotFound = errors.New("node does not exist")
	// ErrBadPlacement: a placement that misses or repeats a task, names an
	// unknown node or a slot it does not have, or a slot another task holds.
	ErrBadPlacement = errors.New("placement refused")
)

// AtAttempt is SetJobState.Attempt for attempt n.
func AtAttempt(n int) *int { return &n }

// Meta is carried by every command. RequestID makes a retried command
// idempotent: the state machine remembers the outcome of the last
// MaxRequests request ids and answers a repeat with it instead of applying
// the command twice (a write whose outcome was unknown — leadership lost
// mid-apply — is retried with the same id).
type Meta struct {
	RequestID string `json:"rid,omitempty"`
}

func (m *Meta) meta() *Meta { return m }

// Claim is a value one job holds exclusively (an option marked Unique, such
// as a CDC server_id). CREATE is refused inside the state machine when
// another job holds the same claim, whatever a node's local copy said.
type Claim struct {
	Kind      string `json:"kind"` // source | sink | transform
	Connector string `json:"connector"`
	Option    string `json:"option"`
	Value     string `json:"value"`
}

// CreateJob adds a job in state CREATED.
type CreateJob struct {
	Meta
	Name        string    `json:"name"`
	SQL         string    `json:"sql"`
	Spec        JobSpec   `json:"spec"`
	Plan        Plan      `json:"plan"`
	IfNotExists bool      `json:"if_not_exists,omitempty"`
	Claims      []Claim   `json:"claims,omitempty"`
	Time        time.Time `json:"time"`
}

// DropJob removes a job.
type DropJob struct {
	Meta
	Name     string    `json:"name"`
	IfExists bool      `json:"if_exists,omitempty"`
	Time     time.Time `json:"time"`
	Rows     int64     `json:"rows,omitempty"` // rows the job wrote, for its history entry
}

// SetVerifications records a CHECKSUM SYNC JOB run: its chunks replace
// those of the same job and tables from earlier runs.
type SetVerifications struct {
	Meta
	JobID  uint64         `json:"job_id"`
	Tables []string       `json:"tables"`
	Chunks []Verification `json:"chunks"`
}

// CreateNotification adds a webhook; it delivers events from the next
// one on.
type CreateNotification struct {
	Meta
	Notification Notification `json:"notification"`
	IfNotExists  bool         `json:"if_not_exists,omitempty"`
}

// DropNotification removes a webhook.
type DropNotification struct {
	Meta
	Name     string `json:"name"`
	IfExists bool   `json:"if_exists,omitempty"`
}

// Notified moves a webhook's cursor: every event up to Seq is delivered
// (or skipped). It never moves back.
type Notified struct {
	Meta
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"` // of the webhook meant (a re-created one is another)
	Seq       uint64    `json:"seq"`
}

// Expire drops job history entries that ended, and events that happened,
// before Before (the leader writes it as history.retention passes).
type Expire struct {
	Meta
	Before time.Time `json:"before"`
}

// SetJobState moves a job from one of From (any state when empty) to To.
// It is a compare-and-set: a coordinator that decided on stale state, or a
// user who raced it, gets ErrBadTransition instead of a lost update.
type SetJobState struct {
	Meta
	Name string `json:"name"`
	// JobID, when set, must match: a job dropped and re-created under the
	// same name is a different job.
	JobID uint64     `json:"job_id,omitempty"`
	From  []JobState `json:"from,omitempty"`
	To    JobState   `json:"to"`
	Error string     `json:"error,omitempty"` // the new error ("" clears it)
	// Rows the job wrote, for the history entry a move to FINISHED or
	// FAILED records.
	Rows        int64 `json:"rows,omitempty"`
	IncRestarts bool  `json:"inc_restarts,omitempty"`
	// NewAttempt starts a new attempt: tasks about to run take its number,
	// and checkpoints of earlier attempts are refused from now on.
	NewAttempt bool `json:"new_attempt,omitempty"`
	// Attempt, when set, fences the change: it is refused with
	// ErrStaleAttempt unless the job's current attempt is *Attempt. The
	// executor sets it on every change it makes (the attempt its run
	// belongs to, or the one it read before starting a new one), so a
	// zombie — an old leader or a worker that was paused and came back —
	// cannot change the state of a job another attempt now runs. Users'
	// statements (PAUSE, RESUME) leave it nil.
	Attempt *int `json:"attempt,omitempty"`
	// Placement, with NewAttempt, places every task of the new attempt
	// (checked: each task once, on a registered node, in a slot no other
	// task holds). A new attempt without it has none; leaving the active
	// states clears it.
	Placement []TaskPlacement `json:"placement,omitempty"`
	Reason    string          `json:"reason,omitempty"` // message of the event recorded
	Time      time.Time       `json:"time"`
}

// AlterJob replaces a job's WITH options (and the plan derived from them).
type AlterJob struct {
	Meta
	Name    string            `json:"name"`
	Options map[string]string `json:"options"`
	Plan    Plan              `json:"plan"`
	SQL     string            `json:"sql"`
	// Version, when set, is the job version the options were merged from:
	// the change is refused with ErrConflict if the job changed since.
	Version uint64    `json:"version,omitempty"`
	Time    time.Time `json:"time"`
}

// SetUsers replaces the user and grant tables (the MySQL user database,
// serialised by the SQL front) — passwords only as their native hash. Base
// is the users version the tables were derived from: a change made on a
// stale copy is refused with ErrConflict instead of losing another node's.
type SetUsers struct {
	Meta
	Data []byte    `json:"data"`
	Base uint64    `json:"base"`
	Time time.Time `json:"time"`
}

// RemoveNode deletes a member's record (after its removal from Raft).
type RemoveNode struct {
	Meta
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// SetNodeStatus records a change of a node's liveness as the leader sees
// it (UP, SUSPECT, DOWN). Only changes are written, never heartbeats.
type SetNodeStatus struct {
	Meta
	ID     string    `json:"id"`
	Status string    `json:"status"`
	Seen   time.Time `json:"seen"` // last heartbeat the leader received
	Time   time.Time `json:"time"`
}

// AppendEvent records an event.
type AppendEvent struct {
	Meta
	Event Event `json:"event"` // Seq is assigned by apply
}

// RegisterNode records (or updates) a cluster member.
type RegisterNode struct {
	Meta
	Node Node `json:"node"`
}

// CommitCheckpoint records a completed checkpoint of one pipeline. It is
// refused unless the job still exists with JobID, Attempt is the job's
// current attempt, the id is above every recorded one, and there is exactly
// one task state per task of the pipeline. Retained bounds the completed
// checkpoints kept (older ones are removed).
type CommitCheckpoint struct {
	Meta
	Checkpoint Checkpoint `json:"checkpoint"`
	Retained   int        `json:"retained"`
}

// FailCheckpoint records a checkpoint that failed or timed out. It never
// touches completed checkpoints, and is refused (ErrStaleAttempt) from an
// attempt other than the job's current one.
type FailCheckpoint struct {
	Meta
	Checkpoint Checkpoint `json:"checkpoint"`
}

// Result is what a successful apply returns.
type Result struct {
	Job     *Job   // the job after the change (nil for drop and non-job commands)
	Applied bool   // false when IF [NOT] EXISTS made the command a no-op
	Index   uint64 // Raft index of the entry that decided it (set by the client)
}

// Encode frames a command as it enters the Raft log (for tools and tests
// that send one through a Forwarder themselves).
func Encode(t CmdType, v any) ([]byte, error) { return encode(t, v) }

// encode frames a command: one type byte (with FlagSkippable for the
// types that carry it), then JSON.
func encode(t CmdType, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("catalog: encode command %d: %w", t, err)
	}
	b := byte(t)
	if skippable[t] {
		b |= FlagSkippable
	}
	return append([]byte{b}, body...), nil
}
