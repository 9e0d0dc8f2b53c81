package mysqlsink

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
)

// eoSink is an exactly-once sink of job jobID, recovered at checkpoint id.
func eoSink(t *testing.T, jobID uint64, id uint64, state []byte) *Sink {
	t.Helper()
	return eoSinkAt(t, jobID, 0, id, state)
}

// eoSinkAt is eoSink for a given attempt of the job.
func eoSinkAt(t *testing.T, jobID uint64, attempt int, id uint64, state []byte) *Sink {
	t.Helper()
	s := newSinkEnv(t, map[string]string{"semantic": "exactly-once"}, connectors.Env{Job: "xa", JobID: jobID, Attempt: attempt})
	if err := s.Recover(context.Background(), id, state); err != nil {
		t.Fatal(err)
	}
	return s
}

// put writes rows whose first value is the row kind; it does not flush.
func put(t *testing.T, s *Sink, id connectors.TableID, schema *arrow.Schema, ddl string, rows ...[]any) {
	t.Helper()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	b := array.NewRecordBuilder(alloc, schema)
	for _, r := range rows {
		b.Field(0).(*array.Int8Builder).Append(int8(r[0].(connectors.RowKind)))
		for i, v := range r[1:] {
			switch fb := b.Field(i + 1).(type) {
			case *array.Int64Builder:
				fb.Append(v.(int64))
			case *array.StringBuilder:
				if v == nil {
					fb.AppendNull()
				} else {
					fb.Append(v.(string))
				}
			}
		}
	}
	rec := b.NewRecord()
	b.Release()
	err := s.Write(context.Background(), connectors.Batch{Table: id, Record: rec, DDL: ddl})
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if s.prepared == nil { // a held batch is released by Commit or Close
		alloc.AssertSize(t, 0)
	}
}

