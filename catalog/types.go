package catalog

import (
	"errors"
	"strings"
	"time"
)

// JobState is the lifecycle state of a job.
type JobState string

// Job states: CREATED → SCHEDULED → RUNNING → (PAUSED | FAILED | FINISHED |
// CANCELED), with RESTARTING between attempts.
const (
	Created    JobState = "CREATED"
	Scheduled  JobState = "SCHEDULED"
	Running    JobState = "RUNNING"
	Restarting JobState = "RESTARTING"
	// Waiting: no nodes have the free slots the job needs
	// (schedule.strategy=wait); it is placed once they do.
	Waiting  JobState = "WAITING"
	Paused   JobState = "PAUSED"
	Failed   JobState = "FAILED"
	Finished JobState = "FINISHED"
	Canceled JobState = "CANCELED"
)

// Active reports whether a job in this state should have tasks running.
func (s JobState) Active() bool {
	switch s {
	case Created, Scheduled, Running, Restarting, Waiting:
		return true
	}
	return false
}

// ConnectorRef is one connector of a job with its options, as written by the
// user (keys lower-cased). Secrets are kept here; every reader that shows
// options to a person masks them.
type ConnectorRef struct {
	Connector string            `json:"connector"`
	Options   map[string]string `json:"options,omitempty"`
}

// JobSpec is what CREATE SYNC JOB asked for, after validation.
type JobSpec struct {
	Source     ConnectorRef      `json:"source"`
	Transforms []ConnectorRef    `json:"transforms,omitempty"`
	Sink       ConnectorRef      `json:"sink"`
	Options    map[string]string `json:"options,omitempty"` // WITH (…), keys canonical
}

// Vertex is a node of a job's logical DAG.
type Vertex struct {
	ID        int    `json:"id"`
	Kind      string `json:"kind"` // source | transform | sink
	Connector string `json:"connector"`
	// Ref says which connector of the spec: -1 source, -2 sink, i ≥ 0 Transforms[i].
	Ref int `json:"ref"`
}

// Vertex references into a JobSpec.
const (
	RefSource = -1
	RefSink   = -2
)

// Ref returns the connector a vertex stands for.
func (s JobSpec) Ref(v Vertex) ConnectorRef {
	switch v.Ref {
	case RefSource:
		return s.Source
	case RefSink:
		return s.Sink
	}
	return s.Transforms[v.Ref]
}

// Pipeline is a chain of vertices run together, Parallelism times.
type Pipeline struct {
	ID          int   `json:"id"`
	Vertices    []int `json:"vertices"`
	Parallelism int   `json:"parallelism"`
}

// Plan is the planner's output for a job: the logical DAG and its pipelines.
// Tasks are pipeline × subtask.
type Plan struct {
	Vertices  []Vertex   `json:"vertices"`
	Edges     [][2]int   `json:"edges"`
	Pipelines []Pipeline `json:"pipelines"`
}

// Job is one sync job. Values read from the catalog are copies the caller may
// keep; the catalog never mutates a stored Job in place.
type Job struct {
	ID       uint64   `json:"id"` // Raft index of the CREATE
	Name     string   `json:"name"`
	SQL      string   `json:"sql"` // canonical CREATE text, secrets included
	Spec     JobSpec  `json:"spec"`
	Plan     Plan     `json:"plan"`
	State    JobState `json:"state"`
	Error    string   `json:"error,omitempty"`
	Restarts int      `json:"restarts"`
	// Attempt numbers the runs of the job; each start of its tasks takes a
	// new one. Checkpoints from any other attempt are refused (fencing).
	Attempt int `json:"attempt"`
	// Placement says which node and slot runs each task of the current
	// attempt (empty while the job is not active). Workers run exactly
	// what it places on them.
	Placement []TaskPlacement `json:"placement,omitempty"`
	// Claims are the values this job holds exclusively (see Claim).
	Claims    []Claim   `json:"claims,omitempty"`
	Version   uint64    `json:"version"` // Raft index of the last change
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// HistoryEntry is a job that finished, failed or was dropped
// (sluice.job_history). A job that fails, is resumed and fails again has
// an entry for each failure.
type HistoryEntry struct {
	JobID      uint64    `json:"job_id"`
	Name       string    `json:"name"`
	FinalState string    `json:"final_state"` // FINISHED, FAILED, DROPPED
	Error      string    `json:"error,omitempty"`
	Attempt    int       `json:"attempt"`
	Restarts   int       `json:"restarts"`
	StartedAt  time.Time `json:"started_at"` // the job's creation
	EndedAt    time.Time `json:"ended_at"`
	Rows       int64     `json:"rows"`
	Spec       JobSpec   `json:"spec"` // secrets sealed as in the job
}

// Verification is one chunk compared by CHECKSUM SYNC JOB
// (sluice.verifications).
type Verification struct {
	JobID          uint64    `json:"job_id"`
	Job            string    `json:"job"`
	Table          string    `json:"table"`
	Chunk          int       `json:"chunk"` // 0-based in key order; -1: target rows whose key the source does not have
	LowerKey       string    `json:"lower_key,omitempty"`
	UpperKey       string    `json:"upper_key,omitempty"`
	SourceRows     int64     `json:"source_rows"`
	TargetRows     int64     `json:"target_rows"`
	SourceChecksum uint64    `json:"source_checksum"`
	TargetChecksum uint64    `json:"target_checksum"`
	Equal          bool      `json:"equal"`
	Rechecks       int       `json:"rechecks,omitempty"`
	CheckedAt      time.Time `json:"checked_at"`
}

// Notification is a webhook: events (of one job, of some kinds) posted
// as JSON to URL.
type Notification struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"` // secret-free by rule: credentials in it are refused
	Job       string    `json:"job,omitempty"`
	Events    []string  `json:"events,omitempty"` // empty: every kind
	CreatedAt time.Time `json:"created_at"`
	// Cursor is the last event seq delivered (or skipped).
	Cursor uint64 `json:"cursor"`
}

