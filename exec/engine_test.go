package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"go.uber.org/goleak"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/datagen"
	"sluice/connectors/file"
	"sluice/connectors/tablerename"
	"sluice/exec/coordinator"
	"sluice/planner"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a sink that remembers every id it was given, per table.
type recorder struct {
	mu      sync.Mutex
	seen    map[string]map[int64]int
	failAt  int64         // fail the write containing this id (0: never)
	slow    time.Duration // sleep in every Write
	written int64
	onWrite func() // called at the start of every Write, if set
}

func newRecorder() *recorder { return &recorder{seen: map[string]map[int64]int{}} }

func (r *recorder) spec() connectors.Spec {
	return connectors.Spec{Name: "record", Kind: connectors.KindSink,
		NewSink: func(connectors.Config, connectors.Env) (connectors.Sink, error) { return &recSink{r: r}, nil }}
}

type recSink struct{ r *recorder }

func (s *recSink) Open(context.Context) error  { return nil }
func (s *recSink) Flush(context.Context) error { return nil }
func (s *recSink) Close() error                { return nil }
func (s *recSink) Write(_ context.Context, b connectors.Batch) error {
	s.r.mu.Lock()
	slow, on := s.r.slow, s.r.onWrite
	s.r.mu.Unlock()
	if on != nil {
		on()
	}
	time.Sleep(slow)
	ids := b.Record.Column(1).(*array.Int64)
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	m := s.r.seen[b.Table.String()]
	if m == nil {
		m = map[int64]int{}
		s.r.seen[b.Table.String()] = m
	}
	for i := 0; i < ids.Len(); i++ {
		if s.r.failAt != 0 && ids.Value(i) == s.r.failAt {
			return errors.New("injected sink failure")
		}
	}
	for i := 0; i < ids.Len(); i++ {
		m[ids.Value(i)]++
		s.r.written++
	}
	return nil
}

func (r *recorder) setSlow(d time.Duration) {
	r.mu.Lock()
	r.slow = d
	r.mu.Unlock()
}

func (r *recorder) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

// check verifies every table holds each id exactly once, ids 1..n with no
// gap when n > 0 (otherwise any contiguous-per-subtask prefix).
func (r *recorder) checkExactlyOnce(t *testing.T, table string, n int64) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.seen[table]
	for id, c := range m {
		if c != 1 {
			t.Fatalf("%s: id %d written %d times", table, id, c)
		}
	}
	if n > 0 && int64(len(m)) != n {
		t.Fatalf("%s: %d distinct ids, want %d", table, len(m), n)
	}
	for id := int64(1); id <= n; id++ {
		if m[id] != 1 {
			t.Fatalf("%s: id %d missing", table, id)
		}
	}
}