func barrier(t *testing.T, s *Sink, id uint64) []byte {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := s.PreCommit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func commit(t *testing.T, s *Sink, id uint64) {
	t.Helper()
	if err := s.Commit(context.Background(), id, nil); err != nil {
		t.Fatal(err)
	}
}

func rowsOf(t *testing.T, q string) string { return strings.Join(query(t, q), " ") }

var (
	ins, del = connectors.Insert, connectors.Delete
	ub, ua   = connectors.UpdateBefore, connectors.UpdateAfter
	kv       = schemaOf([]string{"id"}, field("id", arrow.PrimitiveTypes.Int64, false), field("v", arrow.BinaryTypes.String, true))
)

// Nothing is visible before Commit; Commit is idempotent.
func TestExactlyOnceVisibleOnlyAfterCommit(t *testing.T) {
	s := eoSink(t, 1, 0, nil)
	id := connectors.TableID{Database: "xa1", Table: "t"}
	put(t, s, id, kv, "", []any{ins, int64(1), "a"}, []any{ins, int64(2), "b"})
	put(t, s, id, kv, "", []any{del, int64(2), "b"}, []any{ins, int64(3), "😀"})
	if got := rowsOf(t, "SELECT COUNT(*) FROM xa1.t"); got != "0" {
		t.Fatalf("%s rows visible before the barrier", got)
	}
	barrier(t, s, 1)
	if got := rowsOf(t, "SELECT COUNT(*) FROM xa1.t"); got != "0" {
		t.Fatalf("%s rows visible after PREPARE", got)
	}
	commit(t, s, 1)
	commit(t, s, 1)
	if got := rowsOf(t, "SELECT id, v FROM xa1.t ORDER BY id"); got != "1=a 3=😀" {
		t.Fatalf("rows %s", got)
	}
}

// Recover commits what the recovered checkpoint prepared and rolls back
// what a crashed run prepared after it (and what a run that never
// checkpointed prepared).
func TestExactlyOnceRecover(t *testing.T) {
	id := connectors.TableID{Database: "xa2", Table: "t"}
	a := eoSink(t, 2, 0, nil)
	put(t, a, id, kv, "", []any{ins, int64(1), "one"})
	st1 := barrier(t, a, 1)
	a.Close() // crash before Commit(1): the catalog committed 1, the sink did not

	b := eoSink(t, 2, 1, st1)
	if got := rowsOf(t, "SELECT id FROM xa2.t"); got != "1" {
		t.Fatalf("after recovering 1: %q", got)
	}
	put(t, b, id, kv, "", []any{ins, int64(2), "two"})
	barrier(t, b, 2)
	b.Close() // crash: checkpoint 2 never committed in the catalog

	c := eoSink(t, 2, 1, st1) // commits 1 again (a no-op), rolls back 2
	if got := rowsOf(t, "SELECT id FROM xa2.t"); got != "1" {
		t.Fatalf("after recovering 1 again: %q", got)
	}
	if left, err := c.leftovers(context.Background()); err != nil || len(left) != 0 {
		t.Fatalf("prepared transactions left: %v %v", left, err)
	}
	put(t, c, id, kv, "", []any{ins, int64(2), "two"})
	barrier(t, c, 2)
	c.Close()
	eoSink(t, 2, 0, nil) // the job has no checkpoint: everything prepared goes
	if got := rowsOf(t, "SELECT id FROM xa2.t"); got != "1" {
		t.Fatalf("after recovering nothing: %q", got)
	}
	// Another job's prepared transaction is not this task's to end.
	other := eoSink(t, 3, 0, nil)
	put(t, other, connectors.TableID{Database: "xa2", Table: "u"}, kv, "", []any{ins, int64(9), "x"})
	st := barrier(t, other, 1)
	eoSink(t, 2, 0, nil)
	commit(t, other, 1)
	if got := rowsOf(t, "SELECT id FROM xa2.u"); got != "9" || st == nil {
		t.Fatalf("other job's rows: %q", got)
	}
}

// A zombie (attempt 1, frozen while its job moved, then thawed) prepares a
// transaction after attempt 2 recovered. Its xid names its attempt, so it
// never collides with attempt 2's at the same checkpoint id, and attempt
// 2 rolls it back before its own next transaction once the zombie's
// session ended: the zombie's rows never land and no prepared transaction
// (with its locks) is left.
func TestExactlyOnceZombieAttemptRolledBack(t *testing.T) {
	id := connectors.TableID{Database: "xa7", Table: "t"}
	z := eoSinkAt(t, 7, 1, 0, nil)
	put(t, z, id, kv, "", []any{ins, int64(1), "before"})
	st1 := barrier(t, z, 1)
	commit(t, z, 1)

	live := eoSinkAt(t, 7, 2, 1, st1) // the job moved: attempt 2 from checkpoint 1
	put(t, z, id, kv, "", []any{ins, int64(2), "zombie"})
	barrier(t, z, 2) // the catalog refuses its checkpoint 2; nobody commits it
	// Fenced, the zombie stops; its prepared transaction outlives its
	// connection (the server lets another session end it only then).
	z.Close()
	put(t, live, id, kv, "", []any{ins, int64(3), "live"})
	barrier(t, live, 2) // the same checkpoint id: a distinct xid
	left, err := live.leftovers(context.Background())
	if err != nil || len(left) != 1 || left[0] != "2_a2" {
		t.Fatalf("prepared after attempt 2's barrier: %v %v (want only attempt 2's own)", left, err)
	}
	commit(t, live, 2)
	if got := rowsOf(t, "SELECT id FROM xa7.t ORDER BY id"); got != "1 3" {
		t.Fatalf("rows %q, want 1 3 (the zombie's row 2 never lands)", got)
	}
	if left, err := live.leftovers(context.Background()); err != nil || len(left) != 0 {
		t.Fatalf("prepared transactions left: %v %v", left, err)
	}
}

// Batches that arrive while a transaction is prepared wait for its
// commit, a schema change on the table it locks included (it would wait on
// the metadata lock forever); a barrier that finds it still prepared
// fails the task.
func TestExactlyOnceHoldsBatchesWhilePrepared(t *testing.T) {
	s := eoSink(t, 4, 0, nil)
	id := connectors.TableID{Database: "xa3", Table: "t"}
	put(t, s, id, kv, "", []any{ins, int64(1), "a"})
	barrier(t, s, 1)
	wide := schemaOf([]string{"id"}, field("id", arrow.PrimitiveTypes.Int64, false), field("v", arrow.BinaryTypes.String, true),
		field("w", arrow.BinaryTypes.String, true))
	done := make(chan struct{})
	go func() {
		defer close(done)
		put(t, s, id, wide, "ALTER TABLE t ADD COLUMN w TEXT", []any{ins, int64(2), "b", "c"})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a schema change while a transaction is prepared blocked")
	}
	if _, err := s.PreCommit(context.Background(), 2); err == nil || !strings.Contains(err.Error(), "checkpoint 1 is still uncommitted") {
		t.Fatalf("barrier 2 with 1 prepared: %v", err)
	}
	commit(t, s, 1)
	barrier(t, s, 2)
	commit(t, s, 2)
	if got := rowsOf(t, "SELECT id, w FROM xa3.t ORDER BY id"); got != "1=<nil> 2=c" {
		t.Fatalf("rows %s", got)
	}
}

// Without a key, exactly-once applies every change in order, deletes and
// updates included (a delete removes one equal row).
func TestExactlyOnceKeyless(t *testing.T) {
	s := eoSink(t, 5, 0, nil)
	id := connectors.TableID{Database: "xa4", Table: "t"}
	nokey := schemaOf(nil, field("n", arrow.PrimitiveTypes.Int64, false), field("v", arrow.BinaryTypes.String, true))
	put(t, s, id, nokey, "", []any{ins, int64(1), "a"}, []any{ins, int64(1), "a"}, []any{ins, int64(2), nil})
	put(t, s, id, nokey, "", []any{del, int64(1), "a"}, []any{ub, int64(2), nil}, []any{ua, int64(2), "z"}, []any{ins, int64(3), "c"})
	barrier(t, s, 1)
	commit(t, s, 1)
	if got := rowsOf(t, "SELECT n, v FROM xa4.t ORDER BY n"); got != "1=a 2=z 3=c" {
		t.Fatalf("rows %s", got)
	}
}

// A schema change inside an interval: rows buffered before it are written
// with their columns renamed or dropped as the change did.
func TestExactlyOnceSchemaChangeInsideAnInterval(t *testing.T) {
	s := eoSink(t, 6, 0, nil)
	id := connectors.TableID{Database: "xa5", Table: "t"}
	three := schemaOf([]string{"id"}, field("id", arrow.PrimitiveTypes.Int64, false), field("v", arrow.BinaryTypes.String, true),
		field("gone", arrow.BinaryTypes.String, true))
	put(t, s, id, three, "", []any{ins, int64(1), "a", "x"})
	barrier(t, s, 1)
	commit(t, s, 1)
	put(t, s, id, three, "", []any{ins, int64(2), "b", "y"})
	renamed := schemaOf([]string{"id"}, field("id", arrow.PrimitiveTypes.Int64, false), field("w", arrow.BinaryTypes.String, true),
		field("gone", arrow.BinaryTypes.String, true))
	put(t, s, id, renamed, "ALTER TABLE t RENAME COLUMN v TO w", []any{ins, int64(3), "c", "z"})
	dropped := schemaOf([]string{"id"}, field("id", arrow.PrimitiveTypes.Int64, false), field("w", arrow.BinaryTypes.String, true))
	put(t, s, id, dropped, "ALTER TABLE t DROP COLUMN gone", []any{ins, int64(4), "d"}, []any{ua, int64(2), "B"})
	barrier(t, s, 2)
	commit(t, s, 2)
	if got := rowsOf(t, "SELECT id, w FROM xa5.t ORDER BY id"); got != "1=a 2=B 3=c 4=d" {
		t.Fatalf("rows %s", got)
	}
}
