package datagen

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"go.uber.org/goleak"

	"sluice/connectors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// drain reads a source to EOF (or n batches), checking every row's values,
// and returns ids per table and the last position.
func drain(t *testing.T, s *Source, maxBatches int) (map[string][]int64, connectors.Position) {
	t.Helper()
	ids := map[string][]int64{}
	var pos connectors.Position
	for i := 0; maxBatches <= 0 || i < maxBatches; i++ {
		b, err := s.Read(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		checkBatch(t, b)
		col := b.Record.Column(1).(*array.Int64)
		for r := 0; r < col.Len(); r++ {
			ids[b.Table.Table] = append(ids[b.Table.Table], col.Value(r))
		}
		pos = b.Position
		b.Release()
	}
	return ids, pos
}

func checkBatch(t *testing.T, b connectors.Batch) {
	t.Helper()
	if !b.Record.Schema().Equal(Schema) || b.Table.Database != Database {
		t.Fatalf("schema or table: %v %v", b.Record.Schema(), b.Table)
	}
	kinds, err := connectors.RowKinds(b.Record)
	if err != nil {
		t.Fatal(err)
	}
	ids := b.Record.Column(1).(*array.Int64)
	names := b.Record.Column(2).(*array.String)
	amounts := b.Record.Column(3).(*array.Decimal128)
	created := b.Record.Column(4).(*array.Timestamp)
	notes := b.Record.Column(5).(*array.String)
	for r := 0; r < ids.Len(); r++ {
		id := ids.Value(r)
		note, ok := Note(id)
		if kinds.Value(r) != int8(connectors.Insert) || names.Value(r) != Name(id) ||
			amounts.Value(r) != decimal128.FromI64(AmountCents(id)) ||
			created.Value(r) != arrow.Timestamp(CreatedAt(id).UnixMicro()) ||
			notes.IsValid(r) != ok || (ok && notes.Value(r) != note) {
			t.Fatalf("row for id %d has wrong values", id)
		}
	}
}

func TestPartitionsCoverEveryIDOnce(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const rows, par = 1001, 3
	seen := map[string]map[int64]int{}
	for sub := 0; sub < par; sub++ {
		s := New(Config{Rows: rows, BatchSize: 64, Tables: []string{"a", "b"}, Subtask: sub, Parallelism: par}, mem)
		if err := s.Open(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		ids, _ := drain(t, s, 0)
		s.Close()
		for tbl, list := range ids {
			if seen[tbl] == nil {
				seen[tbl] = map[int64]int{}
			}
			for _, id := range list {
				if (id-1)%par != int64(sub) {
					t.Fatalf("subtask %d produced id %d", sub, id)
				}
				seen[tbl][id]++
			}
		}
	}
	for _, tbl := range []string{"a", "b"} {
		for id := int64(1); id <= rows; id++ {
			if seen[tbl][id] != 1 {
				t.Fatalf("%s id %d seen %d times", tbl, id, seen[tbl][id])
			}
		}
		if len(seen[tbl]) != rows {
			t.Fatalf("%s: %d ids", tbl, len(seen[tbl]))
		}
	}
}

func TestResumeFromPosition(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg := Config{Rows: 500, BatchSize: 7, Tables: []string{"a", "b"}, Subtask: 1, Parallelism: 2}
	s := New(cfg, mem)
	defer s.Close()
	_ = s.Open(context.Background(), nil)
	all, _ := drain(t, s, 0)

	s2 := New(cfg, mem)
	defer s2.Close()
	_ = s2.Open(context.Background(), nil)
	head, pos := drain(t, s2, 9)
	s3 := New(cfg, mem)
	defer s3.Close()
	if err := s3.Open(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
	tail, _ := drain(t, s3, 0)
	for _, tbl := range []string{"a", "b"} {
		joined := append(append([]int64{}, head[tbl]...), tail[tbl]...)
		if len(joined) != len(all[tbl]) {
			t.Fatalf("%s: %d rows after resume, want %d", tbl, len(joined), len(all[tbl]))
		}
		for i := range joined {
			if joined[i] != all[tbl][i] {
				t.Fatalf("%s: row %d is id %d after resume, want %d", tbl, i, joined[i], all[tbl][i])
			}
		}
	}
	if err := s3.Open(context.Background(), connectors.Position("not json")); err == nil {
		t.Fatal("bad position accepted")
	}
}

func TestRateAndCancel(t *testing.T) {
	s := New(Config{Rate: 200, BatchSize: 1000}, memory.NewGoAllocator())
	defer s.Close()
	_ = s.Open(context.Background(), nil)
	start := time.Now()
	var n int64
	for n < 100 {
		b, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b.Rows() > 20 {
			t.Fatalf("at 200 rows/s a batch has %d rows; want small batches", b.Rows())
		}
		n += b.Rows()
		b.Release()
	}
	// 100 rows at 200/s take about half a second; only a gross violation fails.
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("100 rows at 200 rows/s in %s", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := New(Config{Rate: 1}, memory.NewGoAllocator())
	defer slow.Close()
	_ = slow.Open(context.Background(), nil)
	if b, err := slow.Read(context.Background()); err == nil {
		b.Release()
	}
	if _, err := slow.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
}
