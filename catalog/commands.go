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

// Command types.
const (
	CmdCreateJob        CmdType = 1
	CmdDropJob          CmdType = 2
	CmdSetJobState      CmdType = 3
	CmdAlterJob         CmdType = 4
	CmdAppendEvent      CmdType = 5
	CmdRegisterNode     CmdType = 6
	CmdCommitCheckpoint CmdType = 7
	CmdFailCheckpoint   CmdType = 8
)

// Domain errors returned by apply (and so by the client methods).
var (
	ErrJobExists     = errors.New("sync job already exists")
	ErrJobNotFound   = errors.New("sync job does not exist")
	ErrBadTransition = errors.New("job state does not allow this")
	ErrStaleAttempt  = errors.New("checkpoint from a stale attempt")
	ErrBadCheckpoint = errors.New("checkpoint refused")
)

// CreateJob adds a job in state CREATED.
type CreateJob struct {
	Name        string    `json:"name"`
	SQL         string    `json:"sql"`
	Spec        JobSpec   `json:"spec"`
	Plan        Plan      `json:"plan"`
	IfNotExists bool      `json:"if_not_exists,omitempty"`
	Time        time.Time `json:"time"`
}

// DropJob removes a job.
type DropJob struct {
	Name     string    `json:"name"`
	IfExists bool      `json:"if_exists,omitempty"`
	Time     time.Time `json:"time"`
}

// SetJobState moves a job from one of From (any state when empty) to To.
// It is a compare-and-set: a coordinator that decided on stale state, or a
// user who raced it, gets ErrBadTransition instead of a lost update.
type SetJobState struct {
	Name string `json:"name"`
	// JobID, when set, must match: a job dropped and re-created under the
	// same name is a different job.
	JobID       uint64     `json:"job_id,omitempty"`
	From        []JobState `json:"from,omitempty"`
	To          JobState   `json:"to"`
	Error       string     `json:"error,omitempty"` // the new error ("" clears it)
	IncRestarts bool       `json:"inc_restarts,omitempty"`
	// NewAttempt starts a new attempt: tasks about to run take its number,
	// and checkpoints of earlier attempts are refused from now on.
	NewAttempt bool      `json:"new_attempt,omitempty"`
	Reason     string    `json:"reason,omitempty"` // message of the event recorded
	Time       time.Time `json:"time"`
}

// AlterJob replaces a job's WITH options (and the plan derived from them).
type AlterJob struct {
	Name    string            `json:"name"`
	Options map[string]string `json:"options"`
	Plan    Plan              `json:"plan"`
	SQL     string            `json:"sql"`
	Time    time.Time         `json:"time"`
}

// AppendEvent records an event.
type AppendEvent struct {
	Event Event `json:"event"` // Seq is assigned by apply
}

// RegisterNode records (or updates) a cluster member.
type RegisterNode struct {
	Node Node `json:"node"`
}

// CommitCheckpoint records a completed checkpoint of one pipeline. It is
// refused unless the job still exists with JobID, Attempt is the job's
// current attempt, the id is above every recorded one, and there is exactly
// one task state per task of the pipeline. Retained bounds the completed
// checkpoints kept (older ones are removed).
type CommitCheckpoint struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	Retained   int        `json:"retained"`
}

// FailCheckpoint records a checkpoint that failed or timed out. It never
// touches completed checkpoints.
type FailCheckpoint struct {
	Checkpoint Checkpoint `json:"checkpoint"`
}

// Result is what a successful apply returns.
type Result struct {
	Job     *Job // the job after the change (nil for drop and non-job commands)
	Applied bool // false when IF [NOT] EXISTS made the command a no-op
}

// encode frames a command: one type byte, then JSON.
func encode(t CmdType, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("catalog: encode command %d: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}
