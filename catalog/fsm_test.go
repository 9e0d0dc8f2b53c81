package catalog

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture applies commands straight to an FSM, numbering Raft indexes.
type fixture struct {
	t     *testing.T
	fsm   *FSM
	index uint64
}

func newFixture(t *testing.T) *fixture { return &fixture{t: t, fsm: NewFSM()} }

func (f *fixture) apply(ct CmdType, cmd any) any {
	f.t.Helper()
	data, err := encode(ct, cmd)
	if err != nil {
		f.t.Fatal(err)
	}
	f.index++
	resp := f.fsm.Apply(&raft.Log{Index: f.index, Type: raft.LogCommand, Data: data})
	if d, ok := resp.(dedup); ok {
		return d.resp // as the client sees a retry's answer
	}
	return resp
}

func (f *fixture) mustOK(ct CmdType, cmd any) Result {
	f.t.Helper()
	switch r := f.apply(ct, cmd).(type) {
	case Result:
		return r
	case error:
		f.t.Fatalf("command %d: %v", ct, r)
	}
	f.t.Fatalf("command %d: unexpected result", ct)
	return Result{}
}

func (f *fixture) mustErr(ct CmdType, cmd any, want error) {
	f.t.Helper()
	before := f.stateJSON()
	r := f.apply(ct, cmd)
	err, ok := r.(error)
	if !ok || !errors.Is(err, want) {
		f.t.Fatalf("command %d: got %v, want %v", ct, r, want)
	}
	// A refused command changes nothing but the applied index.
	after := f.stateJSON()
	if !bytes.Equal(before, after) {
		f.t.Fatalf("refused command %d changed state:\n%s\n%s", ct, before, after)
	}
}

// stateJSON is the snapshot encoding of the state, minus the index.
func (f *fixture) stateJSON() []byte {
	f.t.Helper()
	f.fsm.mu.Lock()
	idx := f.fsm.st.Index
	f.fsm.st.Index = 0
	f.fsm.mu.Unlock()
	defer func() { f.fsm.mu.Lock(); f.fsm.st.Index = idx; f.fsm.mu.Unlock() }()
	return persist(f.t, f.fsm)
}

func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.Bytes()
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func sampleCreate(name string) CreateJob {
	return CreateJob{
		Name: name, SQL: "CREATE SYNC JOB " + name + " FROM datagen () TO blackhole ()",
		Spec: JobSpec{Source: ConnectorRef{Connector: "datagen", Options: map[string]string{"rows": "10"}},
			Sink: ConnectorRef{Connector: "blackhole"}, Options: map[string]string{"parallelism": "2"}},
		Plan: Plan{Vertices: []Vertex{{ID: 1, Kind: "source", Connector: "datagen", Ref: RefSource},
			{ID: 2, Kind: "sink", Connector: "blackhole", Ref: RefSink}},
			Edges: [][2]int{{1, 2}}, Pipelines: []Pipeline{{ID: 1, Vertices: []int{1, 2}, Parallelism: 2}}},
		Time: t0,
	}
}

func TestApplyCreateJob(t *testing.T) {
	f := newFixture(t)
	r := f.mustOK(CmdCreateJob, sampleCreate("Orders"))
	if !r.Applied || r.Job.ID != 1 || r.Job.State != Created || r.Job.Version != 1 || !r.Job.CreatedAt.Equal(t0) {
		t.Fatalf("created job: %+v", r.Job)
	}
	if j, ok := f.fsm.Job("orders"); !ok || j.Name != "Orders" {
		t.Fatalf("lookup is case-insensitive and keeps the spelling: %+v %v", j, ok)
	}
	f.mustErr(CmdCreateJob, sampleCreate("ORDERS"), ErrJobExists)
	c := sampleCreate("orders")
	c.IfNotExists = true
	if r := f.mustOK(CmdCreateJob, c); r.Applied {
		t.Fatal("IF NOT EXISTS on an existing job must be a no-op")
	}
	if ev := f.fsm.Events(); len(ev) != 1 || ev[0].Kind != "CREATED" || ev[0].Seq != 1 {
		t.Fatalf("events: %+v", ev)
	}
}