// Wants says whether the webhook takes the event: of its job (if it names
// one) and of one of its kinds (if it lists any).
func (n Notification) Wants(ev Event) bool {
	if n.Job != "" && !strings.EqualFold(n.Job, ev.Job) {
		return false
	}
	if len(n.Events) == 0 {
		return true
	}
	for _, k := range n.Events {
		if strings.EqualFold(k, ev.Kind) {
			return true
		}
	}
	return false
}

// ErrNotificationExists and ErrNotificationNotFound answer CREATE/DROP
// NOTIFICATION.
var (
	ErrNotificationExists   = errors.New("notification already exists")
	ErrNotificationNotFound = errors.New("notification does not exist")
)

// DroppedState is HistoryEntry.FinalState of a dropped job.
const DroppedState = "DROPPED"

// Event is one entry of the event log (sluice.events).
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Job     string    `json:"job,omitempty"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Node is a cluster member as it registered itself.
type Node struct {
	ID           string    `json:"id"`
	RaftAddr     string    `json:"raft_addr"`
	MySQLAddr    string    `json:"mysql_addr"`
	HTTPAddr     string    `json:"http_addr"`
	Role         string    `json:"role"`
	Slots        int       `json:"slots"` // 0 = dynamic
	Tags         string    `json:"tags,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
	// Status is the node's liveness as the leader last recorded it (UP,
	// SUSPECT, DOWN; "" before the first heartbeat), LastSeen the
	// heartbeat that decided it. Only changes are written.
	Status   string    `json:"status,omitempty"`
	LastSeen time.Time `json:"last_seen,omitempty"`
	// Incarnation changes at every start of the node's process: a task
	// placed on an earlier incarnation died with it.
	Incarnation string `json:"incarnation,omitempty"`
}

// TaskPlacement puts one task (pipeline × subtask) of a job's attempt on a
// node's slot, for one incarnation of that node.
type TaskPlacement struct {
	Pipeline    int    `json:"pipeline"`
	Subtask     int    `json:"subtask"`
	Node        string `json:"node"`
	Slot        int    `json:"slot"`
	Incarnation string `json:"incarnation,omitempty"`
}

// Node liveness states.
const (
	NodeUp      = "UP"
	NodeSuspect = "SUSPECT"
	NodeDown    = "DOWN"
)

// key normalises a job name for lookup: names are case-insensitive, like
// MySQL table names on a case-insensitive file system.
func key(name string) string { return strings.ToLower(name) }

// Checkpoint states.
const (
	CheckpointCompleted = "COMPLETED"
	CheckpointFailed    = "FAILED"
)

// TaskCheckpoint is the state of one task at a checkpoint: where its source
// stands and what its sink needs to commit or recover.
type TaskCheckpoint struct {
	Subtask   int    `json:"subtask"`
	Position  []byte `json:"position,omitempty"`
	SinkState []byte `json:"sink_state,omitempty"`
	// SourceTime: every change committed at the source before it is
	// covered by Position (connectors.SourceClock); zero if unknown.
	SourceTime time.Time `json:"source_time,omitempty"`
}

// Checkpoint is one checkpoint of one pipeline. A completed checkpoint holds
// the complete state of every task of the pipeline, never a partial update.
type Checkpoint struct {
	JobID       uint64           `json:"job_id"`
	Job         string           `json:"job"`
	Pipeline    int              `json:"pipeline"`
	ID          uint64           `json:"id"`
	Attempt     int              `json:"attempt"`
	State       string           `json:"state"`
	Final       bool             `json:"final,omitempty"` // taken at PAUSE or at the end of input
	TriggeredAt time.Time        `json:"triggered_at"`
	CompletedAt time.Time        `json:"completed_at"`
	Tasks       []TaskCheckpoint `json:"tasks,omitempty"`
	Error       string           `json:"error,omitempty"`
}

// Duration is how long the checkpoint took.
func (c Checkpoint) Duration() time.Duration { return c.CompletedAt.Sub(c.TriggeredAt) }
