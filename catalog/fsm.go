package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// MaxEvents is how many events the catalog keeps; older ones are dropped.
const MaxEvents = 10000

// MaxHistory is how many job history entries the catalog keeps, whatever
// their age.
const MaxHistory = 10000

// MaxVerifications is how many verified chunks the catalog keeps (the
// oldest runs go first).
const MaxVerifications = 20000

// state is the whole replicated state. Stored *Job values are immutable:
// apply replaces them, never edits them, so a snapshot may share them.
type state struct {
	Jobs   map[string]*Job  `json:"jobs"` // by key(name)
	Nodes  map[string]*Node `json:"nodes"`
	Events []Event          `json:"events"`
	// History: finished, failed and dropped jobs, oldest first.
	History []HistoryEntry `json:"history,omitempty"`
	// Verifications: the chunks of the latest CHECKSUM SYNC JOB run per
	// job and table, oldest runs first.
	Verifications []Verification `json:"verifications,omitempty"`
	// Notifications: webhooks by key(name).
	Notifications map[string]*Notification `json:"notifications,omitempty"`
	// Checkpoints per "jobID/pipeline", oldest first: the retained completed
	// ones and the most recent failures.
	Checkpoints map[string][]*Checkpoint `json:"checkpoints"`
	EventSeq    uint64                   `json:"event_seq"`
	Index       uint64                   `json:"index"` // last applied Raft index
	// Users is the SQL front's user and grant tables (native password
	// hashes only); UsersVersion is the index of their last change.
	Users        []byte `json:"users,omitempty"`
	UsersVersion uint64 `json:"users_version,omitempty"`
	// Requests remembers the outcome of recent request ids, oldest first.
	Requests   []request      `json:"requests,omitempty"`
	requestIdx map[string]int // position in Requests, rebuilt on demand
}

func newState() *state {
	return &state{Jobs: map[string]*Job{}, Nodes: map[string]*Node{}, Checkpoints: map[string][]*Checkpoint{}}
}

// applyFunc applies one decoded command type. It returns a Result or a
// domain error; it must be deterministic (no clock, no randomness).
type applyFunc func(s *state, index uint64, body []byte) any

// appliers is the command table: one apply function per command type.
var appliers = map[CmdType]applyFunc{
	CmdCreateJob:          decoded(applyCreateJob),
	CmdDropJob:            decoded(applyDropJob),
	CmdSetJobState:        decoded(applySetJobState),
	CmdAlterJob:           decoded(applyAlterJob),
	CmdAppendEvent:        decoded(applyAppendEvent),
	CmdRegisterNode:       decoded(applyRegisterNode),
	CmdCommitCheckpoint:   decoded(applyCommitCheckpoint),
	CmdFailCheckpoint:     decoded(applyFailCheckpoint),
	CmdSetUsers:           decoded(applySetUsers),
	CmdRemoveNode:         decoded(applyRemoveNode),
	CmdSetNodeStatus:      decoded(applySetNodeStatus),
	CmdExpire:             decoded(applyExpire),
	CmdSetVerifications:   decoded(applySetVerifications),
	CmdCreateNotification: decoded(applyCreateNotification),
	CmdDropNotification:   decoded(applyDropNotification),
	CmdNotified:           decoded(applyNotified),
}

// decoded adapts a typed apply function. A command that cannot be decoded
// was written by a bug (or a newer version): panic rather than diverge.
func decoded[C any](f func(s *state, index uint64, c *C) any) applyFunc {
	return func(s *state, index uint64, body []byte) any {
		var c C
		if err := json.Unmarshal(body, &c); err != nil {
			panic(fmt.Sprintf("catalog: undecodable %T at index %d: %v", c, index, err))
		}
		return f(s, index, &c)
	}
}

