package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// A command retried with the same request id is applied once, and the
// retry answers exactly what the first attempt answered — success or error.
func TestRequestIDMakesRetriesIdempotent(t *testing.T) {
	f := newFixture(t)
	create := sampleCreate("a")
	create.RequestID = "req-1"
	first := f.mustOK(CmdCreateJob, create)
	again := f.mustOK(CmdCreateJob, create) // a plain second CREATE would fail: the job exists
	if !again.Applied || again.Job == nil || again.Job.ID != first.Job.ID {
		t.Fatalf("retry answered %+v, first %+v", again, first)
	}
	ev := AppendEvent{Event: Event{Time: t0, Kind: "INFO", Message: "once"}, Meta: Meta{RequestID: "req-2"}}
	f.mustOK(CmdAppendEvent, ev)
	f.mustOK(CmdAppendEvent, ev)
	n := 0
	for _, e := range f.fsm.Events() {
		if e.Message == "once" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("event applied %d times", n)
	}
	// A refused command's retry is refused the same way, with the sentinel.
	drop := DropJob{Name: "nope", Time: t0, Meta: Meta{RequestID: "req-3"}}
	for i := 0; i < 2; i++ {
		err, _ := f.apply(CmdDropJob, drop).(error)
		if !errors.Is(err, ErrJobNotFound) || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Without an id every command applies (tests and old log entries).
	plain := sampleCreate("b")
	f.mustOK(CmdCreateJob, plain)
	f.mustErr(CmdCreateJob, plain, ErrJobExists)
}

// The request table is bounded, deterministic, and survives a snapshot.
func TestRequestTableBounded(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < MaxRequests*2; i++ {
		f.mustOK(CmdAppendEvent, AppendEvent{Event: Event{Time: t0, Kind: "INFO"}, Meta: Meta{RequestID: NewRequestID()}})
	}
	if n := len(f.fsm.st.Requests); n < MaxRequests || n > MaxRequests+MaxRequests/4 {
		t.Fatalf("%d requests remembered", n)
	}
	last := f.fsm.st.Requests[len(f.fsm.st.Requests)-1].ID
	if _, ok := f.fsm.st.remembered(last); !ok {
		t.Fatal("the newest request id is forgotten")
	}
}

// An entry of an unknown type stops the node unless its writer marked it
// skippable (a rolling upgrade: an older node meets a newer command).
func TestUnknownCommandTypes(t *testing.T) {
	f := NewFSM()
	skip := append([]byte{99 | FlagSkippable}, `{"anything":1}`...)
	if r, ok := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: skip}).(Result); !ok || r.Applied {
		t.Fatalf("skippable unknown command: %v", r)
	}
	if f.Index() != 1 {
		t.Fatal("a skipped entry still advances the applied index")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown command without the flag must panic")
		}
	}()
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: append([]byte{99}, `{}`...)})
}

func TestSkippableFlagWritten(t *testing.T) {
	data, err := encode(CmdSetNodeStatus, SetNodeStatus{ID: "n"})
	if err != nil || data[0] != byte(CmdSetNodeStatus)|FlagSkippable {
		t.Fatalf("node status frame %x: %v", data[:1], err)
	}
	if data, _ := encode(CmdCreateJob, sampleCreate("a")); data[0]&FlagSkippable != 0 {
		t.Fatal("a job command must never be skippable")
	}
}

// Unique option values are checked inside the state machine.
func TestApplyCreateJobClaims(t *testing.T) {
	f := newFixture(t)
	a := sampleCreate("a")
	a.Claims = []Claim{{Kind: "source", Connector: "mysql_cdc", Option: "server_id", Value: "7"}}
	f.mustOK(CmdCreateJob, a)
	b := sampleCreate("b")
	b.Claims = a.Claims
	f.mustErr(CmdCreateJob, b, ErrClaimTaken)
	b.Claims = []Claim{{Kind: "source", Connector: "mysql_cdc", Option: "server_id", Value: "8"}}
	f.mustOK(CmdCreateJob, b)
	f.mustOK(CmdDropJob, DropJob{Name: "a", Time: t0})
	c := sampleCreate("c")
	c.Claims = a.Claims // freed by the drop
	f.mustOK(CmdCreateJob, c)
}

// ALTER is a compare-and-set on the job version it was computed from.
func TestApplyAlterJobVersion(t *testing.T) {
	f := newFixture(t)
	j := f.mustOK(CmdCreateJob, sampleCreate("a")).Job
	f.mustOK(CmdAlterJob, AlterJob{Name: "a", Options: map[string]string{"x": "1"}, Version: j.Version, Time: t0})
	f.mustErr(CmdAlterJob, AlterJob{Name: "a", Options: map[string]string{"x": "2"}, Version: j.Version, Time: t0}, ErrConflict)
}