func TestApplyDropJob(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdCreateJob, sampleCreate("a"))
	f.mustOK(CmdDropJob, DropJob{Name: "A", Time: t0})
	if _, ok := f.fsm.Job("a"); ok {
		t.Fatal("job still there after drop")
	}
	f.mustErr(CmdDropJob, DropJob{Name: "a", Time: t0}, ErrJobNotFound)
	if r := f.mustOK(CmdDropJob, DropJob{Name: "a", IfExists: true, Time: t0}); r.Applied {
		t.Fatal("IF EXISTS on a missing job must be a no-op")
	}
}

func TestApplySetJobState(t *testing.T) {
	f := newFixture(t)
	id := f.mustOK(CmdCreateJob, sampleCreate("a")).Job.ID
	r := f.mustOK(CmdSetJobState, SetJobState{Name: "a", From: []JobState{Created}, To: Scheduled, Time: t0.Add(time.Second)})
	if r.Job.State != Scheduled || r.Job.Version != 2 || !r.Job.UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after transition: %+v", r.Job)
	}
	f.mustErr(CmdSetJobState, SetJobState{Name: "a", From: []JobState{Created}, To: Running, Time: t0}, ErrBadTransition)
	f.mustErr(CmdSetJobState, SetJobState{Name: "a", JobID: id + 100, To: Running, Time: t0}, ErrJobNotFound)
	f.mustErr(CmdSetJobState, SetJobState{Name: "nope", To: Running, Time: t0}, ErrJobNotFound)
	r = f.mustOK(CmdSetJobState, SetJobState{Name: "a", JobID: id, To: Failed, Error: "boom", IncRestarts: true, Time: t0})
	if r.Job.Error != "boom" || r.Job.Restarts != 1 {
		t.Fatalf("error and restarts not recorded: %+v", r.Job)
	}
	r = f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Scheduled, Time: t0})
	if r.Job.Error != "" || r.Job.Restarts != 1 {
		t.Fatalf("error must clear, restarts stay: %+v", r.Job)
	}
}

func TestApplyAlterJob(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdCreateJob, sampleCreate("a"))
	plan := Plan{Pipelines: []Pipeline{{ID: 1, Parallelism: 4}}}
	r := f.mustOK(CmdAlterJob, AlterJob{Name: "a", Options: map[string]string{"parallelism": "4"}, Plan: plan, SQL: "x", Time: t0})
	if r.Job.Spec.Options["parallelism"] != "4" || r.Job.Plan.Pipelines[0].Parallelism != 4 || r.Job.SQL != "x" {
		t.Fatalf("alter not applied: %+v", r.Job)
	}
	if r.Job.Spec.Source.Options["rows"] != "10" {
		t.Fatal("alter must keep the connector options")
	}
	f.mustErr(CmdAlterJob, AlterJob{Name: "nope", Time: t0}, ErrJobNotFound)
}

func TestApplyAppendEventBounded(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < MaxEvents+5; i++ {
		f.mustOK(CmdAppendEvent, AppendEvent{Event: Event{Time: t0, Kind: "INFO", Message: "m"}})
	}
	ev := f.fsm.Events()
	if len(ev) != MaxEvents || ev[0].Seq != 6 || ev[len(ev)-1].Seq != MaxEvents+5 {
		t.Fatalf("events: %d, first %d, last %d", len(ev), ev[0].Seq, ev[len(ev)-1].Seq)
	}
}

func TestApplyRegisterNode(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n1", RaftAddr: "a:1", Slots: 4, RegisteredAt: t0}})
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n1", RaftAddr: "a:2", Slots: 8, RegisteredAt: t0}})
	if n := f.fsm.Nodes(); len(n) != 1 || n[0].RaftAddr != "a:2" || n[0].Slots != 8 {
		t.Fatalf("nodes: %+v", n)
	}
}

func TestUndecodableCommandPanics(t *testing.T) {
	for _, data := range [][]byte{{99, '{', '}'}, {byte(CmdCreateJob), 'x'}, {}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("command %q did not panic", data)
				}
			}()
			NewFSM().Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		}()
	}
}