// FSM is the catalog's raft.FSM plus its local read API.
type FSM struct {
	mu      sync.RWMutex
	st      *state
	changed chan struct{} // closed and replaced after every apply
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty catalog state machine.
func NewFSM() *FSM {
	return &FSM{st: newState(), changed: make(chan struct{})}
}

// Apply applies one committed log entry.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("catalog: empty command at index %d", l.Index))
	}
	t, body := CmdType(l.Data[0]&^FlagSkippable), l.Data[1:]
	apply, ok := appliers[t]
	if !ok && l.Data[0]&FlagSkippable == 0 {
		panic(fmt.Sprintf("catalog: unknown command type %d at index %d (written by a newer version?)", t, l.Index))
	}
	var m Meta
	if ok {
		if err := json.Unmarshal(body, &m); err != nil {
			panic(fmt.Sprintf("catalog: undecodable command %d at index %d: %v", t, l.Index, err))
		}
	}
	f.mu.Lock()
	var res any = Result{} // an unknown skippable command is skipped
	switch prev, seen := f.st.remembered(m.RequestID); {
	case !ok:
	case m.RequestID != "" && seen:
		res = dedup{resp: prev.result(f.st), index: prev.Index} // a retry: answer as the first time, apply nothing
	default:
		res = apply(f.st, l.Index, body)
		if m.RequestID != "" {
			f.st.remember(m.RequestID, outcomeOf(l.Index, res))
		}
	}
	f.st.Index = l.Index
	ch := f.changed
	f.changed = make(chan struct{})
	f.mu.Unlock()
	close(ch)
	return res
}

// Changed returns a channel closed at the next change of the catalog.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Snapshot captures the state. Jobs and nodes are immutable values, so a
// copy of the maps is a consistent, independent snapshot.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cp := &state{
		Jobs:          make(map[string]*Job, len(f.st.Jobs)),
		Nodes:         make(map[string]*Node, len(f.st.Nodes)),
		Events:        append([]Event(nil), f.st.Events...),
		History:       append([]HistoryEntry(nil), f.st.History...),
		Verifications: append([]Verification(nil), f.st.Verifications...),
		Notifications: make(map[string]*Notification, len(f.st.Notifications)),
		EventSeq:      f.st.EventSeq,
		Index:         f.st.Index,
		Users:         f.st.Users, UsersVersion: f.st.UsersVersion,
		Requests: append([]request(nil), f.st.Requests...),
	}
	for k, v := range f.st.Jobs {
		cp.Jobs[k] = v
	}
	for k, v := range f.st.Nodes {
		cp.Nodes[k] = v
	}
	for k, v := range f.st.Notifications {
		cp.Notifications[k] = v // replaced, never changed in place
	}
	cp.Checkpoints = make(map[string][]*Checkpoint, len(f.st.Checkpoints))
	for k, v := range f.st.Checkpoints {
		cp.Checkpoints[k] = v // lists are replaced, never appended in place
	}
	return &snapshot{st: cp}, nil
}

// Restore replaces the whole state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("catalog: restore snapshot: %w", err)
	}
	if st.Jobs == nil {
		st.Jobs = map[string]*Job{}
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*Node{}
	}
	if st.Checkpoints == nil {
		st.Checkpoints = map[string][]*Checkpoint{}
	}
	f.mu.Lock()
	f.st = st
	ch := f.changed
	f.changed = make(chan struct{})
	f.mu.Unlock()
	close(ch)
	return nil
}

type snapshot struct{ st *state }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.st); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("catalog: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// ---- reads (local, possibly stale on a follower) ----

// Jobs returns every job, ordered by id.
func (f *FSM) Jobs() []Job {
	f.mu.RLock()
	out := make([]Job, 0, len(f.st.Jobs))
	for _, j := range f.st.Jobs {
		out = append(out, *j)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, k int) bool { return out[i].ID < out[k].ID })
	return out
}

// Job returns one job by case-insensitive name.
func (f *FSM) Job(name string) (Job, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.st.Jobs[key(name)]
	if !ok {
		return Job{}, false
	}
	return *j, true
}

// Events returns the retained events, oldest first.
func (f *FSM) Events() []Event {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]Event(nil), f.st.Events...)
}

