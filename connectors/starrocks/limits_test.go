package starrocks

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/internal/sremu"
)

// batchFor is batch() for table shop.<table>.
func batchFor(alloc memory.Allocator, table string, rows ...any) connectors.Batch {
	b := batch(alloc, rows...)
	b.Table.Table = table
	return b
}

func tableRows(e *sremu.Emulator, table string) string {
	var out []string
	for _, r := range e.Rows("shop", table) {
		out = append(out, fmt.Sprintf("%v=%v", r["id"], r["v"]))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestSmallTablesWaitForTheirInterval: with checkpoints far more frequent
// than batch.interval, a small table is not loaded at every checkpoint; its
// rows ride in the checkpoint state, survive a restart from it, and are
// loaded when due, when the carried bytes pass batch.carry_bytes (oldest
// first), or when the job drains.
func TestSmallTablesWaitForTheirInterval(t *testing.T) {
	e := newEmu(t)
	const tables = 20
	for i := 0; i < tables; i++ {
		e.CreateTable("shop", fmt.Sprintf("t%02d", i), "id")
	}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := context.Background()
	opts := map[string]string{"batch.carry_bytes": "1048576"}
	a := sinkFor(t, e, 1, opts)
	if err := a.Recover(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	var st []byte
	for cp := uint64(1); cp <= 10; cp++ { // ten checkpoints, each table written in each
		for i := 0; i < tables; i++ {
			write(t, a, batchFor(alloc, fmt.Sprintf("t%02d", i), connectors.Insert, int(cp), fmt.Sprintf("v%d", cp)))
		}
		var err error
		if st, err = barrier(ctx, a, cp); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.Loads()); n != 0 {
		t.Fatalf("%d loads for %d tables over 10 checkpoints with batch.interval 1h; want 0", n, tables)
	}
	if !strings.Contains(string(st), `"carry"`) {
		t.Fatalf("the checkpoint state does not carry the rows: %s", st)
	}

	// A restart from checkpoint 10: the rows come back from the state.
	b := sinkFor(t, e, 2, map[string]string{"batch.carry_bytes": "1000"})
	if err := b.Recover(ctx, 10, st); err != nil {
		t.Fatal(err)
	}
	// Over budget: the oldest tables are loaded until the rest fit.
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loaded := len(e.Loads())
	if loaded == 0 || loaded == tables {
		t.Fatalf("%d of %d tables loaded with batch.carry_bytes 1000 (about 250 bytes each); want some, not all", loaded, tables)
	}
	if err := b.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < tables; i++ {
		if got := tableRows(e, fmt.Sprintf("t%02d", i)); got != "10=v10 1=v1 2=v2 3=v3 4=v4 5=v5 6=v6 7=v7 8=v8 9=v9" {
			t.Fatalf("t%02d: %q", i, got)
		}
	}
	if n := len(e.Loads()); n != tables {
		t.Fatalf("%d loads, want one per table (%d)", n, tables)
	}

	// Due: a table whose rows waited batch.interval is loaded (by the
	// at-least-once timer or the next checkpoint, whichever comes first).
	c := sinkFor(t, e, 3, map[string]string{"batch.carry_bytes": "1048576", "batch.interval": "100ms"})
	write(t, c, batchFor(alloc, "t00", connectors.Insert, 11, "v11"))
	if _, err := barrier(ctx, c, 11); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tableRows(e, "t00"), "11=") {
		t.Fatal("loaded before batch.interval")
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := barrier(ctx, c, 12); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tableRows(e, "t00"), "11=v11") {
		t.Fatalf("not loaded once due: %q", tableRows(e, "t00"))
	}
	alloc.AssertSize(t, 0)
}

// TestExactlyOnceBoundsOpenTransactions: with more tables than txn.max_open
// written between two checkpoints, at most txn.max_open transactions run in
// the database at once (the emulator refuses past its limit, as StarRocks
// does past max_running_txn_num_per_db); the others wait in the checkpoint
// state, and after a crash every row is loaded exactly once.
func TestExactlyOnceBoundsOpenTransactions(t *testing.T) {
	e := newEmu(t)
	e.MaxRunningTxns = 4
	const tables = 10
	for i := 0; i < tables; i++ {
		e.CreateTable("shop", fmt.Sprintf("t%02d", i), "id")
	}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := context.Background()
	eo := map[string]string{"semantic": "exactly-once", "txn.max_open": "3", "batch.max_rows": "1"}
	a := sinkFor(t, e, 1, eo)
	if err := a.Recover(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < tables; i++ { // batch.max_rows 1: each write wants a load now
		write(t, a, batchFor(alloc, fmt.Sprintf("t%02d", i), connectors.Insert, 1, "a", connectors.Insert, 2, "b"))
	}
	st1, err := barrier(ctx, a, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	if n := len(e.Loads()); n != 3 {
		t.Fatalf("%d tables committed at checkpoint 1, want txn.max_open = 3", n)
	}
	if _, err := barrier(ctx, a, 2); err != nil { // three more; the crash comes before the catalog commits 2
		t.Fatal(err)
	}
	b := sinkFor(t, e, 2, eo)
	if err := b.Recover(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	if d := e.Dangling(); len(d) != 0 {
		t.Fatalf("I7: dangling after recovery: %v", d)
	}
	for id := uint64(2); ; id++ {
		st, err := barrier(ctx, b, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, id, st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(st), `"carry"`) {
			break
		}
		if id > 10 {
			t.Fatal("rows still carried after 10 checkpoints")
		}
	}
	for i := 0; i < tables; i++ {
		if got := tableRows(e, fmt.Sprintf("t%02d", i)); got != "1=a 2=b" {
			t.Fatalf("t%02d: %q", i, got)
		}
	}
	seen := map[string]bool{}
	for _, l := range e.Loads() {
		if seen[l.DB+"."+l.Table] {
			t.Fatalf("I7/I3: %s.%s committed twice (label %s)", l.DB, l.Table, l.Label)
		}
		seen[l.DB+"."+l.Table] = true
	}
	if m := e.MaxRunning(); m > 3 {
		t.Fatalf("%d transactions ran at once, txn.max_open is 3", m)
	}
	alloc.AssertSize(t, 0)
}

// TestCSVCarriesAnyString: format csv encloses strings, so tabs, newlines,
// quotes and a literal \N survive; NULL is \N; deletes apply.
func TestCSVCarriesAnyString(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, map[string]string{"format": "csv"})
	odd := []string{"tab\there", "line\nbreak", `say "hi"`, `\N`, "", "héllo\r\n世界"}
	var rows []any
	for i, v := range odd {
		rows = append(rows, connectors.Insert, i+1, v)
	}
	write(t, s, batch(alloc, rows...))
	b := array.NewRecordBuilder(alloc, testSchema)
	b.Field(0).(*array.Int8Builder).Append(int8(connectors.Insert))
	b.Field(1).(*array.Int64Builder).Append(100)
	b.Field(2).(*array.StringBuilder).AppendNull()
	write(t, s, connectors.Batch{Table: connectors.TableID{Database: "shop", Table: "orders"}, Record: b.NewRecord()})
	b.Release()
	write(t, s, batch(alloc, connectors.Delete, 2, "line\nbreak"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, r := range e.Rows("shop", "orders") {
		got[fmt.Sprint(r["id"])] = r["v"]
	}
	for i, v := range odd {
		id := fmt.Sprint(i + 1)
		if i == 1 {
			if _, ok := got[id]; ok {
				t.Errorf("row %s was deleted at the source", id)
			}
			continue
		}
		if got[id] != v {
			t.Errorf("row %s: %q, want %q", id, got[id], v)
		}
	}
	if v, ok := got["100"]; !ok || v != nil {
		t.Errorf("NULL arrived as %#v", v)
	}
	alloc.AssertSize(t, 0)
}

// TestFailedLoadNamesTheRejectedRows: a load StarRocks rejects for data
// quality fails the job with the ErrorURL's content in the message.
func TestFailedLoadNamesTheRejectedRows(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	e.SetFaults(sremu.Faults{RejectValue: "poison"})
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, nil)
	write(t, s, batch(alloc, connectors.Insert, 1, "fine", connectors.Insert, 2, "poison"))
	err := s.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), `rejected rows: Error:`) || !strings.Contains(err.Error(), `"poison"`) {
		t.Fatalf("want the rejected row in the error, got %v", err)
	}
	if got := rowsOf(e); got != "" {
		t.Fatalf("a failed load applied rows: %q", got)
	}
	alloc.AssertSize(t, 0)
}

// TestPublishTimeoutIsSuccess: "Publish Timeout" means committed, visible
// later; the sink must not retry the load under a new label.
func TestPublishTimeoutIsSuccess(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	e.SetFaults(sremu.Faults{PublishTimeoutEvery: 1, PublishDelay: 50 * time.Millisecond})
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, nil)
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rowsOf(e) != "1=a" {
		if time.Now().After(deadline) {
			t.Fatalf("rows %q", rowsOf(e))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(e.Loads()); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	alloc.AssertSize(t, 0)
}

// TestRecoveryFindsEveryLeftover: I7 when a table has no transaction in
// some checkpoint intervals. Leftovers are found past a checkpoint that
// failed (the catalog's last id bounds the probe), for a table first
// written after the checkpoint recovered from (probed when the replay
// writes it again), and from a run that recovered from the same
// checkpoint and crashed too.
func TestRecoveryFindsEveryLeftover(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "t00", "id")
	e.CreateTable("shop", "t01", "id")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := context.Background()
	eo := map[string]string{"semantic": "exactly-once", "batch.max_rows": "1", "batch.carry_bytes": "1048576"}

	a := sinkFor(t, e, 1, eo)
	if err := a.Recover(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	write(t, a, batchFor(alloc, "t00", connectors.Insert, 1, "a"))
	st1, err := barrier(ctx, a, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	if _, err := barrier(ctx, a, 2); err != nil { // nothing written; checkpoint 2 fails in the catalog
		t.Fatal(err)
	}
	write(t, a, batchFor(alloc, "t00", connectors.Insert, 2, "b"))
	write(t, a, batchFor(alloc, "t01", connectors.Insert, 1, "x")) // first seen after checkpoint 1
	if _, err := barrier(ctx, a, 3); err != nil {                  // crash before the catalog commits 3
		t.Fatal(err)
	}
	if n := len(e.Dangling()); n != 2 {
		t.Fatalf("want 2 prepared transactions at the crash, have %v", e.Dangling())
	}

	b := sinkFor(t, e, 2, eo)
	b.env.LastCheckpointID = 2 // the catalog recorded checkpoint 2 as failed
	if err := b.Recover(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	if d := e.Dangling(); len(d) != 1 || !strings.Contains(d[0], "t01") {
		t.Fatalf("after recovery, want only t01's transaction left (not named in checkpoint 1), have %v", d)
	}
	write(t, b, batchFor(alloc, "t01", connectors.Insert, 1, "x")) // the replay writes t01 again
	if d := e.Dangling(); len(d) != 1 {                            // its new transaction, not the crashed one
		t.Fatalf("want t01's leftover rolled back and a new one open, have %v", d)
	}
	write(t, b, batchFor(alloc, "t00", connectors.Insert, 2, "b"))
	if _, err := barrier(ctx, b, 3); err != nil { // this run crashes too
		t.Fatal(err)
	}

	c := sinkFor(t, e, 3, eo)
	c.env.LastCheckpointID = 2
	if err := c.Recover(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	write(t, c, batchFor(alloc, "t01", connectors.Insert, 1, "x"))
	write(t, c, batchFor(alloc, "t00", connectors.Insert, 2, "b"))
	st3, err := barrier(ctx, c, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, 3, st3); err != nil {
		t.Fatal(err)
	}
	if d := e.Dangling(); len(d) != 0 {
		t.Fatalf("I7: dangling at the end: %v", d)
	}
	if got := tableRows(e, "t00") + " | " + tableRows(e, "t01"); got != "1=a 2=b | 1=x" {
		t.Fatalf("rows %q", got)
	}
	alloc.AssertSize(t, 0)
}
