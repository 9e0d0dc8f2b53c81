package connectors

import (
	"sort"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
)

// ColumnOp is one kind of change a sink makes to a target table's columns.
type ColumnOp uint8

// The column changes, in the order a sink applies them.
const (
	RenameColumn ColumnOp = iota + 1
	AddColumn
	ModifyColumn
	DropColumn
)

func (o ColumnOp) String() string {
	return [...]string{"", "RENAME", "ADD", "MODIFY", "DROP"}[o]
}

// ColumnChange is one change to a target table. Name is the column (the
// new name for a rename, whose old name is From). For ADD and MODIFY,
// Field is the source's field and Index its position among the data
// fields; for ADD, After names the data field before it ("" when first).
type ColumnChange struct {
	Op    ColumnOp
	Name  string
	From  string
	Field arrow.Field
	Index int
	After string
}

// DiffColumns is the one rule by which sinks follow a source schema: it
// compares the target table's columns (lower-case name → whatever the
// caller compares types by) with the source's data fields (without the
// row-kind column) and the DDL statement that announced them.
//   - Renames the DDL makes come first, so data stays in its column; a
//     rename whose target name exists already is skipped.
//   - A field the target lacks is added, after the field before it.
//   - A field whose type differs (retype says so) is modified.
//   - A target column no field has is dropped only when the DDL drops it:
//     rows replayed from before an ADD COLUMN are announced without that
//     column, and it must survive them.
//
// DiffColumns does not change existing.
func DiffColumns(existing map[string]string, fields []arrow.Field, ddl string, retype func(f arrow.Field, have string) bool) []ColumnChange {
	have := make(map[string]string, len(existing))
	for k, v := range existing {
		have[k] = v
	}
	var out []ColumnChange
	for _, r := range RenamedColumns(ddl) {
		from, to := strings.ToLower(r[0]), strings.ToLower(r[1])
		typ, ok := have[from]
		if _, clash := have[to]; !ok || clash {
			continue
		}
		out = append(out, ColumnChange{Op: RenameColumn, Name: r[1], From: r[0]})
		have[to] = typ
		delete(have, from)
	}
	named := make(map[string]bool, len(fields))
	for i, f := range fields {
		lc := strings.ToLower(f.Name)
		named[lc] = true
		typ, ok := have[lc]
		switch {
		case !ok:
			after := ""
			if i > 0 {
				after = fields[i-1].Name
			}
			out = append(out, ColumnChange{Op: AddColumn, Name: f.Name, Field: f, Index: i, After: after})
		case retype != nil && retype(f, typ):
			out = append(out, ColumnChange{Op: ModifyColumn, Name: f.Name, Field: f, Index: i})
		}
	}
	var drops []string
	for c := range have {
		if !named[c] && DropsColumn(ddl, c) {
			drops = append(drops, c)
		}
	}
	sort.Strings(drops)
	for _, c := range drops {
		out = append(out, ColumnChange{Op: DropColumn, Name: c})
	}
	return out
}
