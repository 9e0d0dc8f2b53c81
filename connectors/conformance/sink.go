package conformance

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"go.uber.org/goleak"

	"sluice/connectors"
)

// SinkDriver says how the suite gets instances of one sink and what the
// sink can do.
type SinkDriver struct {
	// New returns an unopened instance for env (the suite sets the job,
	// its id, the pipeline, the subtask and the allocator).
	New func(t *testing.T, env connectors.Env) connectors.Sink
	// Table names the target table of one check (unique per check).
	Table func(check string) connectors.TableID
	// Rows reads the visible rows of a table back, each rendered with
	// Line, sorted; nil Rows: the sink cannot be read back, and only the
	// lifecycle checks run.
	Rows func(t *testing.T, id connectors.TableID) []string
	// Reset empties a target table, as a user's TRUNCATE does.
	Reset func(t *testing.T, id connectors.TableID)
	// ExactlyOnce: the instance is a TwoPhaseSink whose writes are not
	// visible before Commit.
	ExactlyOnce bool
	// Schema: the sink follows ADD, RENAME and DROP COLUMN.
	Schema bool
	// CloseWithin bounds Close (default 10 s).
	CloseWithin time.Duration
}

// words are the suite's text values: unicode, quotes, escapes.
var words = []string{"a", "✓ check", "日本語", "😀 emoji", "naïve", "'single'", `"double"`, `back\slash`, "tab\there", "line\nbreak", "", "x,y=z"}

var testSchema = arrow.NewSchema([]arrow.Field{connectors.RowKindField,
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "v", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, func() *arrow.Metadata { m := connectors.KeyMetadata("id"); return &m }())

// change is one row change of a generated batch.
type change struct {
	kind connectors.RowKind
	vals []any // by field after the row kind; nil = NULL
}

// gen makes batches of random changes over a small key space: inserts
// of new keys, updates (before and after image) and deletes of live ones.
type gen struct {
	rng  *rand.Rand
	live map[int64][]any
	keys []int64 // live keys, in insertion order (deterministic choice)
	next int64
}

func newGen(seed int64) *gen {
	return &gen{rng: rand.New(rand.NewSource(seed)), live: map[int64][]any{}, next: 1}
}

func (g *gen) pick() int64 {
	if len(g.keys) == 0 {
		return -1
	}
	return g.keys[g.rng.Intn(len(g.keys))]
}

func (g *gen) forget(id int64) {
	delete(g.live, id)
	for i, k := range g.keys {
		if k == id {
			g.keys = append(g.keys[:i], g.keys[i+1:]...)
			return
		}
	}
}

func (g *gen) row(id int64) []any {
	var v, n any
	if g.rng.Intn(5) > 0 {
		v = words[g.rng.Intn(len(words))] + fmt.Sprint(g.rng.Intn(100))
	}
	if g.rng.Intn(4) > 0 {
		n = int64(g.rng.Intn(1000)) - 500
	}
	return []any{id, v, n}
}

func (g *gen) changes(n int) []change {
	var out []change
	for len(out) < n {
		id := g.pick()
		switch op := g.rng.Intn(4); {
		case op < 2 || id < 0:
			r := g.row(g.next)
			g.next++
			g.live[r[0].(int64)] = r
			g.keys = append(g.keys, r[0].(int64))
			out = append(out, change{connectors.Insert, r})
		case op == 2:
			r := g.row(id)
			out = append(out, change{connectors.UpdateBefore, g.live[id]}, change{connectors.UpdateAfter, r})
			g.live[id] = r
		default:
			out = append(out, change{connectors.Delete, g.live[id]})
			g.forget(id)
		}
	}
	return out
}

// build makes a batch of schema's columns from changes (values by field
// name order of the schema's data fields).
func build(alloc memory.Allocator, id connectors.TableID, schema *arrow.Schema, ddl string, cs []change) connectors.Batch {
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	for _, c := range cs {
		b.Field(0).(*array.Int8Builder).Append(int8(c.kind))
		for i, v := range c.vals {
			switch fb := b.Field(i + 1).(type) {
			case *array.Int64Builder:
				if v == nil {
					fb.AppendNull()
				} else {
					fb.Append(v.(int64))
				}
			case *array.StringBuilder:
				if v == nil {
					fb.AppendNull()
				} else {
					fb.Append(v.(string))
				}
			}
		}
	}
	return connectors.Batch{Table: id, Record: b.NewRecord(), DDL: ddl, EventTime: time.Now()}
}

// attempts counts the starts of each job id (tests of one process).
var attempts = map[uint64]int{}

// instance is one sink instance under the suite's watch.
type instance struct {
	t     *testing.T
	d     SinkDriver
	s     connectors.Sink
	tp    connectors.TwoPhaseSink
	alloc *memory.CheckedAllocator
}

func (d SinkDriver) open(t *testing.T, jobID uint64, recoverID uint64, state []byte) *instance {
	t.Helper()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	attempts[jobID]++ // every start of a job is a new attempt, as the engine counts them
	s := d.New(t, connectors.Env{Job: "conf", JobID: jobID, Attempt: attempts[jobID], Parallelism: 1, Alloc: alloc, LastCheckpointID: recoverID + 1})
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	in := &instance{t: t, d: d, s: s, alloc: alloc}
	in.tp, _ = s.(connectors.TwoPhaseSink)
	if d.ExactlyOnce && in.tp == nil {
		t.Fatal("an exactly-once sink must be a TwoPhaseSink")
	}
	if in.tp != nil {
		if err := in.tp.Recover(context.Background(), recoverID, state); err != nil {
			t.Fatalf("Recover(%d): %v", recoverID, err)
		}
	}
	return in
}

func (in *instance) write(b connectors.Batch) {
	in.t.Helper()
	err := in.s.Write(context.Background(), b)
	b.Release()
	if err != nil {
		in.t.Fatalf("Write: %v", err)
	}
}

// barrier flushes and pre-commits checkpoint id, as the engine does.
func (in *instance) barrier(id uint64) []byte {
	in.t.Helper()
	if err := in.s.Flush(context.Background()); err != nil {
		in.t.Fatalf("Flush at %d: %v", id, err)
	}
	if in.tp == nil {
		return nil
	}
	st, err := in.tp.PreCommit(context.Background(), id)
	if err != nil {
		in.t.Fatalf("PreCommit(%d): %v", id, err)
	}
	return st
}

func (in *instance) commit(id uint64, st []byte) {
	in.t.Helper()
	if in.tp != nil {
		if err := in.tp.Commit(context.Background(), id, st); err != nil {
			in.t.Fatalf("Commit(%d): %v", id, err)
		}
	}
}

// close closes within the bound and checks that no Arrow memory is left.
func (in *instance) close() {
	in.t.Helper()
	bound := in.d.CloseWithin
	if bound == 0 {
		bound = 10 * time.Second
	}
	done := make(chan error, 1)
	go func() { done <- in.s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			in.t.Fatalf("Close: %v", err)
		}
	case <-time.After(bound):
		in.t.Fatalf("Close did not return within %s", bound)
	}
	in.alloc.AssertSize(in.t, 0)
}

