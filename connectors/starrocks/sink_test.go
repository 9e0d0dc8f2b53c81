package starrocks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/internal/sremu"
)

var testSchema = arrow.NewSchema([]arrow.Field{connectors.RowKindField,
	{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: arrow.BinaryTypes.String, Nullable: true}},
	func() *arrow.Metadata {
		m := connectors.KeyMetadata("id")
		return &m
	}())

// batch builds a batch of (kind, id, v) rows for table shop.orders.
func batch(alloc memory.Allocator, rows ...any) connectors.Batch {
	b := array.NewRecordBuilder(alloc, testSchema)
	defer b.Release()
	for i := 0; i+2 < len(rows); i += 3 {
		b.Field(0).(*array.Int8Builder).Append(int8(rows[i].(connectors.RowKind)))
		b.Field(1).(*array.Int64Builder).Append(int64(rows[i+1].(int)))
		b.Field(2).(*array.StringBuilder).Append(rows[i+2].(string))
	}
	return connectors.Batch{Table: connectors.TableID{Database: "shop", Table: "orders"}, Record: b.NewRecord()}
}

func newEmu(t *testing.T) *sremu.Emulator {
	e, err := sremu.Start("loader", "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if _, err := e.ServeQueries(); err != nil {
		t.Fatal(err)
	}
	return e
}

func sinkFor(t *testing.T, e *sremu.Emulator, attempt int, opts map[string]string) *Sink {
	t.Helper()
	return sinkWith(t, e, connectors.Env{Job: "j1", JobID: 1, Attempt: attempt}, opts)
}

