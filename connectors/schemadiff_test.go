package connectors

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
)

func TestDiffColumns(t *testing.T) {
	f := func(names ...string) []arrow.Field {
		var out []arrow.Field
		for _, n := range names {
			typ, name, _ := strings.Cut(n, ":")
			if name == "" {
				typ, name = "int", typ
			}
			out = append(out, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64,
				Metadata: arrow.NewMetadata([]string{MetaSourceType}, []string{typ})})
		}
		return out
	}
	retype := func(fl arrow.Field, have string) bool {
		v, _ := fl.Metadata.GetValue(MetaSourceType)
		return have != "" && v != have
	}
	for _, c := range []struct {
		name     string
		existing map[string]string
		fields   []arrow.Field
		ddl      string
		want     string
	}{
		{"nothing to do", map[string]string{"id": "int", "v": "int"}, f("id", "v"), "", ""},
		{"add keeps place", map[string]string{"id": "int", "v": "int"}, f("id", "c", "v"), "ALTER TABLE t ADD c INT AFTER id", "ADD c after id"},
		{"add first", map[string]string{"id": "int"}, f("c", "id"), "ALTER TABLE t ADD c INT FIRST", "ADD c after "},
		{"replayed old schema never drops", map[string]string{"id": "int", "c": "int"}, f("id"), "ALTER TABLE t ADD c INT", ""},
		{"announced without ddl never drops", map[string]string{"id": "int", "c": "int"}, f("id"), "", ""},
		{"drop what the ddl drops", map[string]string{"id": "int", "b": "int", "a": "int"}, f("id"), "ALTER TABLE t DROP COLUMN a, DROP b", "DROP a; DROP b"},
		{"rename keeps data", map[string]string{"id": "int", "old": "int"}, f("id", "new"), "ALTER TABLE t RENAME COLUMN old TO new", "RENAME old>new"},
		{"change with new name and type", map[string]string{"id": "int", "old": "int"}, f("id", "bigint:new"), "ALTER TABLE t CHANGE old new BIGINT", "RENAME old>new; MODIFY new"},
		{"rename onto existing is skipped", map[string]string{"id": "int", "a": "int", "b": "int"}, f("id", "b"), "ALTER TABLE t RENAME COLUMN a TO b", ""},
		{"retype", map[string]string{"id": "int", "v": "int"}, f("id", "varchar(9):v"), "ALTER TABLE t MODIFY v VARCHAR(9)", "MODIFY v"},
		{"unknown type is not a retype", map[string]string{"id": "", "v": ""}, f("id", "v"), "", ""},
		{"case-insensitive names", map[string]string{"id": "int", "v": "int"}, f("ID", "V"), "", ""},
		{"a name with a comma", map[string]string{"i,d": "int"}, f("i,d", "x"), "ALTER TABLE t ADD x INT", "ADD x after i,d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := fmt.Sprint(c.existing)
			var got []string
			for _, ch := range DiffColumns(c.existing, c.fields, c.ddl, retype) {
				switch ch.Op {
				case RenameColumn:
					got = append(got, "RENAME "+ch.From+">"+ch.Name)
				case AddColumn:
					got = append(got, "ADD "+ch.Name+" after "+ch.After)
				default:
					got = append(got, ch.Op.String()+" "+ch.Name)
				}
			}
			if s := strings.Join(got, "; "); s != c.want {
				t.Fatalf("got %q, want %q", s, c.want)
			}
			if fmt.Sprint(c.existing) != before {
				t.Fatal("DiffColumns changed its input")
			}
		})
	}
}

func TestPrimaryKeyRoundTrip(t *testing.T) {
	for _, names := range [][]string{{"id"}, {"i,d"}, {"a", "b`c", "日本"}} {
		md := KeyMetadata(names...)
		got, err := PrimaryKey(arrow.NewSchema(nil, &md))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(names) {
			t.Fatalf("%q → %q (%v)", names, got, err)
		}
	}
	old := arrow.NewMetadata([]string{MetaPrimaryKey}, []string{"a,b"}) // earlier versions' form
	if got, _ := PrimaryKey(arrow.NewSchema(nil, &old)); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("old form read as %q", got)
	}
}