// Nodes returns the registered nodes, ordered by id.
func (f *FSM) Nodes() []Node {
	f.mu.RLock()
	out := make([]Node, 0, len(f.st.Nodes))
	for _, n := range f.st.Nodes {
		out = append(out, *n)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, k int) bool { return out[i].ID < out[k].ID })
	return out
}

// Users returns the replicated user tables and their version (0: none yet).
func (f *FSM) Users() ([]byte, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Users, f.st.UsersVersion
}

// Index is the Raft index of the last applied command.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Index
}

// Checkpoints returns the recorded checkpoints of every job, by job id then
// pipeline then checkpoint id.
func (f *FSM) Checkpoints() []Checkpoint {
	f.mu.RLock()
	var out []Checkpoint
	for _, list := range f.st.Checkpoints {
		for _, c := range list {
			out = append(out, *c)
		}
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, k int) bool {
		a, b := out[i], out[k]
		if a.JobID != b.JobID {
			return a.JobID < b.JobID
		}
		if a.Pipeline != b.Pipeline {
			return a.Pipeline < b.Pipeline
		}
		return a.ID < b.ID
	})
	return out
}

// LastCheckpoint returns the latest completed checkpoint of a pipeline.
func (f *FSM) LastCheckpoint(jobID uint64, pipeline int) (Checkpoint, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	list := f.st.Checkpoints[ckKey(jobID, pipeline)]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].State == CheckpointCompleted {
			return *list[i], true
		}
	}
	return Checkpoint{}, false
}

// MaxCheckpointID returns the highest checkpoint id recorded for a pipeline
// (completed or failed), so a new attempt continues the numbering.
func (f *FSM) MaxCheckpointID(jobID uint64, pipeline int) uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var m uint64
	for _, c := range f.st.Checkpoints[ckKey(jobID, pipeline)] {
		m = max(m, c.ID)
	}
	return m
}

func ckKey(jobID uint64, pipeline int) string { return fmt.Sprintf("%d/%d", jobID, pipeline) }

// maxFailedKept is how many failed checkpoints are kept per pipeline.
const maxFailedKept = 10

// ---- apply functions ----

func (s *state) event(e Event) {
	s.EventSeq++
	e.Seq = s.EventSeq
	s.Events = append(s.Events, e)
	if over := len(s.Events) - MaxEvents; over > 0 {
		s.Events = append([]Event(nil), s.Events[over:]...)
	}
}

func applyCreateJob(s *state, index uint64, c *CreateJob) any {
	if _, ok := s.Jobs[key(c.Name)]; ok {
		if c.IfNotExists {
			return Result{}
		}
		return fmt.Errorf("%w: %s", ErrJobExists, c.Name)
	}
	// Invariant: a claim (a unique option value) belongs to one job.
	for _, cl := range c.Claims {
		for _, o := range s.Jobs {
			for _, oc := range o.Claims {
				if oc == cl {
					return fmt.Errorf("%w: %s %s option %s = %s is already used by job %s; each job needs its own (leave it out to have one allocated)",
						ErrClaimTaken, cl.Kind, cl.Connector, cl.Option, cl.Value, o.Name)
				}
			}
		}
	}
	j := &Job{ID: index, Name: c.Name, SQL: c.SQL, Spec: c.Spec, Plan: c.Plan, State: Created,
		Claims: c.Claims, Version: index, CreatedAt: c.Time, UpdatedAt: c.Time}
	s.Jobs[key(c.Name)] = j
	s.event(Event{Time: c.Time, Job: c.Name, Kind: "CREATED", Message: "job created"})
	cp := *j
	return Result{Job: &cp, Applied: true}
}

func applyDropJob(s *state, _ uint64, c *DropJob) any {
	j, ok := s.Jobs[key(c.Name)]
	if !ok {
		if c.IfExists {
			return Result{}
		}
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.Name)
	}
	delete(s.Jobs, key(c.Name))
	for k := range s.Checkpoints {
		if strings.HasPrefix(k, fmt.Sprintf("%d/", j.ID)) {
			delete(s.Checkpoints, k)
		}
	}
	s.event(Event{Time: c.Time, Job: j.Name, Kind: "DROPPED", Message: "job dropped in state " + string(j.State)})
	s.addHistory(j, DroppedState, j.Error, c.Time, c.Rows)
	s.Verifications = keepIf(s.Verifications, func(v Verification) bool { return v.JobID != j.ID })
	return Result{Applied: true}
}