func sinkWith(t *testing.T, e *sremu.Emulator, env connectors.Env, opts map[string]string) *Sink {
	t.Helper()
	raw := map[string]string{"fe": e.FE, "user": "loader", "password": "pw", "save_mode": "ignore",
		"retry.backoff": "1ms", "max_retries": "5", "batch.interval": "1h", "batch.carry_bytes": "0"}
	for k, v := range opts {
		raw[k] = v
	}
	cfg, err := Options.Validate("starrocks", raw)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(cfg, env)
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rowsOf(e *sremu.Emulator) string {
	var out []string
	for _, r := range e.Rows("shop", "orders") {
		out = append(out, fmt.Sprintf("%v=%v", r["id"], r["v"]))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// barrier does what the engine does at a checkpoint barrier: Flush, then
// PreCommit.
func barrier(ctx context.Context, s *Sink, id uint64) ([]byte, error) {
	if err := s.Flush(ctx); err != nil {
		return nil, err
	}
	return s.PreCommit(ctx, id)
}

func write(t *testing.T, s *Sink, b connectors.Batch) {
	t.Helper()
	defer b.Release()
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestAtLeastOnceUpsertsDeletesAndRetries: __op upserts and deletes, the
// last change of a key wins within a load, and 5xx answers and connections
// reset mid-body are retried with the same label (no load applied twice
// under two labels).
func TestAtLeastOnceUpsertsDeletesAndRetries(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	e.SetFaults(sremu.Faults{FailEvery: 2, ResetEvery: 3})
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, nil)
	write(t, s, batch(alloc, connectors.Insert, 1, "a", connectors.Insert, 2, "b", connectors.Insert, 3, "c"))
	write(t, s, batch(alloc, connectors.UpdateBefore, 2, "b", connectors.UpdateAfter, 2, "b2", connectors.Delete, 3, "c"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	write(t, s, batch(alloc, connectors.Insert, 4, "d", connectors.Delete, 1, "a"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "2=b2 4=d" {
		t.Fatalf("rows %q", got)
	}
	labels := map[string]bool{}
	for _, l := range e.Loads() {
		if labels[l.Label] {
			t.Fatalf("label %s committed twice", l.Label)
		}
		labels[l.Label] = true
	}
	if len(labels) != 2 {
		t.Fatalf("%d loads, want 2 (one per flush)", len(labels))
	}
	alloc.AssertSize(t, 0)
}

// TestExactlyOnceCrashes walks the crash points of two-phase commit:
// a crash after prepare but before the catalog commit (the transaction is
// rolled back on recovery), a crash after the catalog commit but before the
// sink commit (committed on recovery), and a lost commit answer.
func TestExactlyOnceCrashes(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := context.Background()
	eo := map[string]string{"semantic": "exactly-once"}

	a := sinkFor(t, e, 1, eo)
	if err := a.Recover(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	write(t, a, batch(alloc, connectors.Insert, 1, "a", connectors.Insert, 2, "b"))
	st1, err := barrier(ctx, a, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "" {
		t.Fatalf("prepared rows are visible: %q", got)
	}
	if err := a.Commit(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	write(t, a, batch(alloc, connectors.Insert, 3, "c"))
	if _, err := barrier(ctx, a, 2); err != nil { // crash: the catalog never commits 2
		t.Fatal(err)
	}
	if len(e.Dangling()) != 1 {
		t.Fatalf("want one prepared transaction, have %v", e.Dangling())
	}

	b := sinkFor(t, e, 2, eo)
	if err := b.Recover(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	if d := e.Dangling(); len(d) != 0 {
		t.Fatalf("I7: dangling after recovery: %v", d)
	}
	if got := rowsOf(e); got != "1=a 2=b" {
		t.Fatalf("after recovery: %q", got)
	}
	write(t, b, batch(alloc, connectors.Insert, 3, "c")) // the replay
	st2, err := barrier(ctx, b, 2)
	if err != nil {
		t.Fatal(err)
	}
	// crash after the catalog committed 2, before the sink commit
	c := sinkFor(t, e, 3, eo)
	if err := c.Recover(ctx, 2, st2); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "1=a 2=b 3=c" {
		t.Fatalf("after the second recovery: %q", got)
	}
	// a lost commit answer
	write(t, c, batch(alloc, connectors.Delete, 1, "a"))
	st3, err := barrier(ctx, c, 3)
	if err != nil {
		t.Fatal(err)
	}
	e.SetFaults(sremu.Faults{LoseCommitResponse: true})
	if err := c.Commit(ctx, 3, st3); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "2=b 3=c" {
		t.Fatalf("after a lost commit answer: %q", got)
	}
	if d := e.Dangling(); len(d) != 0 {
		t.Fatalf("I7: dangling at the end: %v", d)
	}
	seen := map[string]bool{}
	for _, l := range e.Loads() {
		if seen[l.Label] {
			t.Fatalf("I7: label %s committed twice", l.Label)
		}
		seen[l.Label] = true
	}
	alloc.AssertSize(t, 0)
}

// TestExactlyOnceZombieNeverSharesALabel: a run (attempt 2) frozen with a
// transaction open while its job moved; the run that replaced it (attempt
// 3) recovers from the same checkpoint. Labels name the attempt, so the
// new run rolls the zombie's transaction back by name and opens its own
// under another; the thawed zombie's load fails instead of landing in the
// new run's transaction, and nothing is left dangling.
func TestExactlyOnceZombieNeverSharesALabel(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ctx := context.Background()
	eo := map[string]string{"semantic": "exactly-once"}
	first := sinkFor(t, e, 1, eo)
	if err := first.Recover(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	write(t, first, batch(alloc, connectors.Insert, 1, "a"))
	st1, err := barrier(ctx, first, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	zombie := sinkFor(t, e, 2, eo)
	if err := zombie.Recover(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	write(t, zombie, batch(alloc, connectors.Insert, 2, "zombie"))
	if err := zombie.Flush(ctx); err != nil { // its transaction is open: then it freezes
		t.Fatal(err)
	}
	live := sinkFor(t, e, 3, eo)
	if err := live.Recover(ctx, 1, st1); err != nil {
		t.Fatal(err)
	}
	write(t, live, batch(alloc, connectors.Insert, 3, "live"))
	if err := live.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, zombie, batch(alloc, connectors.Insert, 4, "zombie")) // thawed
	if err := zombie.Flush(ctx); err == nil {
		t.Fatal("the zombie loaded into a transaction after its job moved")
	}
	st2, err := barrier(ctx, live, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Commit(ctx, 2, st2); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "1=a 3=live" {
		t.Fatalf("rows %q, want 1=a 3=live", got)
	}
	if d := e.Dangling(); len(d) != 0 {
		t.Fatalf("dangling: %v", d)
	}
	alloc.AssertSize(t, 0)
}

// TestCredentialsSurviveTheRedirect: the FE redirects to a BE on another
// address; Go drops Authorization there unless the client keeps it.
func TestCredentialsSurviveTheRedirect(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	if !strings.HasPrefix(e.BE, "127.0.0.2:") {
		t.Skip("no second loopback address here")
	}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, nil)
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := sinkFor(t, e, 1, map[string]string{"password": "wrong", "max_retries": "0"})
	write(t, bad, batch(alloc, connectors.Insert, 2, "b"))
	err := bad.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refused user") {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestCreatesMissingPrimaryKeyTable: save_mode create_if_missing creates
// the table over the query port with the source's key.
func TestCreatesMissingPrimaryKeyTable(t *testing.T) {
	e := newEmu(t)
	_, port, _ := strings.Cut(e.Query, ":") // newEmu serves queries
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, map[string]string{"save_mode": "create_if_missing", "query_port": port})
	write(t, s, batch(alloc, connectors.Insert, 1, "a", connectors.Insert, 1, "a2"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "1=a2" {
		t.Fatalf("rows %q", got)
	}
}

// TestFollowsAddAndDropColumn: a DDL batch that adds a column alters the
// table over the query port before rows with the column are loaded; a
// column is dropped only when the source statement drops it.
func TestFollowsAddAndDropColumn(t *testing.T) {
	e := newEmu(t)
	_, port, _ := strings.Cut(e.Query, ":") // newEmu serves queries
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, map[string]string{"save_mode": "create_if_missing", "query_port": port})
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))

	wide := arrow.NewSchema(append(testSchema.Fields(), arrow.Field{Name: "extra", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), func() *arrow.Metadata { m := testSchema.Metadata(); return &m }())
	rb := array.NewRecordBuilder(alloc, wide)
	ddl := connectors.Batch{Table: connectors.TableID{Database: "shop", Table: "orders"}, Record: rb.NewRecord(), DDL: "ALTER TABLE orders ADD COLUMN extra INT"}
	write(t, s, ddl)
	rb.Field(0).(*array.Int8Builder).Append(int8(connectors.Insert))
	rb.Field(1).(*array.Int64Builder).Append(2)
	rb.Field(2).(*array.StringBuilder).Append("b")
	rb.Field(3).(*array.Int32Builder).Append(7)
	write(t, s, connectors.Batch{Table: ddl.Table, Record: rb.NewRecord()})
	rb.Release()
	// a schema without extra, announced for replayed older rows: no DROP
	write(t, s, connectors.Batch{Table: ddl.Table, Record: batch(alloc).Record, DDL: "-- schema changed"})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(e.Alters()); got != "[shop.orders ADD COLUMN `extra` INT NULL]" {
		t.Fatalf("alters %s", got)
	}
	if got := rowsOf(e); got != "1=a 2=b" {
		t.Fatalf("rows %q", got)
	}
	if r := e.Rows("shop", "orders"); fmt.Sprint(r[1]["extra"]) != "7" {
		t.Fatalf("extra not loaded: %v", r)
	}
	alloc.AssertSize(t, 0)
}

// TestFailsOverToTheNextFE: an FE that does not answer is skipped.
func TestFailsOverToTheNextFE(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, map[string]string{"fe": "127.0.0.1:1," + e.FE, "max_retries": "0"})
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(e); got != "1=a" {
		t.Fatalf("rows %q", got)
	}
	alloc.AssertSize(t, 0)
}

// TestIntervalFlushWithoutNewBatches: at-least-once rows are loaded after
// batch.interval even when no further batch arrives.
func TestIntervalFlushWithoutNewBatches(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := sinkFor(t, e, 1, map[string]string{"batch.interval": "100ms"})
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	deadline := time.Now().Add(5 * time.Second)
	for rowsOf(e) != "1=a" {
		if time.Now().After(deadline) {
			t.Fatalf("rows %q after 5s with batch.interval 100ms", rowsOf(e))
		}
		time.Sleep(20 * time.Millisecond)
	}
	alloc.AssertSize(t, 0)
}

// TestJSONStringsMatchEncodingJSON: the hand-written string encoder agrees
// with encoding/json on what StarRocks will decode.
func TestJSONStringsMatchEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ back`, "new\nline\ttab\rcr", "\x00\x01\x1f", "héllo 世界 🎉", "</script>&"} {
		var got, want any
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		data, _ := json.Marshal(s)
		_ = json.Unmarshal(data, &want)
		if got != want {
			t.Errorf("%q: decoded %q, want %q", s, got, want)
		}
	}
}

// TestFollowsRenameAndTypeChangeAcrossRestart: RENAME COLUMN keeps the
// column's data, a type change becomes MODIFY COLUMN, and after a restart
// a replayed schema change is diffed against the table StarRocks has: a
// column it already has is not added again (StarRocks would refuse), one
// it lacks is.
func TestFollowsRenameAndTypeChangeAcrossRestart(t *testing.T) {
	e := newEmu(t)
	_, port, _ := strings.Cut(e.Query, ":") // newEmu serves queries
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	opts := map[string]string{"save_mode": "create_if_missing", "query_port": port}
	id := connectors.TableID{Database: "shop", Table: "orders"}
	schemaOf := func(fields ...arrow.Field) *arrow.Schema {
		m := testSchema.Metadata()
		return arrow.NewSchema(append([]arrow.Field{connectors.RowKindField, {Name: "id", Type: arrow.PrimitiveTypes.Int64}}, fields...), &m)
	}
	ddl := func(s *Sink, sc *arrow.Schema, stmt string) {
		rb := array.NewRecordBuilder(alloc, sc)
		write(t, s, connectors.Batch{Table: id, Record: rb.NewRecord(), DDL: stmt})
		rb.Release()
	}
	s := sinkFor(t, e, 1, opts)
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	renamed := arrow.Field{Name: "label", Type: arrow.BinaryTypes.String, Nullable: true}
	ddl(s, schemaOf(renamed), "ALTER TABLE orders RENAME COLUMN v TO label")
	ddl(s, schemaOf(renamed, arrow.Field{Name: "qty", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), "ALTER TABLE orders ADD COLUMN qty INT")
	ddl(s, schemaOf(renamed, arrow.Field{Name: "qty", Type: arrow.PrimitiveTypes.Int64, Nullable: true}), "ALTER TABLE orders MODIFY qty BIGINT")
	want := "[shop.orders RENAME COLUMN `v` TO `label` shop.orders ADD COLUMN `qty` INT NULL shop.orders MODIFY COLUMN `qty` BIGINT NULL]"
	if got := fmt.Sprint(e.Alters()); got != want {
		t.Fatalf("alters\n got %s\nwant %s", got, want)
	}
	if r := e.Rows("shop", "orders"); len(r) != 1 || fmt.Sprint(r[0]["label"]) != "a" {
		t.Fatalf("the renamed column lost its data: %v", r)
	}

	// A restart whose replay starts at the ADD COLUMN qty: the table has it.
	s2 := sinkFor(t, e, 2, opts)
	ddl(s2, schemaOf(renamed, arrow.Field{Name: "qty", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), "ALTER TABLE orders ADD COLUMN qty INT")
	ddl(s2, schemaOf(renamed, arrow.Field{Name: "qty", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		arrow.Field{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true}), "ALTER TABLE orders ADD COLUMN note TEXT")
	want = want[:len(want)-1] + " shop.orders ADD COLUMN `note` STRING NULL]"
	if got := fmt.Sprint(e.Alters()); got != want {
		t.Fatalf("alters after the restart\n got %s\nwant %s", got, want)
	}
	alloc.AssertSize(t, 0)
}

// TestTextEncodersMatchTheLibrary: the hand-written decimal and datetime
// formatters agree with Arrow's Decimal128.ToString and time.Format.
func TestTextEncodersMatchTheLibrary(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 20000; n++ {
		var v decimal128.Num
		switch n % 3 {
		case 0:
			v = decimal128.FromI64(rng.Int63n(2_000_000) - 1_000_000)
		case 1:
			v = decimal128.FromI64(rng.Int63() * int64(1-2*(n%2)))
		default:
			v = decimal128.New(rng.Int63n(1<<40)-1<<39, rng.Uint64())
		}
		scale := int32(n % 12)
		if got, want := string(appendDecimal128(nil, v, scale)), v.ToString(scale); got != want {
			t.Fatalf("decimal %v scale %d: %s, want %s", v, scale, got, want)
		}
		us := rng.Int63n(253402300799999999+62135596800000000) - 62135596800000000 // years 0001-9999
		if n%4 == 0 {
			us -= us % 1_000_000 // whole seconds
		}
		if got, want := string(appendDateTime(nil, us)), time.UnixMicro(us).UTC().Format("2006-01-02 15:04:05.999999"); got != want {
			t.Fatalf("datetime %d: %s, want %s", us, got, want)
		}
	}
}

// A job dropped and created again under the same name is a new job: its
// loads must not be taken for its predecessor's ("Label Already Exists"),
// in either mode (issue 10, defect 4: the target stayed empty).
func TestRecreatedJobLoadsEverythingAgain(t *testing.T) {
	for _, mode := range []string{"at-least-once", "exactly-once"} {
		t.Run(mode, func(t *testing.T) {
			e := newEmu(t)
			e.CreateTable("shop", "orders", "id")
			alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer alloc.AssertSize(t, 0)
			ctx := context.Background()
			for _, jobID := range []uint64{7, 12} { // the same name, a new id
				s := sinkWith(t, e, connectors.Env{Job: "orders", JobID: jobID, Attempt: 1}, map[string]string{"semantic": mode})
				if err := s.Recover(ctx, 0, nil); err != nil {
					t.Fatal(err)
				}
				write(t, s, batch(alloc, connectors.Insert, 1, "a", connectors.Insert, 2, "b"))
				state, err := barrier(ctx, s, 1)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Commit(ctx, 1, state); err != nil {
					t.Fatal(err)
				}
				if got := rowsOf(e); got != "1=a 2=b" {
					t.Fatalf("job id %d: rows %q after its load", jobID, got)
				}
				s.Close()
				e.Truncate("shop", "orders")
			}
		})
	}
}

// ADD COLUMN … DEFAULT at the source reaches StarRocks with its default,
// so rows loaded before the change get it (issue 10, defect 12).
func TestAddColumnCarriesItsDefault(t *testing.T) {
	e := newEmu(t)
	_, port, _ := strings.Cut(e.Query, ":")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	s := sinkFor(t, e, 1, map[string]string{"save_mode": "create_if_missing", "query_port": port})
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	color := arrow.Field{Name: "color", Type: arrow.BinaryTypes.String, Nullable: true,
		Metadata: arrow.NewMetadata([]string{connectors.MetaDefault}, []string{"'it''s red'"})}
	wide := arrow.NewSchema(append(testSchema.Fields(), color), func() *arrow.Metadata { m := testSchema.Metadata(); return &m }())
	rb := array.NewRecordBuilder(alloc, wide)
	write(t, s, connectors.Batch{Table: connectors.TableID{Database: "shop", Table: "orders"}, Record: rb.NewRecord(),
		DDL: "ALTER TABLE orders ADD COLUMN color VARCHAR(9) DEFAULT 'it''s red'"})
	rb.Release()
	if got := fmt.Sprint(e.Alters()); got != "[shop.orders ADD COLUMN `color` STRING NULL DEFAULT \"it's red\"]" {
		t.Fatalf("alters %s", got)
	}
	if r := e.Rows("shop", "orders"); len(r) != 1 || fmt.Sprint(r[0]["color"]) != "it's red" {
		t.Fatalf("rows %v", r)
	}
	// Rows from before the ADD COLUMN that arrive after it (a snapshot
	// chunk read before it, or a replay after a restart) lack the column:
	// they must not null it (a full-row upsert would), and a new row takes
	// the default, as at the source.
	for i, snk := range []*Sink{s, sinkFor(t, e, 2, map[string]string{"save_mode": "create_if_missing", "query_port": port})} {
		write(t, snk, batch(alloc, connectors.UpdateAfter, 1, fmt.Sprint("b", i), connectors.Insert, 2+i, "c"))
		if err := snk.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.Rows("shop", "orders"); fmt.Sprint(r) != "[map[color:it's red id:1 v:b1] map[color:it's red id:2 v:c] map[color:it's red id:3 v:c]]" {
		t.Fatalf("old-schema rows after ADD COLUMN: %v", r)
	}
}

// Close returns promptly while a background (batch.interval) load hangs
// at the target: the shared flusher cancels it (issue 10, deliverable 5).
func TestCloseCancelsAHungBackgroundLoad(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "orders", "id")
	e.SetFaults(sremu.Faults{CommitLatency: 5 * time.Second})
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	s := sinkFor(t, e, 1, map[string]string{"batch.interval": "100ms"})
	write(t, s, batch(alloc, connectors.Insert, 1, "a"))
	time.Sleep(400 * time.Millisecond) // the flusher's load is in flight, hung
	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Close took %s with a hung load in flight", d)
	}
}

// A source table without a key loads into a DUPLICATE KEY table, which an
// at-least-once replay would load twice: refused unless keyless=append (or
// exactly-once), at CREATE (CheckTables) and for a table first seen later.
func TestKeylessRefusedAtLeastOnce(t *testing.T) {
	e := newEmu(t)
	e.CreateTable("shop", "log")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{connectors.RowKindField, {Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := func() connectors.Batch {
		b := array.NewRecordBuilder(alloc, schema)
		defer b.Release()
		b.Field(0).(*array.Int8Builder).Append(int8(connectors.Insert))
		b.Field(1).(*array.Int64Builder).Append(7)
		return connectors.Batch{Table: connectors.TableID{Database: "shop", Table: "log"}, Record: b.NewRecord()}
	}
	keyless := []connectors.TableInfo{{ID: connectors.TableID{Database: "shop", Table: "log"}}}
	for _, c := range []struct {
		opts    map[string]string
		refused bool
	}{{nil, true}, {map[string]string{"keyless": "append"}, false}, {map[string]string{"semantic": "exactly-once"}, false}} {
		raw := map[string]string{"fe": e.FE, "user": "loader"}
		for k, v := range c.opts {
			raw[k] = v
		}
		cfg, err := Options.Validate("starrocks", raw)
		if err != nil {
			t.Fatal(err)
		}
		err = Spec().CheckTables(context.Background(), cfg, keyless)
		b := rec()
		werr := sinkWith(t, e, connectors.Env{Job: "k", JobID: 3}, c.opts).Write(context.Background(), b)
		b.Release()
		for _, e := range []error{err, werr} {
			if got := errors.Is(e, connectors.ErrPrecondition) && strings.Contains(fmt.Sprint(e), "'keyless'='append'"); got != c.refused {
				t.Fatalf("%v: refused %v (%v), want %v", c.opts, got, e, c.refused)
			}
		}
	}
}