type harness struct {
	t      *testing.T
	cat    *catalog.Catalog
	eng    *Engine
	rec    *recorder
	alloc  *memory.CheckedAllocator
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T, slots int) *harness {
	cat := catalog.NewLocal()
	rec := newRecorder()
	reg := connectors.NewRegistry().MustRegister(datagen.Spec(), tablerename.Spec(), rec.spec(), file.Spec(),
		connectors.Spec{Name: "hold", Kind: connectors.KindSink,
			NewSink: func(connectors.Config, connectors.Env) (connectors.Sink, error) {
				return &holdSink{recSink: recSink{r: rec}}, nil
			}})
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	if err := cat.RegisterNode(context.Background(), catalog.Node{ID: "n1", Role: "hybrid", Slots: slots, Incarnation: "i1"}); err != nil {
		t.Fatal(err)
	}
	eng := New(Config{NodeID: "n1", Incarnation: "i1", Slots: slots, Registry: reg, Alloc: alloc, Resync: 20 * time.Millisecond,
		JobOptions: planner.JobConfig, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cat)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, cat: cat, eng: eng, rec: rec, alloc: alloc, cancel: cancel, done: make(chan struct{})}
	coord := coordinator.New(coordinator.Config{Resync: 20 * time.Millisecond, RetryInterval: planner.RetryInterval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cat)
	coordDone := make(chan struct{})
	go func() { coord.Run(ctx); close(coordDone) }()
	go func() { _ = eng.Run(ctx); <-coordDone; close(h.done) }()
	t.Cleanup(func() {
		h.cancel()
		<-h.done
		alloc.AssertSize(t, 0)
	})
	return h
}

func (h *harness) create(name string, src map[string]string, par int, transforms ...catalog.ConnectorRef) catalog.Job {
	h.t.Helper()
	return h.createWith(name, src, catalog.ConnectorRef{Connector: "record"}, map[string]string{"parallelism": fmt.Sprint(par)}, transforms...)
}

func (h *harness) createWith(name string, src map[string]string, sink catalog.ConnectorRef, with map[string]string, transforms ...catalog.ConnectorRef) catalog.Job {
	h.t.Helper()
	par := 1
	if v, ok := with["parallelism"]; ok {
		fmt.Sscan(v, &par)
	}
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "datagen", Options: src},
		Transforms: transforms, Sink: sink, Options: with}
	var plan catalog.Plan
	plan.Vertices = append(plan.Vertices, catalog.Vertex{ID: 1, Kind: "source", Connector: "datagen", Ref: catalog.RefSource})
	ids := []int{1}
	for i, tr := range transforms {
		plan.Vertices = append(plan.Vertices, catalog.Vertex{ID: i + 2, Kind: "transform", Connector: tr.Connector, Ref: i})
		ids = append(ids, i+2)
	}
	sinkID := len(plan.Vertices) + 1
	plan.Vertices = append(plan.Vertices, catalog.Vertex{ID: sinkID, Kind: "sink", Connector: sink.Connector, Ref: catalog.RefSink})
	plan.Pipelines = []catalog.Pipeline{{ID: 1, Vertices: append(ids, sinkID), Parallelism: par}}
	res, err := h.cat.CreateJob(context.Background(), catalog.CreateJob{Name: name, Spec: spec, Plan: plan})
	if err != nil {
		h.t.Fatal(err)
	}
	return *res.Job
}

func (h *harness) job(name string) catalog.Job {
	j, _ := h.cat.Job(name)
	return j
}

func (h *harness) waitState(name string, want catalog.JobState) catalog.Job {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if j, ok := h.cat.Job(name); ok && j.State == want {
			return j
		}
		time.Sleep(5 * time.Millisecond)
	}
	j, _ := h.cat.Job(name)
	h.t.Fatalf("job %s is %s (%s), want %s", name, j.State, j.Error, want)
	return j
}

func (h *harness) setState(name string, to catalog.JobState) {
	h.t.Helper()
	if _, err := h.cat.SetJobState(context.Background(), catalog.SetJobState{Name: name, To: to}); err != nil {
		h.t.Fatal(err)
	}
}

func TestBoundedJobFinishesExactlyOnce(t *testing.T) {
	h := newHarness(t, 0)
	h.create("b", map[string]string{"rows": "10007", "batch_size": "100", "tables": "t1,t2"}, 3,
		catalog.ConnectorRef{Connector: "table_rename", Options: map[string]string{"prefix": "ods_"}})
	h.waitState("b", catalog.Finished)
	h.rec.checkExactlyOnce(t, "datagen.ods_t1", 10007)
	h.rec.checkExactlyOnce(t, "datagen.ods_t2", 10007)
	// Metrics count by source table, after the sink wrote.
	var got int
	for _, m := range h.eng.Metrics().Rows() {
		if m.Job == "b" {
			got++
			if m.SourceReceivedCount != 10007 || m.SinkWriteCount != 10007 || m.SinkWriteBytes <= 0 || !strings.HasPrefix(m.Table, "datagen.t") {
				t.Fatalf("metrics: %+v", m)
			}
		}
	}
	if got != 2 {
		t.Fatalf("want metrics for 2 tables, got %d", got)
	}
	if n := len(h.eng.Tasks()); n != 0 {
		t.Fatalf("finished job still has %d tasks", n)
	}
	if _, used := h.eng.SlotUsage(); used != 0 {
		t.Fatalf("finished job holds %d slots", used)
	}
}