// Every command type is applied, then the state goes through a snapshot and
// a restore into a fresh FSM: both must be identical, and apply must be
// deterministic across two FSMs fed the same log.
func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdCreateJob, sampleCreate("a"))
	f.mustOK(CmdCreateJob, sampleCreate("b"))
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Running, Time: t0})
	f.mustOK(CmdAlterJob, AlterJob{Name: "b", Options: map[string]string{"parallelism": "3"}, Time: t0})
	f.mustOK(CmdDropJob, DropJob{Name: "b", Time: t0})
	f.mustOK(CmdAppendEvent, AppendEvent{Event: Event{Time: t0, Kind: "INFO", Message: "hello"}})
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n1", Slots: 2, RegisteredAt: t0}})
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Running, NewAttempt: true, Time: t0})
	f.mustOK(CmdCommitCheckpoint, CommitCheckpoint{Retained: 3, Checkpoint: ckpt(1, 1, 1)})
	fc := ckpt(1, 2, 1)
	fc.Error = "timed out"
	f.mustOK(CmdFailCheckpoint, FailCheckpoint{Checkpoint: fc})
	f.mustOK(CmdSetUsers, SetUsers{Data: []byte("users"), Time: t0, Meta: Meta{RequestID: "r1"}})
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n2", RegisteredAt: t0}})
	f.mustOK(CmdRemoveNode, RemoveNode{ID: "n2", Time: t0})
	f.mustOK(CmdSetNodeStatus, SetNodeStatus{ID: "n1", Status: NodeUp, Seen: t0, Time: t0})
	f.mustOK(CmdCreateJob, sampleCreate("short"))
	f.mustOK(CmdDropJob, DropJob{Name: "short", Rows: 5, Time: t0}) // a history entry
	f.mustOK(CmdExpire, Expire{Before: t0.Add(-time.Hour)})
	f.mustOK(CmdSetVerifications, SetVerifications{JobID: 1, Tables: []string{"db.t"}, Chunks: []Verification{{JobID: 1, Job: "a", Table: "db.t", Equal: true, CheckedAt: t0}}})
	f.mustOK(CmdCreateNotification, CreateNotification{Notification: Notification{Name: "hook", URL: "http://h/x", CreatedAt: t0}})
	f.mustOK(CmdNotified, Notified{Name: "hook", CreatedAt: t0, Seq: 1 << 40})
	f.mustOK(CmdCreateNotification, CreateNotification{Notification: Notification{Name: "gone", URL: "http://h/y", CreatedAt: t0}})
	f.mustOK(CmdDropNotification, DropNotification{Name: "gone"})
	if len(appliers) != 16 {
		t.Fatalf("a new command type needs its place in this round trip (have %d)", len(appliers))
	}

	blob := persist(t, f.fsm)
	restored := NewFSM()
	changed := restored.Changed()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(blob))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("restore must signal a change")
	}
	if !reflect.DeepEqual(f.fsm.Jobs(), restored.Jobs()) || !reflect.DeepEqual(f.fsm.Events(), restored.Events()) ||
		!reflect.DeepEqual(f.fsm.Checkpoints(), restored.Checkpoints()) || len(restored.Checkpoints()) != 2 ||
		!reflect.DeepEqual(f.fsm.Nodes(), restored.Nodes()) || f.fsm.Index() != restored.Index() ||
		!reflect.DeepEqual(f.fsm.st.Requests, restored.st.Requests) || len(restored.st.Requests) != 1 {
		t.Fatal("restored state differs")
	}
	if again := persist(t, restored); !bytes.Equal(blob, again) {
		t.Fatalf("snapshot of restored state differs:\n%s\n%s", blob, again)
	}
	// Restore discards previous state.
	if err := restored.Restore(io.NopCloser(bytes.NewReader([]byte(`{"jobs":{}}`)))); err != nil {
		t.Fatal(err)
	}
	if u, _ := restored.Users(); len(restored.Jobs()) != 0 || len(restored.Events()) != 0 || u != nil {
		t.Fatal("restore kept old state")
	}
}