func applySetJobState(s *state, index uint64, c *SetJobState) any {
	old, ok := s.Jobs[key(c.Name)]
	if !ok || (c.JobID != 0 && old.ID != c.JobID) {
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.Name)
	}
	// Invariant (fencing): a change made for one attempt cannot touch another.
	if c.Attempt != nil && *c.Attempt != old.Attempt {
		return fmt.Errorf("%w: job %s is at attempt %d, the change to %s was made for attempt %d", ErrStaleAttempt, old.Name, old.Attempt, c.To, *c.Attempt)
	}
	if len(c.From) > 0 && !containsState(c.From, old.State) {
		return fmt.Errorf("%w: %s is %s, expected %s", ErrBadTransition, old.Name, old.State, joinStates(c.From))
	}
	if len(c.Placement) > 0 {
		if !c.NewAttempt {
			return fmt.Errorf("%w: job %s: a placement comes with a new attempt", ErrBadPlacement, old.Name)
		}
		if err := s.checkPlacement(old, c.Placement); err != nil {
			return err
		}
	}
	j := *old
	j.State = c.To
	j.Error = c.Error
	if c.IncRestarts {
		j.Restarts++
	}
	if c.NewAttempt {
		j.Attempt++
		j.Placement = c.Placement
	}
	if !c.To.Active() || c.To == Waiting {
		j.Placement = nil // the slots are free again
	}
	j.Version = index
	j.UpdatedAt = c.Time
	s.Jobs[key(c.Name)] = &j
	if (c.To == Failed || c.To == Finished) && old.State != c.To {
		s.addHistory(&j, string(c.To), c.Error, c.Time, c.Rows)
	}
	msg := string(old.State) + " -> " + string(c.To)
	if c.Reason != "" {
		msg += ": " + c.Reason
	}
	if c.Error != "" {
		msg += ": " + c.Error
	}
	s.event(Event{Time: c.Time, Job: j.Name, Kind: string(c.To), Message: msg})
	return Result{Job: &j, Applied: true}
}

// checkPlacement verifies a new placement of job.
func (s *state) checkPlacement(job *Job, pl []TaskPlacement) error {
	want := map[[2]int]bool{}
	for _, p := range job.Plan.Pipelines {
		for sub := 0; sub < p.Parallelism; sub++ {
			want[[2]int{p.ID, sub}] = true
		}
	}
	// Invariant: a slot holds one task, ever.
	held := map[string]string{}
	slotKey := func(node string, slot int) string { return fmt.Sprintf("%s/%d", node, slot) }
	for _, o := range s.Jobs {
		if o.ID == job.ID {
			continue // its old placement is being replaced
		}
		for _, t := range o.Placement {
			held[slotKey(t.Node, t.Slot)] = o.Name
		}
	}
	for _, t := range pl {
		k := [2]int{t.Pipeline, t.Subtask}
		if !want[k] {
			return fmt.Errorf("%w: job %s has no task %d/%d to place, or it is placed twice", ErrBadPlacement, job.Name, t.Pipeline, t.Subtask)
		}
		delete(want, k)
		n, ok := s.Nodes[t.Node]
		if !ok {
			return fmt.Errorf("%w: job %s task %d/%d on unknown node %s", ErrBadPlacement, job.Name, t.Pipeline, t.Subtask, t.Node)
		}
		if t.Slot < 0 || (n.Slots > 0 && t.Slot >= n.Slots) {
			return fmt.Errorf("%w: job %s task %d/%d in slot %d of node %s, which has %d", ErrBadPlacement, job.Name, t.Pipeline, t.Subtask, t.Slot, t.Node, n.Slots)
		}
		if other, busy := held[slotKey(t.Node, t.Slot)]; busy {
			return fmt.Errorf("%w: job %s task %d/%d in slot %d of node %s, held by job %s", ErrBadPlacement, job.Name, t.Pipeline, t.Subtask, t.Slot, t.Node, other)
		}
		held[slotKey(t.Node, t.Slot)] = job.Name
	}
	if len(want) > 0 {
		return fmt.Errorf("%w: job %s: %d task(s) left unplaced", ErrBadPlacement, job.Name, len(want))
	}
	return nil
}

