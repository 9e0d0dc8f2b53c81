package catalog

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestJobHistory: a job that finishes, fails or is dropped leaves an
// entry (a failure resumed and failed again: one per failure); Expire
// drops entries and events older than its cut, and nothing else.
func TestJobHistory(t *testing.T) {
	f := newFixture(t)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	for _, n := range []string{"done", "broken", "gone"} {
		c := sampleCreate(n)
		c.Time = at(0)
		f.mustOK(CmdCreateJob, c)
	}
	f.mustOK(CmdSetJobState, &SetJobState{Name: "done", To: Running, Time: at(1)})
	f.mustOK(CmdSetJobState, &SetJobState{Name: "done", To: Finished, Rows: 25000, Time: at(2)})
	f.mustOK(CmdSetJobState, &SetJobState{Name: "broken", To: Failed, Error: "boom", Rows: 7, Time: at(3)})
	f.mustOK(CmdSetJobState, &SetJobState{Name: "broken", To: Failed, Error: "boom again", Time: at(4)}) // no new failure
	f.mustOK(CmdSetJobState, &SetJobState{Name: "broken", To: Running, Time: at(5)})
	f.mustOK(CmdSetJobState, &SetJobState{Name: "broken", To: Failed, Error: "second", Time: at(6)})
	f.mustOK(CmdDropJob, &DropJob{Name: "gone", Rows: 3, Time: at(7)})

	type entry struct {
		name, state, err string
		rows             int64
		ended            time.Time
	}
	got := func() []entry {
		var out []entry
		for _, h := range f.fsm.History() {
			out = append(out, entry{h.Name, h.FinalState, h.Error, h.Rows, h.EndedAt})
			if !h.StartedAt.Equal(at(0)) || h.Spec.Source.Connector == "" {
				t.Errorf("%s: started %v, spec %+v", h.Name, h.StartedAt, h.Spec)
			}
		}
		return out
	}
	want := []entry{
		{"done", "FINISHED", "", 25000, at(2)},
		{"broken", "FAILED", "boom", 7, at(3)},
		{"broken", "FAILED", "second", 0, at(6)},
		{"gone", DroppedState, "", 3, at(7)},
	}
	if g := got(); len(g) != len(want) {
		t.Fatalf("history %+v, want %+v", g, want)
	} else {
		for i := range want {
			if g[i] != want[i] {
				t.Errorf("history[%d] = %+v, want %+v", i, g[i], want[i])
			}
		}
	}
	if oldest, ok := f.fsm.OldestRetained(); !ok || !oldest.Equal(at(0)) {
		t.Errorf("oldest retained %v %v, want the first event at %v", oldest, ok, at(0))
	}
	events := len(f.fsm.Events())
	f.mustOK(CmdExpire, &Expire{Before: at(3)})
	if g := got(); len(g) != 3 || g[0].ended != at(3) {
		t.Fatalf("after expiring before %v: %+v", at(3), g)
	}
	for _, e := range f.fsm.Events() {
		if e.Time.Before(at(3)) {
			t.Errorf("event %+v older than the cut survived", e)
		}
	}
	if left := len(f.fsm.Events()); left >= events || left == 0 {
		t.Errorf("%d events of %d left after the cut", left, events)
	}
	if _, ok := f.fsm.Job("done"); !ok {
		t.Error("expiry removed a job")
	}
	// Snapshots carry the history.
	restored := NewFSM()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(persist(t, f.fsm)))); err != nil {
		t.Fatal(err)
	}
	if len(restored.History()) != 3 {
		t.Errorf("history after snapshot/restore: %+v", restored.History())
	}
}