// ckpt builds a checkpoint of job "a" (id 1, two tasks) for an attempt.
func ckpt(attempt int, id uint64, jobID uint64) Checkpoint {
	return Checkpoint{JobID: jobID, Job: "a", Pipeline: 1, ID: id, Attempt: attempt, TriggeredAt: t0, CompletedAt: t0.Add(time.Millisecond),
		Tasks: []TaskCheckpoint{{Subtask: 0, Position: []byte(`{"t1":5}`)}, {Subtask: 1, Position: []byte(`{"t1":6}`), SinkState: []byte("s")}}}
}

func TestApplyCommitCheckpoint(t *testing.T) {
	f := newFixture(t)
	id := f.mustOK(CmdCreateJob, sampleCreate("a")).Job.ID
	r := f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Running, NewAttempt: true, Time: t0})
	if r.Job.Attempt != 1 {
		t.Fatalf("attempt %d", r.Job.Attempt)
	}
	f.mustOK(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: ckpt(1, 1, id)})
	if c, ok := f.fsm.LastCheckpoint(id, 1); !ok || c.ID != 1 || c.State != CheckpointCompleted || string(c.Tasks[1].SinkState) != "s" {
		t.Fatalf("last checkpoint: %+v %v", c, ok)
	}
	// Fencing, ordering and completeness are enforced by the state machine.
	f.mustErr(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: ckpt(0, 2, id)}, ErrStaleAttempt)
	f.mustErr(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: ckpt(1, 1, id)}, ErrBadCheckpoint)
	partial := ckpt(1, 2, id)
	partial.Tasks = partial.Tasks[:1]
	f.mustErr(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: partial}, ErrBadCheckpoint)
	dup := ckpt(1, 2, id)
	dup.Tasks[1].Subtask = 0
	f.mustErr(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: dup}, ErrBadCheckpoint)
	f.mustErr(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: ckpt(1, 2, id+9)}, ErrJobNotFound)
	// A new attempt fences the old one.
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Running, NewAttempt: true, Time: t0})
	f.mustErr(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: ckpt(1, 2, id)}, ErrStaleAttempt)
	for i := uint64(2); i <= 5; i++ {
		f.mustOK(CmdCommitCheckpoint, CommitCheckpoint{Retained: 2, Checkpoint: ckpt(2, i, id)})
	}
	var ids []uint64
	for _, c := range f.fsm.Checkpoints() {
		ids = append(ids, c.ID)
	}
	if !reflect.DeepEqual(ids, []uint64{4, 5}) || f.fsm.MaxCheckpointID(id, 1) != 5 {
		t.Fatalf("retained: %v", ids)
	}
}

func TestApplyFailCheckpoint(t *testing.T) {
	f := newFixture(t)
	id := f.mustOK(CmdCreateJob, sampleCreate("a")).Job.ID
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Running, NewAttempt: true, Time: t0})
	f.mustOK(CmdCommitCheckpoint, CommitCheckpoint{Retained: 3, Checkpoint: ckpt(1, 1, id)})
	for i := uint64(2); i < 15; i++ {
		c := ckpt(1, i, id)
		c.Error = "timed out after 10m"
		f.mustOK(CmdFailCheckpoint, FailCheckpoint{Checkpoint: c})
	}
	// The last good checkpoint is untouched; failures are bounded; each is an event.
	if c, ok := f.fsm.LastCheckpoint(id, 1); !ok || c.ID != 1 {
		t.Fatalf("last good checkpoint lost: %+v", c)
	}
	if n := len(f.fsm.Checkpoints()); n != 1+maxFailedKept {
		t.Fatalf("%d checkpoints kept", n)
	}
	if f.fsm.MaxCheckpointID(id, 1) != 14 {
		t.Fatal("failed ids must count for numbering")
	}
	ev := f.fsm.Events()
	if last := ev[len(ev)-1]; last.Kind != "CHECKPOINT_FAILED" || !strings.Contains(last.Message, "checkpoint 14") {
		t.Fatalf("event: %+v", last)
	}
	// DROP removes a job's checkpoints.
	f.mustOK(CmdDropJob, DropJob{Name: "a", Time: t0})
	if n := len(f.fsm.Checkpoints()); n != 0 {
		t.Fatalf("%d checkpoints after drop", n)
	}
}
