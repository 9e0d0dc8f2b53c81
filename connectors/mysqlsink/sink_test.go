package mysqlsink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/internal/mariadbtest"
)

// srv is one MariaDB whose defaults are latin1, as many servers' are: a
// sink that relies on the server's defaults mangles text there.
var srv *mariadbtest.Server

func TestMain(m *testing.M) {
	os.Exit(mariadbtest.Main(m, &srv, "--character-set-server=latin1", "--collation-server=latin1_swedish_ci"))
}

func newSink(t *testing.T, opts map[string]string) *Sink {
	t.Helper()
	return newSinkEnv(t, opts, connectors.Env{Job: "j", JobID: 1})
}

func newSinkEnv(t *testing.T, opts map[string]string, env connectors.Env) *Sink {
	t.Helper()
	raw := map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port), "user": mariadbtest.AdminUser,
		"password": mariadbtest.AdminPass, "batch.interval": "1h"}
	for k, v := range opts {
		raw[k] = v
	}
	cfg, err := Options.Validate("mysql", raw)
	if err != nil {
		t.Fatal(err)
	}
	snk, err := Spec().NewSink(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	s := snk.(*Sink)
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// field is a data field with source metadata (key=value pairs).
func field(name string, typ arrow.DataType, nullable bool, md ...string) arrow.Field {
	var k, v []string
	for i := 0; i+1 < len(md); i += 2 {
		k, v = append(k, md[i]), append(v, md[i+1])
	}
	return arrow.Field{Name: name, Type: typ, Nullable: nullable, Metadata: arrow.NewMetadata(k, v)}
}

func schemaOf(key []string, fields ...arrow.Field) *arrow.Schema {
	var md *arrow.Metadata
	if len(key) > 0 {
		m := connectors.KeyMetadata(key...)
		md = &m
	}
	return arrow.NewSchema(append([]arrow.Field{connectors.RowKindField}, fields...), md)
}

// write sends rows (values per data field; int64 or string) as INSERTs.
func write(t *testing.T, s *Sink, id connectors.TableID, schema *arrow.Schema, ddl string, rows ...[]any) error {
	t.Helper()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int8Builder).Append(int8(connectors.Insert))
		for i, v := range r {
			switch fb := b.Field(i + 1).(type) {
			case *array.Int64Builder:
				fb.Append(v.(int64))
			case *array.StringBuilder:
				fb.Append(v.(string))
			}
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := s.Write(context.Background(), connectors.Batch{Table: id, Record: rec, DDL: ddl}); err != nil {
		return err
	}
	return s.Flush(context.Background())
}

func query(t *testing.T, q string) []string {
	t.Helper()
	db := srv.Open(t, "")
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, b any
		cols, _ := rows.Columns()
		if len(cols) == 1 {
			err = rows.Scan(&a)
		} else {
			err = rows.Scan(&a, &b)
		}
		if err != nil {
			t.Fatal(err)
		}
		str := func(v any) string {
			if b, ok := v.([]byte); ok {
				return string(b)
			}
			return fmt.Sprint(v)
		}
		s := str(a)
		if len(cols) > 1 {
			s += "=" + str(b)
		}
		out = append(out, s)
	}
	return out
}

var unicode = []string{"✓", "日本語", "😀 emoji", "naïve"}

// Text outside latin1 survives a target server whose default is latin1:
// created columns carry the source's character set (utf8mb4 when it is
// unknown), and a value a column cannot hold fails loudly (issue 10,
// defect 2: it silently became '?').
func TestCreatedTablesKeepUnicode(t *testing.T) {
	s := newSink(t, nil)
	schema := schemaOf([]string{"id"},
		field("id", arrow.PrimitiveTypes.Int64, false, connectors.MetaSourceType, "bigint(20)"),
		field("v", arrow.BinaryTypes.String, true, connectors.MetaSourceType, "varchar(20)",
			connectors.MetaCharset, "utf8mb4", connectors.MetaCollation, "utf8mb4_bin"),
		field("w", arrow.BinaryTypes.String, true)) // no source metadata
	var rows [][]any
	for i, u := range unicode {
		rows = append(rows, []any{int64(i), u, u})
	}
	if err := write(t, s, connectors.TableID{Database: "uni", Table: "t"}, schema, "", rows...); err != nil {
		t.Fatal(err)
	}
	got := query(t, "SELECT v, w FROM uni.t ORDER BY id")
	for i, u := range unicode {
		if got[i] != u+"="+u {
			t.Fatalf("row %d: %q, want %q", i, got[i], u+"="+u)
		}
	}
	if cs := query(t, "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='uni' AND TABLE_NAME='t' AND COLUMN_NAME='v'"); cs[0] != "utf8mb4_bin" {
		t.Fatalf("collation of v: %v", cs)
	}

	// A latin1 column the user made: '日本語' cannot be held, so the write fails.
	srv.Exec(t, "CREATE DATABASE lat", "CREATE TABLE lat.t (id BIGINT PRIMARY KEY, v VARCHAR(20) CHARACTER SET latin1)")
	err := write(t, newSink(t, nil), connectors.TableID{Database: "lat", Table: "t"}, schema, "", []any{int64(1), "日本語", "x"})
	if err == nil || !strings.Contains(err.Error(), "Incorrect string value") {
		t.Fatalf("writing 日本語 into latin1: %v, want a loud error", err)
	}
	if n := query(t, "SELECT COUNT(*) FROM lat.t"); n[0] != "0" {
		t.Fatalf("%s rows written with a mangled value", n[0])
	}
}

