package catalog

import (
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

// state is the whole replicated state. Stored *Job values are immutable:
// apply replaces them, never edits them, so a snapshot may share them.
type state struct {
	Jobs     map[string]*Job  `json:"jobs"` // by key(name)
	Nodes    map[string]*Node `json:"nodes"`
	Events   []Event          `json:"events"`
	EventSeq uint64           `json:"event_seq"`
	Index    uint64           `json:"index"` // last applied Raft index
}

func newState() *state {
	return &state{Jobs: map[string]*Job{}, Nodes: map[string]*Node{}}
}

// applyFunc applies one decoded command type. It returns a Result or a
// domain error; it must be deterministic (no clock, no randomness).
type applyFunc func(s *state, index uint64, body []byte) any

// appliers is the command table: one apply function per command type.
var appliers = map[CmdType]applyFunc{
	CmdCreateJob:    decoded(applyCreateJob),
	CmdDropJob:      decoded(applyDropJob),
	CmdSetJobState:  decoded(applySetJobState),
	CmdAlterJob:     decoded(applyAlterJob),
	CmdAppendEvent:  decoded(applyAppendEvent),
	CmdRegisterNode: decoded(applyRegisterNode),
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
	apply, ok := appliers[CmdType(l.Data[0])]
	if !ok {
		panic(fmt.Sprintf("catalog: unknown command type %d at index %d", l.Data[0], l.Index))
	}
	f.mu.Lock()
	res := apply(f.st, l.Index, l.Data[1:])
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
		Jobs:     make(map[string]*Job, len(f.st.Jobs)),
		Nodes:    make(map[string]*Node, len(f.st.Nodes)),
		Events:   append([]Event(nil), f.st.Events...),
		EventSeq: f.st.EventSeq,
		Index:    f.st.Index,
	}
	for k, v := range f.st.Jobs {
		cp.Jobs[k] = v
	}
	for k, v := range f.st.Nodes {
		cp.Nodes[k] = v
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

// Index is the Raft index of the last applied command.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Index
}

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
	j := &Job{ID: index, Name: c.Name, SQL: c.SQL, Spec: c.Spec, Plan: c.Plan, State: Created,
		Version: index, CreatedAt: c.Time, UpdatedAt: c.Time}
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
	s.event(Event{Time: c.Time, Job: j.Name, Kind: "DROPPED", Message: "job dropped in state " + string(j.State)})
	return Result{Applied: true}
}

func applySetJobState(s *state, index uint64, c *SetJobState) any {
	old, ok := s.Jobs[key(c.Name)]
	if !ok || (c.JobID != 0 && old.ID != c.JobID) {
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.Name)
	}
	if len(c.From) > 0 && !containsState(c.From, old.State) {
		return fmt.Errorf("%w: %s is %s, expected %s", ErrBadTransition, old.Name, old.State, joinStates(c.From))
	}
	j := *old
	j.State = c.To
	j.Error = c.Error
	if c.IncRestarts {
		j.Restarts++
	}
	j.Version = index
	j.UpdatedAt = c.Time
	s.Jobs[key(c.Name)] = &j
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

func applyAlterJob(s *state, index uint64, c *AlterJob) any {
	old, ok := s.Jobs[key(c.Name)]
	if !ok {
		return fmt.Errorf("%w: %s", ErrJobNotFound, c.Name)
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
	s.Nodes[n.ID] = &n
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