func TestApplyUsersNodes(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdSetUsers, SetUsers{Data: []byte("v1"), Base: 0, Time: t0})
	data, v := f.fsm.Users()
	if string(data) != "v1" || v != f.index {
		t.Fatalf("users %q version %d", data, v)
	}
	f.mustErr(CmdSetUsers, SetUsers{Data: []byte("stale"), Base: 0, Time: t0}, ErrConflict)
	f.mustOK(CmdSetUsers, SetUsers{Data: []byte("v2"), Base: v, Time: t0})

	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n1", RegisteredAt: t0}})
	f.mustOK(CmdSetNodeStatus, SetNodeStatus{ID: "n1", Status: NodeDown, Seen: t0, Time: t0})
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n1", HTTPAddr: "h", RegisteredAt: t0}})
	if n := f.fsm.Nodes()[0]; n.Status != NodeDown || n.HTTPAddr != "h" {
		t.Fatalf("re-registration lost the liveness record: %+v", n)
	}
	f.mustErr(CmdSetNodeStatus, SetNodeStatus{ID: "nx", Status: NodeUp, Time: t0}, ErrNodeNotFound)
	f.mustOK(CmdRemoveNode, RemoveNode{ID: "n1", Time: t0})
	f.mustErr(CmdRemoveNode, RemoveNode{ID: "n1", Time: t0}, ErrNodeNotFound)
	if len(f.fsm.Nodes()) != 0 {
		t.Fatal("node not removed")
	}
}

func TestKeyringSealOpen(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	spec := JobSpec{Source: ConnectorRef{Connector: "mysql_cdc", Options: map[string]string{"password": "canary-✓", "host": "h"}},
		Sink: ConnectorRef{Connector: "mysql", Options: map[string]string{"password": "p2"}}}
	sealed, err := k.SealSpec(spec, defaultSecret)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Source.Options["password"] != "canary-✓" {
		t.Fatal("sealing edited the caller's map")
	}
	sv := sealed.Source.Options["password"]
	if !IsSealed(sv) || strings.Contains(sv, "canary") || sealed.Source.Options["host"] != "h" {
		t.Fatalf("sealed %q", sv)
	}
	opened, err := k.OpenOptions(sealed.Source.Options)
	if err != nil || opened["password"] != "canary-✓" {
		t.Fatalf("opened %v: %v", opened, err)
	}
	// Bound to its option name, and to its key.
	if _, err := k.Open("user", sv); err == nil {
		t.Fatal("a value sealed for password opened as user")
	}
	other, _ := GenerateKey()
	k2, _ := NewKeyring(other)
	if _, err := k2.Open("password", sv); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other key: %v", err)
	}
	var none *Keyring
	if _, err := none.Open("password", sv); err == nil {
		t.Fatal("no key must not open a sealed value")
	}
	if v, err := none.Open("password", "plain"); err != nil || v != "plain" {
		t.Fatal("an unsealed value passes")
	}
}

// A state change or checkpoint failure made for one attempt cannot touch
// a job another attempt now runs (a zombie: a paused old leader or worker
// that comes back).
func TestAttemptFencing(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdCreateJob, sampleCreate("a"))
	j := f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Running, NewAttempt: true, Attempt: AtAttempt(0), Time: t0}).Job
	if j.Attempt != 1 {
		t.Fatalf("attempt %d", j.Attempt)
	}
	// Another leader starts attempt 2; the zombie's run was attempt 1.
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", From: []JobState{Running}, To: Running, NewAttempt: true, Attempt: AtAttempt(1), Time: t0})
	f.mustErr(CmdSetJobState, SetJobState{Name: "a", From: []JobState{Running}, To: Failed, Error: "zombie", Attempt: AtAttempt(1), Time: t0}, ErrStaleAttempt)
	f.mustErr(CmdSetJobState, SetJobState{Name: "a", From: []JobState{Running}, To: Running, NewAttempt: true, Attempt: AtAttempt(1), Time: t0}, ErrStaleAttempt)
	fc := ckpt(1, 5, 1)
	fc.Error = "zombie timeout"
	f.mustErr(CmdFailCheckpoint, FailCheckpoint{Checkpoint: fc}, ErrStaleAttempt)
	// Users' statements are not fenced; the current attempt is.
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", From: []JobState{Running}, To: Finished, Attempt: AtAttempt(2), Time: t0})
	f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Paused, Time: t0})
}