// A key column whose name holds a comma works (issue 10, defect 5).
func TestKeyColumnWithAComma(t *testing.T) {
	s := newSink(t, nil)
	schema := schemaOf([]string{"i,d"}, field("i,d", arrow.PrimitiveTypes.Int64, false), field("v", arrow.BinaryTypes.String, true))
	id := connectors.TableID{Database: "comma", Table: "t"}
	for _, v := range []string{"a", "b"} { // the second is an upsert of the same key
		if err := write(t, s, id, schema, "", []any{int64(1), v}); err != nil {
			t.Fatal(err)
		}
	}
	if got := query(t, "SELECT `i,d`, v FROM comma.t"); len(got) != 1 || got[0] != "1=b" {
		t.Fatalf("rows %v", got)
	}
}

// ADD COLUMN … DEFAULT at the source gives existing target rows the
// default (the binlog has no row events for them), and keeps nullability,
// character set and comment (issue 10, defect 12).
func TestAddColumnCarriesItsDefault(t *testing.T) {
	s := newSink(t, nil)
	id := connectors.TableID{Database: "dflt", Table: "t"}
	idf := field("id", arrow.PrimitiveTypes.Int64, false, connectors.MetaSourceType, "int(11)")
	if err := write(t, s, id, schemaOf([]string{"id"}, idf), "", []any{int64(1)}, []any{int64(2)}); err != nil {
		t.Fatal(err)
	}
	color := field("color", arrow.BinaryTypes.String, false, connectors.MetaSourceType, "varchar(10)",
		connectors.MetaCharset, "utf8mb4", connectors.MetaCollation, "utf8mb4_unicode_ci",
		connectors.MetaDefault, "'red'", connectors.MetaComment, "it's a colour")
	if err := write(t, s, id, schemaOf([]string{"id"}, idf, color), "ALTER TABLE t ADD COLUMN color VARCHAR(10) NOT NULL DEFAULT 'red' COMMENT 'it''s a colour'",
		[]any{int64(3), "blue"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(query(t, "SELECT id, color FROM dflt.t ORDER BY id"), " "); got != "1=red 2=red 3=blue" {
		t.Fatalf("rows %s", got)
	}
	got := query(t, "SELECT CONCAT(IS_NULLABLE, ' ', COLLATION_NAME, ' ', COLUMN_DEFAULT), COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='dflt' AND COLUMN_NAME='color'")
	if got[0] != "NO utf8mb4_unicode_ci 'red'=it's a colour" {
		t.Fatalf("column: %s", got[0])
	}
}

// A table without a key cannot be deduplicated by an at-least-once
// replay: refused, unless the job accepts duplicates (issue 10, defect 3).
func TestKeylessTableRefusedUnlessAppend(t *testing.T) {
	schema := schemaOf(nil, field("v", arrow.PrimitiveTypes.Int64, false))
	id := connectors.TableID{Database: "nokey", Table: "t"}
	err := write(t, newSink(t, nil), id, schema, "", []any{int64(1)})
	if !errors.Is(err, connectors.ErrPrecondition) || !strings.Contains(err.Error(), "'keyless'='append'") {
		t.Fatalf("keyless table: %v", err)
	}
	if err := write(t, newSink(t, map[string]string{"keyless": "append"}), id, schema, "", []any{int64(1)}); err != nil {
		t.Fatal(err)
	}
	if n := query(t, "SELECT COUNT(*) FROM nokey.t"); n[0] != "1" {
		t.Fatalf("%s rows", n[0])
	}
}
