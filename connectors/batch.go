package connectors

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
)

// RowKind says what a row of a batch means to the sink.
type RowKind int8

// Row kinds, in the order Flink and SeaTunnel use. The values travel in the
// RowKindColumn of every batch and are never renumbered.
const (
	Insert RowKind = iota
	UpdateBefore
	UpdateAfter
	Delete
)

var rowKindNames = [...]string{"INSERT", "UPDATE_BEFORE", "UPDATE_AFTER", "DELETE"}

func (k RowKind) String() string {
	if k >= 0 && int(k) < len(rowKindNames) {
		return rowKindNames[k]
	}
	return fmt.Sprintf("RowKind(%d)", int8(k))
}

// RowKindColumn is the name of column 0 of every batch: an int8 RowKind per row.
const RowKindColumn = "__row_kind"

// RowKindField is the schema field of the row-kind column.
var RowKindField = arrow.Field{Name: RowKindColumn, Type: arrow.PrimitiveTypes.Int8}

// TableID names a table at the source (or, after a transform, at the sink).
type TableID struct {
	Database string
	Table    string
}

func (t TableID) String() string {
	if t.Database == "" {
		return t.Table
	}
	return t.Database + "." + t.Table
}

// Position is a source's opaque record of how far it has read. A source
// resumes exactly after the batch whose Position it is given.
type Position []byte

// Batch is the unit of data flowing from sources through transforms to sinks.
// Record's column 0 is RowKindColumn; the data columns follow. The holder of a
// Batch owns one reference to Record and must Release it (or hand it on).
type Batch struct {
	Table  TableID
	Record arrow.Record
	// Position is the source position just after the last row of this batch.
	Position Position
	// EventTime is when the newest change of the batch happened at the
	// source; the sink measures lag against it.
	EventTime time.Time
	// DDL, when not empty, marks a batch without rows that announces a new
	// schema for Table: Record's schema is the table's schema from here on,
	// and DDL is the source statement that changed it (for logs and sinks
	// that map renames). Sinks apply it before the batches that follow.
	DDL string
}

// DropsColumn says whether the source statement of a DDL batch drops
// column name. Sinks drop a target column only then: a schema announced for
// rows replayed from before a later ADD COLUMN lacks that column too.
func DropsColumn(ddl, name string) bool {
	re := regexp.MustCompile("(?i)DROP\\s+(?:COLUMN\\s+)?(?:IF\\s+EXISTS\\s+)?`?" + regexp.QuoteMeta(name) + "`?(?:\\s|,|;|$)")
	return re.MatchString(ddl)
}

var (
	renameColRe = regexp.MustCompile("(?i)RENAME\\s+COLUMN\\s+(?:`((?:[^`]|``)+)`|(\\w+))\\s+TO\\s+(?:`((?:[^`]|``)+)`|(\\w+))")
	changeColRe = regexp.MustCompile("(?i)CHANGE\\s+(?:COLUMN\\s+)?(?:IF\\s+EXISTS\\s+)?(?:`((?:[^`]|``)+)`|(\\w+))\\s+(?:`((?:[^`]|``)+)`|(\\w+))")
)

// RenamedColumns lists the (from, to) column renames a schema-change
// batch's DDL makes: RENAME COLUMN a TO b, and CHANGE [COLUMN] a b …
// with a different name. Sinks rename instead of drop + add, which would
// lose the column's data.
func RenamedColumns(ddl string) [][2]string {
	unquote := func(quoted, bare string) string {
		if quoted != "" {
			return strings.ReplaceAll(quoted, "``", "`")
		}
		return bare
	}
	var out [][2]string
	for _, re := range []*regexp.Regexp{renameColRe, changeColRe} {
		for _, m := range re.FindAllStringSubmatch(ddl, -1) {
			from, to := unquote(m[1], m[2]), unquote(m[3], m[4])
			if !strings.EqualFold(from, to) {
				out = append(out, [2]string{from, to})
			}
		}
	}
	return out
}

// Metadata keys that sources put on schemas, for sinks that create or alter
// target tables.
const (
	// MetaSourceType (field) is the column's type at the source, in the
	// source's own SQL, e.g. "bigint(20) unsigned" or "varchar(64)".
	MetaSourceType = "sluice.source_type"
	// MetaCharset and MetaCollation (field) are a text column's character
	// set and collation at the source, e.g. "utf8mb4", "utf8mb4_bin".
	MetaCharset   = "sluice.charset"
	MetaCollation = "sluice.collation"
	// MetaDefault (field) is the column's default as a MySQL expression,
	// ready to follow DEFAULT: "'red'", "0", "NULL", "current_timestamp()".
	// Absent: the column has no default.
	MetaDefault = "sluice.default"
	// MetaComment (field) is the column's comment at the source.
	MetaComment = "sluice.comment"
	// MetaPrimaryKey (schema) lists the key columns in key order, as a
	// JSON array of names (a name may hold any character, commas too);
	// write it with KeyMetadata, read it with PrimaryKey.
	MetaPrimaryKey = "sluice.primary_key"
)

// KeyMetadata is the schema metadata that declares names as the primary key.
func KeyMetadata(names ...string) arrow.Metadata {
	v, _ := json.Marshal(names)
	return arrow.NewMetadata([]string{MetaPrimaryKey}, []string{string(v)})
}

// PrimaryKey returns the key columns a schema declares (nil when none).
// A value that is not a JSON array is read as the comma-separated form of
// earlier versions, which checkpoints may still hold.
func PrimaryKey(schema *arrow.Schema) ([]string, error) {
	v, ok := schema.Metadata().GetValue(MetaPrimaryKey)
	if !ok || v == "" {
		return nil, nil
	}
	if !strings.HasPrefix(v, "[") {
		return strings.Split(v, ","), nil
	}
	var names []string
	if err := json.Unmarshal([]byte(v), &names); err != nil {
		return nil, fmt.Errorf("%w: %s %q: %v", ErrBadBatch, MetaPrimaryKey, v, err)
	}
	return names, nil
}

// Release drops the batch's reference to its record.
func (b Batch) Release() {
	if b.Record != nil {
		b.Record.Release()
	}
}

// Rows is the number of rows in the batch.
func (b Batch) Rows() int64 {
	if b.Record == nil {
		return 0
	}
	return b.Record.NumRows()
}

// Bytes is the size of the batch's Arrow buffers, the unit of the byte
// counters in sluice.metrics.
func (b Batch) Bytes() int64 {
	if b.Record == nil {
		return 0
	}
	var n int64
	for _, col := range b.Record.Columns() {
		n += arrayBytes(col.Data())
	}
	return n
}

func arrayBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, buf := range d.Buffers() {
		if buf != nil {
			n += int64(buf.Len())
		}
	}
	for _, c := range d.Children() {
		n += arrayBytes(c)
	}
	return n
}

// RowKinds returns the row-kind column of rec (borrowed, not retained).
func RowKinds(rec arrow.Record) (*array.Int8, error) {
	if rec.NumCols() == 0 || rec.ColumnName(0) != RowKindColumn {
		return nil, fmt.Errorf("%w: column 0 is not %s", ErrBadBatch, RowKindColumn)
	}
	kinds, ok := rec.Column(0).(*array.Int8)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %s, want int8", ErrBadBatch, RowKindColumn, rec.Column(0).DataType())
	}
	return kinds, nil
}