func applyAlterJob(s *state, index uint64, c *AlterJob) any {
	old, ok := s.Jobs[key(c.Name)]
	if !ok {
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.Name)
	}
	if c.Version != 0 && c.Version != old.Version {
		return fmt.Errorf("%w: job %s changed (version %d, the ALTER was computed from version %d); run it again", ErrConflict, old.Name, old.Version, c.Version)
	}
	j := *old
	j.Spec.Options = c.Options
	j.Plan = c.Plan
	j.SQL = c.SQL
	j.Version = index
	j.UpdatedAt = c.Time
	s.Jobs[key(c.Name)] = &j
	s.event(Event{Time: c.Time, Job: j.Name, Kind: "ALTERED", Message: "job options changed"})
	return Result{Job: &j, Applied: true}
}

func applyAppendEvent(s *state, _ uint64, c *AppendEvent) any {
	s.event(c.Event)
	return Result{Applied: true}
}

func applyRegisterNode(s *state, _ uint64, c *RegisterNode) any {
	n := c.Node
	if old, ok := s.Nodes[n.ID]; ok && n.Status == "" {
		n.Status, n.LastSeen = old.Status, old.LastSeen // a re-registration keeps the liveness record
	}
	s.Nodes[n.ID] = &n
	return Result{Applied: true}
}

func applyRemoveNode(s *state, _ uint64, c *RemoveNode) any {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNodeNotFound, c.ID)
	}
	delete(s.Nodes, c.ID)
	s.event(Event{Time: c.Time, Kind: "NODE_REMOVED", Message: fmt.Sprintf("node %s (%s, raft %s) removed from the cluster", n.ID, n.Role, n.RaftAddr)})
	return Result{Applied: true}
}

func applySetNodeStatus(s *state, _ uint64, c *SetNodeStatus) any {
	old, ok := s.Nodes[c.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNodeNotFound, c.ID)
	}
	n := *old
	prev := n.Status
	n.Status, n.LastSeen = c.Status, c.Seen
	s.Nodes[c.ID] = &n
	if prev != c.Status {
		last := "last heartbeat " + c.Seen.UTC().Format("2006-01-02 15:04:05.000")
		if c.Seen.IsZero() {
			last = "no heartbeat since this leader took office"
		}
		s.event(Event{Time: c.Time, Kind: "NODE_" + c.Status, Message: fmt.Sprintf("node %s: %s -> %s (%s)", c.ID, orUnknown(prev), c.Status, last)})
	}
	return Result{Applied: true}
}

func orUnknown(s string) string {
	if s == "" {
		return "UNKNOWN"
	}
	return s
}

func applySetUsers(s *state, index uint64, c *SetUsers) any {
	if c.Base != s.UsersVersion {
		return fmt.Errorf("%w: the user tables changed on another node (version %d, this change was made on version %d); run the statement again", ErrConflict, s.UsersVersion, c.Base)
	}
	s.Users = c.Data
	s.UsersVersion = index
	return Result{Applied: true}
}

func containsState(list []JobState, s JobState) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func joinStates(list []JobState) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = string(s)
	}
	return strings.Join(parts, " or ")
}