// RunSink runs every check the driver's capabilities allow.
func RunSink(t *testing.T, d SinkDriver) {
	t.Run("Lifecycle", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		g := newGen(1)
		id := d.Table("lifecycle")
		in := d.open(t, 1, 0, nil)
		for i := uint64(1); i <= 3; i++ {
			in.write(build(in.alloc, id, testSchema, "", g.changes(20)))
			in.commit(i, in.barrier(i))
		}
		in.close()
	})
	if d.Rows == nil {
		return
	}
	t.Run("ReplayAfterARestartLeavesTheSameState", func(t *testing.T) { replayCheck(t, d) })
	t.Run("RecreatedJobLoadsEverythingAgain", func(t *testing.T) { recreateCheck(t, d) })
	if d.ExactlyOnce {
		t.Run("ExactlyOnce", func(t *testing.T) { exactlyOnceCheck(t, d) })
	}
	if d.Schema {
		t.Run("SchemaChanges", func(t *testing.T) { schemaCheck(t, d) })
	}
}

func (d SinkDriver) expect(t *testing.T, id connectors.TableID, want *State, when string) {
	t.Helper()
	if df := diff(want.Table(id), d.Rows(t, id)); df != "" {
		t.Fatalf("%s: %s", when, df)
	}
}

// replayCheck: checkpoint 1 committed; 2 pre-committed and then a crash;
// the restarted instance recovers 1 and the batches after it are written
// again. The state is that of every change once.
func replayCheck(t *testing.T, d SinkDriver) {
	g := newGen(2)
	id := d.Table("replay")
	want := NewState()
	var batches [][]change
	for i := 0; i < 5; i++ {
		batches = append(batches, g.changes(30))
	}
	a := d.open(t, 10, 0, nil)
	for _, cs := range batches[:3] {
		b := build(a.alloc, id, testSchema, "", cs)
		_ = want.Apply(b)
		a.write(b)
	}
	st1 := a.barrier(1)
	a.commit(1, st1)
	for _, cs := range batches[3:] {
		a.write(build(a.alloc, id, testSchema, "", cs))
	}
	a.barrier(2) // crash: checkpoint 2 never committed
	a.close()

	b := d.open(t, 10, 1, st1)
	for _, cs := range batches[3:] {
		r := build(b.alloc, id, testSchema, "", cs)
		_ = want.Apply(r)
		b.write(r)
	}
	st2 := b.barrier(2)
	b.commit(2, st2)
	d.expect(t, id, want, "after the replay")
	b.close()
}

// recreateCheck: a job dropped, its target emptied, and a job of the same
// name created again (a new job id) writes the same rows: all of them load.
func recreateCheck(t *testing.T, d SinkDriver) {
	id := d.Table("recreate")
	var want *State
	for _, jobID := range []uint64{20, 21} {
		g := newGen(3)
		want = NewState()
		in := d.open(t, jobID, 0, nil)
		for i := uint64(1); i <= 2; i++ {
			b := build(in.alloc, id, testSchema, "", g.changes(25))
			_ = want.Apply(b)
			in.write(b)
			in.commit(i, in.barrier(i))
		}
		d.expect(t, id, want, fmt.Sprintf("job id %d", jobID))
		in.close()
		if d.Reset != nil {
			d.Reset(t, id)
		}
	}
}

