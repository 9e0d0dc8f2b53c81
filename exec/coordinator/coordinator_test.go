package coordinator

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"sluice/catalog"
)

func newCat(t *testing.T, nodes ...catalog.Node) (*catalog.Catalog, *Coordinator) {
	t.Helper()
	cat := catalog.NewLocal()
	for _, n := range nodes {
		if err := cat.RegisterNode(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	return cat, New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cat)
}

func create(t *testing.T, cat *catalog.Catalog, name string, par int, opts map[string]string) {
	t.Helper()
	if _, err := cat.CreateJob(context.Background(), catalog.CreateJob{Name: name, Spec: catalog.JobSpec{Options: opts},
		Plan: catalog.Plan{Pipelines: []catalog.Pipeline{{ID: 1, Parallelism: par}}}}); err != nil {
		t.Fatal(err)
	}
}

func job(cat *catalog.Catalog, name string) catalog.Job { j, _ := cat.Job(name); return j }

func setStatus(t *testing.T, cat *catalog.Catalog, id, status string) {
	t.Helper()
	if err := cat.SetNodeStatus(context.Background(), catalog.SetNodeStatus{ID: id, Status: status}); err != nil {
		t.Fatal(err)
	}
}

// A running job whose placement holds is adopted as it is (a new leader
// restarts nothing); one whose node went DOWN moves with a higher attempt;
// one with nowhere to go waits with a higher attempt, which fences its
// lost tasks, and runs again once a node is back.
func TestScheduleAdoptsMovesAndWaits(t *testing.T) {
	ctx := context.Background()
	cat, c := newCat(t, catalog.Node{ID: "a", Slots: 2, Incarnation: "a1"}, catalog.Node{ID: "b", Slots: 2, Incarnation: "b1"})
	create(t, cat, "j", 2, nil)
	c.Schedule(ctx)
	j := job(cat, "j")
	if j.State != catalog.Running || j.Attempt != 1 || len(j.Placement) != 2 || j.Placement[0].Node == j.Placement[1].Node {
		t.Fatalf("placed %+v", j)
	}
	for i := 0; i < 3; i++ {
		New(Config{Logger: c.log}, cat).Schedule(ctx) // a new coordinator (leader) adopts
	}
	if k := job(cat, "j"); k.Attempt != 1 || k.Version != j.Version {
		t.Fatalf("a running job with a sound placement was touched: attempt %d", k.Attempt)
	}
	setStatus(t, cat, "b", catalog.NodeDown)
	c.Schedule(ctx)
	if k := job(cat, "j"); k.State != catalog.Running || k.Attempt != 2 || k.Placement[0].Node != "a" || k.Placement[1].Node != "a" {
		t.Fatalf("after b went DOWN: %+v", k)
	}
	setStatus(t, cat, "a", catalog.NodeDown)
	c.Schedule(ctx)
	k := job(cat, "j")
	if k.State != catalog.Waiting || k.Attempt != 3 || len(k.Placement) != 0 {
		t.Fatalf("with every node DOWN: %s attempt %d placement %v", k.State, k.Attempt, k.Placement)
	}
	if pos := catalog.QueuePositions(cat.Jobs()); pos[k.ID] != 1 {
		t.Fatalf("queue %v", pos)
	}
	setStatus(t, cat, "b", catalog.NodeUp)
	c.Schedule(ctx)
	if k := job(cat, "j"); k.State != catalog.Running || k.Attempt != 4 {
		t.Fatalf("with b back: %s attempt %d", k.State, k.Attempt)
	}
}

// schedule.strategy=reject refuses a new job that does not fit; a job
// already accepted that loses its nodes waits instead of failing.
func TestRejectOnlyNewJobs(t *testing.T) {
	ctx := context.Background()
	cat, c := newCat(t, catalog.Node{ID: "a", Slots: 1, Incarnation: "a1"})
	create(t, cat, "ok", 1, map[string]string{"schedule.strategy": "reject"})
	create(t, cat, "no", 1, map[string]string{"schedule.strategy": "reject"})
	c.Schedule(ctx)
	if j := job(cat, "ok"); j.State != catalog.Running {
		t.Fatalf("ok: %s", j.State)
	}
	if j := job(cat, "no"); j.State != catalog.Failed || !strings.Contains(j.Error, "needs 1 free slot; no node fits (a 0 free)") {
		t.Fatalf("no: %s %q", j.State, j.Error)
	}
	setStatus(t, cat, "a", catalog.NodeDown)
	c.Schedule(ctx)
	if j := job(cat, "ok"); j.State != catalog.Waiting {
		t.Fatalf("an accepted job whose node died: %s %q", j.State, j.Error)
	}
}

// Jobs that wait are placed in queue order when slots free up.
func TestWaitQueueOrder(t *testing.T) {
	ctx := context.Background()
	cat, c := newCat(t, catalog.Node{ID: "a", Slots: 1, Incarnation: "a1"})
	for _, n := range []string{"first", "second", "third"} {
		create(t, cat, n, 1, nil)
		c.Schedule(ctx)
	}
	if job(cat, "first").State != catalog.Running || job(cat, "second").State != catalog.Waiting || job(cat, "third").State != catalog.Waiting {
		t.Fatal("one slot: one runs, two wait")
	}
	pos := catalog.QueuePositions(cat.Jobs())
	if pos[job(cat, "second").ID] != 1 || pos[job(cat, "third").ID] != 2 {
		t.Fatalf("queue %v", pos)
	}
	if _, err := cat.DropJob(ctx, catalog.DropJob{Name: "first"}); err != nil {
		t.Fatal(err)
	}
	c.Schedule(ctx)
	if job(cat, "second").State != catalog.Running || job(cat, "third").State != catalog.Waiting {
		t.Fatalf("second %s, third %s", job(cat, "second").State, job(cat, "third").State)
	}
}

// Tasks go only to nodes this leader has heard from; a job that fits only
// with a node not heard from yet is not judged (no WAITING) until the
// node speaks or is found DOWN.
func TestPlacesOnlyOnNodesHeardFrom(t *testing.T) {
	ctx := context.Background()
	cat, c := newCat(t, catalog.Node{ID: "a", Slots: 1, Incarnation: "a1"}, catalog.Node{ID: "b", Slots: 1, Incarnation: "b1"},
		catalog.Node{ID: "c", Incarnation: "c1"})
	heard := map[string]bool{"a": true, "b": true}
	c.cfg.Heard = func(n catalog.Node) bool { return heard[n.ID] }
	create(t, cat, "one", 2, nil)
	c.Schedule(ctx)
	if j := job(cat, "one"); j.State != catalog.Running || j.Placement[0].Node != "a" || j.Placement[1].Node != "b" {
		t.Fatalf("placed %+v on nodes not heard from", j.Placement)
	}
	create(t, cat, "two", 1, nil) // a and b are full; c is not heard from
	c.Schedule(ctx)
	if j := job(cat, "two"); j.State != catalog.Created {
		t.Fatalf("two: %s, want CREATED until c speaks", j.State)
	}
	heard["c"] = true
	c.Schedule(ctx)
	if j := job(cat, "two"); j.State != catalog.Running || j.Placement[0].Node != "c" {
		t.Fatalf("two: %s %+v", j.State, j.Placement)
	}
	create(t, cat, "three", 1, map[string]string{"tags": "zone=x"})
	heard["c"] = false
	setStatus(t, cat, "c", catalog.NodeDown)
	c.Schedule(ctx)
	if j := job(cat, "three"); j.State != catalog.Waiting {
		t.Fatalf("three: %s, want WAITING once every node is heard from or DOWN", j.State)
	}
}

// The leader expires job history and events once history.retention has
// passed them, and writes nothing while none has.
func TestExpireHistory(t *testing.T) {
	ctx := context.Background()
	cat, c := newCat(t)
	create(t, cat, "old", 1, nil)
	now := time.Now()
	if _, err := cat.DropJob(ctx, catalog.DropJob{Name: "old", Time: now.Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	create(t, cat, "recent", 1, nil)
	if _, err := cat.DropJob(ctx, catalog.DropJob{Name: "recent", Time: now}); err != nil {
		t.Fatal(err)
	}
	c.cfg.HistoryRetention = time.Hour
	index := cat.Index()
	c.expire(ctx, now.Add(-90*time.Minute)) // nothing is older than an hour yet
	if cat.Index() != index {
		t.Fatal("expire wrote with nothing to expire")
	}
	c.expire(ctx, now)
	h := cat.History()
	if len(h) != 1 || h[0].Name != "recent" {
		t.Fatalf("history after expiry: %+v", h)
	}
	for _, e := range cat.Events() {
		if e.Time.Before(now.Add(-time.Hour)) {
			t.Errorf("event older than the retention kept: %+v", e)
		}
	}
}