func applyCommitCheckpoint(s *state, _ uint64, c *CommitCheckpoint) any {
	cp := c.Checkpoint
	j, ok := s.Jobs[key(cp.Job)]
	if !ok || j.ID != cp.JobID {
		return fmt.Errorf("%w: %s", ErrJobNotFound, cp.Job)
	}
	// Invariant (fencing): only the current attempt may commit.
	if cp.Attempt != j.Attempt {
		return fmt.Errorf("%w: job %s checkpoint %d from attempt %d, current attempt is %d", ErrStaleAttempt, j.Name, cp.ID, cp.Attempt, j.Attempt)
	}
	var par int
	for _, p := range j.Plan.Pipelines {
		if p.ID == cp.Pipeline {
			par = p.Parallelism
		}
	}
	// Invariant: a checkpoint is the complete state of every task.
	seen := map[int]bool{}
	for _, t := range cp.Tasks {
		if t.Subtask < 0 || t.Subtask >= par || seen[t.Subtask] {
			return fmt.Errorf("%w: job %s pipeline %d checkpoint %d: bad or repeated task %d", ErrBadCheckpoint, j.Name, cp.Pipeline, cp.ID, t.Subtask)
		}
		seen[t.Subtask] = true
	}
	if par == 0 || len(cp.Tasks) != par {
		return fmt.Errorf("%w: job %s pipeline %d checkpoint %d has %d task states, the pipeline has %d tasks", ErrBadCheckpoint, j.Name, cp.Pipeline, cp.ID, len(cp.Tasks), par)
	}
	k := ckKey(cp.JobID, cp.Pipeline)
	old := s.Checkpoints[k]
	for _, o := range old {
		if o.ID >= cp.ID {
			return fmt.Errorf("%w: job %s pipeline %d checkpoint %d is not above recorded checkpoint %d", ErrBadCheckpoint, j.Name, cp.Pipeline, cp.ID, o.ID)
		}
	}
	cp.State = CheckpointCompleted
	cp.Error = ""
	s.Checkpoints[k] = trimCheckpoints(append(append([]*Checkpoint(nil), old...), &cp), max(1, c.Retained))
	return Result{Applied: true}
}

func applyFailCheckpoint(s *state, _ uint64, c *FailCheckpoint) any {
	cp := c.Checkpoint
	j, ok := s.Jobs[key(cp.Job)]
	if !ok || j.ID != cp.JobID {
		return fmt.Errorf("%w: %s", ErrJobNotFound, cp.Job)
	}
	// Invariant (fencing): only the current attempt records failures.
	if cp.Attempt != j.Attempt {
		return fmt.Errorf("%w: job %s checkpoint %d failure from attempt %d, current attempt is %d", ErrStaleAttempt, j.Name, cp.ID, cp.Attempt, j.Attempt)
	}
	cp.State = CheckpointFailed
	cp.Tasks = nil
	k := ckKey(cp.JobID, cp.Pipeline)
	list := append(append([]*Checkpoint(nil), s.Checkpoints[k]...), &cp)
	sort.SliceStable(list, func(a, b int) bool { return list[a].ID < list[b].ID })
	retained := 0
	for _, o := range list {
		if o.State == CheckpointCompleted {
			retained++
		}
	}
	s.Checkpoints[k] = trimCheckpoints(list, max(1, retained))
	s.event(Event{Time: cp.CompletedAt, Job: j.Name, Kind: "CHECKPOINT_FAILED",
		Message: fmt.Sprintf("pipeline %d checkpoint %d (attempt %d): %s", cp.Pipeline, cp.ID, cp.Attempt, cp.Error)})
	return Result{Applied: true}
}

// trimCheckpoints keeps the newest `retained` completed checkpoints and the
// newest maxFailedKept failed ones, in id order.
func trimCheckpoints(list []*Checkpoint, retained int) []*Checkpoint {
	var completed, failed int
	keep := make([]bool, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].State == CheckpointCompleted && completed < retained {
			completed++
			keep[i] = true
		} else if list[i].State == CheckpointFailed && failed < maxFailedKept {
			failed++
			keep[i] = true
		}
	}
	var out []*Checkpoint
	for i, c := range list {
		if keep[i] {
			out = append(out, c)
		}
	}
	return out
}

// WaitIndex blocks until the state machine has applied index, or ctx ends.
func (f *FSM) WaitIndex(ctx context.Context, index uint64) error {
	for {
		f.mu.RLock()
		done, ch := f.st.Index >= index, f.changed
		f.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func containsFold(s, sub string) bool { return strings.Contains(strings.ToLower(s), sub) }