// exactlyOnceCheck: nothing visible before Commit; Recover commits what
// the checkpoint prepared and discards what was prepared after it.
func exactlyOnceCheck(t *testing.T, d SinkDriver) {
	g := newGen(4)
	id := d.Table("exactly_once")
	want := NewState()
	a := d.open(t, 30, 0, nil)
	b := build(a.alloc, id, testSchema, "", g.changes(20))
	_ = want.Apply(b)
	a.write(b)
	st1 := a.barrier(1)
	a.commit(1, st1)
	d.expect(t, id, want, "after Commit(1)")

	next := want.Clone()
	b = build(a.alloc, id, testSchema, "", g.changes(20))
	_ = next.Apply(b)
	a.write(b)
	st2 := a.barrier(2)
	d.expect(t, id, want, "pre-committed, before Commit(2): nothing of it may be visible")
	a.close() // crash after the catalog committed 2: Recover must commit it

	r := d.open(t, 30, 2, st2)
	d.expect(t, id, next, "after Recover(2)")
	b = build(r.alloc, id, testSchema, "", g.changes(20))
	r.write(b)
	r.barrier(3)
	r.close() // crash before 3 was committed: Recover(2) must discard it

	r = d.open(t, 30, 2, st2)
	d.expect(t, id, next, "after Recover(2) again: the work of checkpoint 3 must be gone")
	r.close()
}

// schemaCheck: ADD COLUMN, RENAME COLUMN and DROP COLUMN followed with
// the data in place; rows of an older schema replayed afterwards neither
// drop a column nor null its values.
func schemaCheck(t *testing.T, d SinkDriver) {
	id := d.Table("schema")
	in := d.open(t, 40, 0, nil)
	md := testSchema.Metadata()
	fields := testSchema.Fields()
	withCol := func(fs ...arrow.Field) *arrow.Schema { return arrow.NewSchema(fs, &md) }
	c := arrow.Field{Name: "c", Type: arrow.BinaryTypes.String, Nullable: true}
	added := withCol(append(fields[:4:4], c)...)
	renamed := withCol(append(fields[:4:4], arrow.Field{Name: "c2", Type: arrow.BinaryTypes.String, Nullable: true})...)
	dropped := withCol(fields[0], fields[1], fields[3], renamed.Field(4)) // v dropped

	in.write(build(in.alloc, id, testSchema, "", []change{{connectors.Insert, []any{int64(1), "one", int64(1)}}}))
	in.commit(1, in.barrier(1))
	in.write(build(in.alloc, id, added, "ALTER TABLE t ADD COLUMN c VARCHAR(20)",
		[]change{{connectors.Insert, []any{int64(2), "two", int64(2), "日本"}}}))
	in.commit(2, in.barrier(2))
	in.write(build(in.alloc, id, renamed, "ALTER TABLE t RENAME COLUMN c TO c2",
		[]change{{connectors.UpdateAfter, []any{int64(1), "one", int64(1), "😀"}}}))
	in.commit(3, in.barrier(3))
	want := []string{"c2=😀,id=1,n=1,v=one", "c2=日本,id=2,n=2,v=two"}
	if got := d.Rows(t, id); sorted(got) != sorted(want) {
		t.Fatalf("after ADD and RENAME COLUMN: %q, want %q", got, want)
	}
	// A restart replays rows of the schema before the ADD COLUMN.
	in.close()
	in = d.open(t, 40, 3, nil)
	in.write(build(in.alloc, id, testSchema, "", []change{{connectors.UpdateAfter, []any{int64(2), "two again", int64(2)}},
		{connectors.Insert, []any{int64(3), "three", nil}}}))
	in.commit(4, in.barrier(4))
	want = []string{"c2=😀,id=1,n=1,v=one", "c2=NULL,id=3,n=NULL,v=three", "c2=日本,id=2,n=2,v=two again"}
	if got := d.Rows(t, id); sorted(got) != sorted(want) {
		t.Fatalf("rows of an older schema replayed: %q, want %q", got, want)
	}
	in.write(build(in.alloc, id, dropped, "ALTER TABLE t DROP COLUMN v",
		[]change{{connectors.Insert, []any{int64(4), int64(4), "four"}}}))
	in.commit(5, in.barrier(5))
	want = []string{"c2=NULL,id=3,n=NULL", "c2=four,id=4,n=4", "c2=日本,id=2,n=2", "c2=😀,id=1,n=1"}
	if got := d.Rows(t, id); sorted(got) != sorted(want) {
		t.Fatalf("after DROP COLUMN: %q, want %q", got, want)
	}
	in.close()
}

func sorted(l []string) string {
	c := slices.Clone(l)
	slices.Sort(c)
	return strings.Join(c, " | ")
}