func TestPauseResumeContinuesWithoutGapOrRepeat(t *testing.T) {
	h := newHarness(t, 0)
	h.create("u", map[string]string{"rate": "20000", "batch_size": "50"}, 2)
	h.waitState("u", catalog.Running)
	for h.rec.count() < 500 {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(h.eng.Tasks()); n != 2 {
		t.Fatalf("tasks: %d, want 2", n)
	}
	h.setState("u", catalog.Paused)
	deadline := time.Now().Add(5 * time.Second)
	for len(h.eng.Tasks()) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	paused := h.rec.count()
	time.Sleep(100 * time.Millisecond)
	if h.rec.count() != paused {
		t.Fatal("rows still flowing after PAUSE")
	}
	h.setState("u", catalog.Scheduled) // RESUME
	h.waitState("u", catalog.Running)
	for h.rec.count() < paused+500 {
		time.Sleep(5 * time.Millisecond)
	}
	h.setState("u", catalog.Paused)
	for len(h.eng.Tasks()) != 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// Each subtask's ids form a prefix of its sequence: no gap, no repeat.
	h.rec.mu.Lock()
	m := h.rec.seen["datagen.t1"]
	h.rec.mu.Unlock()
	h.rec.checkExactlyOnce(t, "datagen.t1", 0)
	for sub := int64(0); sub < 2; sub++ {
		var n int64
		for id := range m {
			if (id-1)%2 == sub {
				n++
			}
		}
		for k := int64(0); k < n; k++ {
			if m[sub+1+k*2] != 1 {
				t.Fatalf("subtask %d: id %d missing among its first %d", sub, sub+1+k*2, n)
			}
		}
	}
}

func TestDropStopsJobAndForgetsMetrics(t *testing.T) {
	h := newHarness(t, 0)
	h.create("d", map[string]string{"rate": "1000"}, 1)
	h.waitState("d", catalog.Running)
	if _, err := h.cat.DropJob(context.Background(), catalog.DropJob{Name: "d"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (len(h.eng.Tasks()) != 0 || len(h.eng.Metrics().Rows()) != 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(h.eng.Tasks()) != 0 || len(h.eng.Metrics().Rows()) != 0 {
		t.Fatal("dropped job still has tasks or metrics")
	}
}

func TestSinkFailureRetriesThenFailsWithCause(t *testing.T) {
	h := newHarness(t, 0)
	h.rec.failAt = 300
	h.createWith("f", map[string]string{"rows": "1000", "batch_size": "10"}, catalog.ConnectorRef{Connector: "record"},
		map[string]string{"retry.times": "2", "retry.interval": "10ms", "checkpoint.interval": "1h"})
	j := h.waitState("f", catalog.Failed)
	if !strings.Contains(j.Error, "injected sink failure") || !strings.Contains(j.Error, "pipeline 1 task 0") {
		t.Fatalf("error does not name the cause: %q", j.Error)
	}
	if j.Restarts != 2 || j.Attempt != 3 {
		t.Fatalf("restarts %d attempt %d, want 2 and 3", j.Restarts, j.Attempt)
	}
	var kinds []string
	for _, e := range h.cat.Events() {
		if e.Job == "f" {
			kinds = append(kinds, e.Kind)
		}
	}
	if got := strings.Join(kinds, ","); strings.Count(got, "RESTARTING") < 2 || !strings.HasSuffix(got, "FAILED") {
		t.Fatalf("events: %s", got)
	}
}

func TestSlotsRejectAndWait(t *testing.T) {
	h := newHarness(t, 2)
	h.create("full", map[string]string{"rate": "100"}, 2)
	h.waitState("full", catalog.Running)
	// The queue: first come, first placed; a job that does not fit holds
	// back no later one that does.
	h.create("w1", map[string]string{"rate": "100"}, 1)
	h.waitState("w1", catalog.Waiting)
	h.create("w2", map[string]string{"rate": "100"}, 2)
	h.waitState("w2", catalog.Waiting)
	if pos := catalog.QueuePositions(h.cat.Jobs()); pos[h.job("w1").ID] != 1 || pos[h.job("w2").ID] != 2 {
		t.Fatalf("queue positions %v", pos)
	}
	waited := ""
	for _, e := range h.cat.Events() {
		if e.Job == "w2" && e.Kind == "WAITING" {
			waited = e.Message
		}
	}
	if !strings.Contains(waited, "needs 2 free slots; no node fits (n1 0 free)") || !strings.Contains(waited, "position 2 in the wait queue") {
		t.Fatalf("WAITING event: %q", waited)
	}
	if _, err := h.cat.DropJob(context.Background(), catalog.DropJob{Name: "full"}); err != nil {
		t.Fatal(err)
	}
	h.waitState("w1", catalog.Running) // first in the queue, placed first
	if pos := catalog.QueuePositions(h.cat.Jobs()); h.job("w2").State != catalog.Waiting || pos[h.job("w2").ID] != 1 {
		t.Fatalf("w2 %s at %v: one slot is left, it needs two", h.job("w2").State, pos)
	}
	if _, err := h.cat.DropJob(context.Background(), catalog.DropJob{Name: "w1"}); err != nil {
		t.Fatal(err)
	}
	h.waitState("w2", catalog.Running)
	if _, err := h.cat.DropJob(context.Background(), catalog.DropJob{Name: "w2"}); err != nil {
		t.Fatal(err)
	}
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "datagen"}, Sink: catalog.ConnectorRef{Connector: "record"},
		Options: map[string]string{"parallelism": "3", "schedule.strategy": "reject"}}
	plan := catalog.Plan{Vertices: []catalog.Vertex{{ID: 1, Kind: "source", Connector: "datagen", Ref: catalog.RefSource},
		{ID: 2, Kind: "sink", Connector: "record", Ref: catalog.RefSink}}, Pipelines: []catalog.Pipeline{{ID: 1, Vertices: []int{1, 2}, Parallelism: 3}}}
	if _, err := h.cat.CreateJob(context.Background(), catalog.CreateJob{Name: "r", Spec: spec, Plan: plan}); err != nil {
		t.Fatal(err)
	}
	f := h.waitState("r", catalog.Failed)
	if !strings.Contains(f.Error, "needs 3 free slots; the fitting nodes have 2 (n1 2 free)") {
		t.Fatalf("reject error: %q", f.Error)
	}
	rows := h.eng.Slots()
	if len(rows) != 2 || rows[0].Job != "" {
		t.Fatalf("slots: %+v", rows)
	}
}

// holdSink keeps every batch until Drain, as a sink carrying rows in its
// checkpoint state does between its loads.
type holdSink struct {
	recSink
	held []connectors.Batch
}

func (s *holdSink) Write(_ context.Context, b connectors.Batch) error {
	b.Record.Retain()
	s.held = append(s.held, b)
	return nil
}

func (s *holdSink) Drain(ctx context.Context) error {
	for _, b := range s.held {
		err := s.recSink.Write(ctx, b)
		b.Release()
		if err != nil {
			return err
		}
	}
	s.held = nil
	return nil
}

func (s *holdSink) Close() error {
	for _, b := range s.held {
		b.Release()
	}
	return nil
}

// TestFinalBarrierDrainsTheSink: a Drainer is drained at the final
// barrier, so a finishing job leaves nothing held in the sink.
func TestFinalBarrierDrainsTheSink(t *testing.T) {
	h := newHarness(t, 0)
	h.createWith("d", map[string]string{"rows": "5000", "batch_size": "100"}, catalog.ConnectorRef{Connector: "hold"},
		map[string]string{"checkpoint.interval": "50ms"})
	h.waitState("d", catalog.Finished)
	h.rec.checkExactlyOnce(t, "datagen.t1", 5000)
}
