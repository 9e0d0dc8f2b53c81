package file

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
)

// A job re-created under the same name gets a new id: its files never
// overwrite, nor are adopted from, its predecessor's.
func TestRecreatedJobKeepsItsPredecessorsFiles(t *testing.T) {
	dir := t.TempDir()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	cfg, err := Spec().Options.Validate("file", map[string]string{"path": dir})
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{connectors.RowKindField, {Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	ctx := context.Background()
	for _, id := range []uint64{3, 9} {
		snk, err := Spec().NewSink(cfg, connectors.Env{Job: "j", JobID: id, Pipeline: 1})
		if err != nil {
			t.Fatal(err)
		}
		s := snk.(*Sink)
		if err := s.Open(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Recover(ctx, 0, nil); err != nil {
			t.Fatal(err)
		}
		b := array.NewRecordBuilder(alloc, schema)
		b.Field(0).(*array.Int8Builder).Append(int8(connectors.Insert))
		b.Field(1).(*array.Int64Builder).Append(int64(id))
		rec := b.NewRecord()
		b.Release()
		err = s.Write(ctx, connectors.Batch{Table: connectors.TableID{Database: "d", Table: "t"}, Record: rec})
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		state, err := s.PreCommit(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, 1, state); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "j", "*.jsonl"))
	if len(files) != 2 {
		t.Fatalf("committed files %v, want one per job incarnation", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
}
