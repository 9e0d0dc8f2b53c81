package mysqlcdc

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/decimal256"
	"github.com/shopspring/decimal"
	"golang.org/x/text/encoding/charmap"

	"sluice/connectors"
)

// kind is how a column's values are converted; one per row of the type
// table in DESIGN.md.
type kind uint8

const (
	kInt kind = iota
	kUint
	kFloat32
	kFloat64
	kDecimal
	kBit
	kDate
	kTime
	kDatetime
	kTimestamp
	kYear
	kString
	kBinary
	kEnum
	kSet
	kJSON
	kGeometry
)

// column is one column of a captured table, from information_schema.
type column struct {
	Name     string
	DataType string // DATA_TYPE, lower case: "int", "varchar", …
	ColType  string // COLUMN_TYPE: "int(10) unsigned", "enum('a','b')", …
	Nullable bool
	Prec     int
	Scale    int
	Charset  string
	Collate  string
	Default  string // SQL expression; "" when the column has none
	Comment  string
	Elems    []string // ENUM/SET members
	kind     kind
	width    uint // integer width in bits (for unsigned masking)
	latin1   bool // values arrive from the binlog in latin1 and are converted
	fixedLen int  // BINARY(n): the binlog drops trailing zero bytes; they are restored
	typ      arrow.DataType
}

// table is a captured table's schema.
type table struct {
	ID     connectors.TableID
	Cols   []column
	PK     []int // column indexes of the chunk key (primary key or snapshot.chunk.key)
	HasPK  bool  // PK is the real primary key
	schema *arrow.Schema
	// pendingDDL: ALTERs read from the binlog whose result is not known yet
	// (the reader lags; the next rows event describes the table).
	pendingDDL []string
	st         *tableStat // see Source.stat
}

// key returns the "db.table" form used in options and positions.
func (t *table) key() string { return t.ID.Database + "." + t.ID.Table }

func (t *table) colNames() []string {
	out := make([]string, len(t.Cols))
	for i, c := range t.Cols {
		out[i] = c.Name
	}
	return out
}

// loadTable reads a table's columns and primary key. chunkKey, when not
// empty, names the column(s) to chunk by instead of the primary key.
func loadTable(ctx context.Context, db *sql.DB, id connectors.TableID, chunkKey []string) (*table, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+columnsSelect+`
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY ORDINAL_POSITION`, id.Database, id.Table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	t := &table{ID: id}
	for rows.Next() {
		var cs columnScan
		if err := rows.Scan(cs.dest()...); err != nil {
			return nil, err
		}
		c, err := cs.column()
		if err != nil {
			return nil, fmt.Errorf("table %s column %s: %w", t.key(), c.Name, err)
		}
		t.Cols = append(t.Cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(t.Cols) == 0 {
		return nil, fmt.Errorf("%w: table %s does not exist (or the user cannot see it: it needs SELECT)", connectors.ErrPrecondition, t.key())
	}
	krows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA=? AND TABLE_NAME=? AND CONSTRAINT_NAME='PRIMARY' ORDER BY ORDINAL_POSITION`, id.Database, id.Table)
	if err != nil {
		return nil, err
	}
	defer krows.Close()
	var pk []string
	for krows.Next() {
		var n string
		if err := krows.Scan(&n); err != nil {
			return nil, err
		}
		pk = append(pk, n)
	}
	if err := krows.Err(); err != nil {
		return nil, err
	}
	return t.finish(pk, chunkKey)
}

// finish sets a table's key (its primary key pk, else chunkKey) and schema.
func (t *table) finish(pk, chunkKey []string) (*table, error) {
	t.HasPK = len(pk) > 0
	if len(chunkKey) > 0 && !t.HasPK {
		pk = chunkKey
	}
	for _, n := range pk {
		i := t.index(n)
		if i < 0 {
			return nil, fmt.Errorf("%w: table %s has no column %q (snapshot.chunk.key)", connectors.ErrPrecondition, t.key(), n)
		}
		t.PK = append(t.PK, i)
	}
	t.buildSchema()
	return t, nil
}

// defaultExpr turns information_schema.COLUMNS.COLUMN_DEFAULT into a SQL
// expression. MariaDB (10.2.7+) stores it as one already ('red', NULL,
// current_timestamp()); MySQL stores a literal's bare value and marks
// expressions DEFAULT_GENERATED in EXTRA.
func defaultExpr(def sql.NullString, extra, dataType string, maria bool) string {
	if !def.Valid {
		return ""
	}
	if maria {
		return def.String
	}
	v := def.String
	switch {
	case strings.Contains(strings.ToUpper(extra), "DEFAULT_GENERATED"):
		if strings.HasPrefix(strings.ToUpper(v), "CURRENT_TIMESTAMP") {
			return v
		}
		return "(" + v + ")"
	case strings.HasPrefix(v, "b'") && dataType == "bit":
		return v
	}
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "float", "double", "decimal", "year":
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(v) + "'"
}

// defaultValue is the column's default as a value, when it is a constant
// (a literal, or NULL); ok is false for an expression.
func (c *column) defaultValue() (v any, ok bool) {
	d := strings.TrimSpace(c.Default)
	switch {
	case d == "" || strings.EqualFold(d, "NULL"):
		return nil, true
	case len(d) >= 2 && d[0] == '\'' && d[len(d)-1] == '\'':
		d = strings.ReplaceAll(d[1:len(d)-1], "''", "'")
	case strings.ContainsAny(d, "()") || strings.HasPrefix(strings.ToLower(d), "current_"):
		return nil, false
	}
	v, err := c.fromText([]byte(d))
	return v, err == nil
}

func (t *table) index(name string) int {
	for i, c := range t.Cols {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

func (t *table) buildSchema() {
	fields := make([]arrow.Field, 0, len(t.Cols)+1)
	fields = append(fields, connectors.RowKindField)
	for _, c := range t.Cols {
		keys, vals := []string{connectors.MetaSourceType}, []string{c.ColType}
		add := func(k, v string) {
			if v != "" {
				keys, vals = append(keys, k), append(vals, v)
			}
		}
		add(connectors.MetaCharset, c.Charset)
		add(connectors.MetaCollation, c.Collate)
		add(connectors.MetaDefault, c.Default)
		add(connectors.MetaComment, c.Comment)
		fields = append(fields, arrow.Field{Name: c.Name, Type: c.typ, Nullable: c.Nullable, Metadata: arrow.NewMetadata(keys, vals)})
	}
	var md arrow.Metadata
	if t.HasPK {
		names := make([]string, len(t.PK))
		for i, k := range t.PK {
			names[i] = t.Cols[k].Name
		}
		md = connectors.KeyMetadata(names...)
	}
	t.schema = arrow.NewSchema(fields, &md)
}

// resolve picks the conversion and Arrow type of a column from its
// information_schema description. The table in DESIGN.md mirrors it.
func (c *column) resolve() error {
	unsigned := strings.Contains(c.ColType, "unsigned")
	intType := func(bits uint, s, u arrow.DataType) {
		c.width = bits
		if unsigned {
			c.kind, c.typ = kUint, u
		} else {
			c.kind, c.typ = kInt, s
		}
	}
	switch c.DataType {
	case "tinyint":
		intType(8, arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Uint8)
	case "smallint":
		intType(16, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Uint16)
	case "mediumint":
		intType(24, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint32)
	case "int", "integer":
		intType(32, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint32)
	case "bigint":
		intType(64, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Uint64)
	case "float":
		c.kind, c.typ = kFloat32, arrow.PrimitiveTypes.Float32
	case "double", "real", "double precision":
		c.kind, c.typ = kFloat64, arrow.PrimitiveTypes.Float64
	case "decimal", "numeric":
		c.kind = kDecimal
		if c.Prec <= 38 {
			c.typ = &arrow.Decimal128Type{Precision: int32(c.Prec), Scale: int32(c.Scale)}
		} else {
			c.typ = &arrow.Decimal256Type{Precision: int32(c.Prec), Scale: int32(c.Scale)}
		}
	case "bit":
		c.kind, c.typ = kBit, arrow.PrimitiveTypes.Uint64
	case "date":
		c.kind, c.typ = kDate, arrow.FixedWidthTypes.Date32
	case "time":
		c.kind, c.typ = kTime, arrow.FixedWidthTypes.Duration_us
	case "datetime":
		c.kind, c.typ = kDatetime, &arrow.TimestampType{Unit: arrow.Microsecond}
	case "timestamp":
		c.kind, c.typ = kTimestamp, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case "year":
		c.kind, c.typ = kYear, arrow.PrimitiveTypes.Uint16
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if c.Charset == "binary" {
			c.kind, c.typ = kBinary, arrow.BinaryTypes.Binary
			break
		}
		c.kind, c.typ = kString, arrow.BinaryTypes.String
		switch c.Charset {
		case "latin1":
			c.latin1 = true
		case "utf8", "utf8mb3", "utf8mb4", "ascii", "":
		default:
			return fmt.Errorf("%w: character set %s is not supported (utf8mb4, utf8mb3, ascii, latin1 are); convert the column", connectors.ErrPrecondition, c.Charset)
		}
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.kind, c.typ = kBinary, arrow.BinaryTypes.Binary
		if c.DataType == "binary" {
			fmt.Sscanf(c.ColType, "binary(%d)", &c.fixedLen)
		}
	case "enum", "set":
		c.kind, c.typ = kEnum, arrow.BinaryTypes.String
		if c.DataType == "set" {
			c.kind = kSet
		}
		c.Elems = parseElems(c.ColType)
		c.latin1 = c.Charset == "latin1"
	case "json":
		c.kind, c.typ = kJSON, arrow.BinaryTypes.String
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		c.kind, c.typ = kGeometry, arrow.BinaryTypes.Binary
	default:
		return fmt.Errorf("%w: type %s is not supported", connectors.ErrPrecondition, c.ColType)
	}
	return nil
}

// parseElems reads the members of enum('a','b”c') or set(…).
func parseElems(colType string) []string {
	open := strings.IndexByte(colType, '(')
	if open < 0 {
		return nil
	}
	s := colType[open+1:]
	var out []string
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return out
		}
		s = s[i+1:]
		var b strings.Builder
		for len(s) > 0 {
			if s[0] == '\'' {
				if len(s) > 1 && s[1] == '\'' {
					b.WriteByte('\'')
					s = s[2:]
					continue
				}
				s = s[1:]
				break
			}
			if s[0] == '\\' && len(s) > 1 {
				b.WriteByte(s[1])
				s = s[2:]
				continue
			}
			b.WriteByte(s[0])
			s = s[1:]
		}
		out = append(out, b.String())
	}
}

// Values travel between the decoders and the Arrow builders in one
// canonical Go form per kind: int64 (kInt), uint64 (kUint, kBit, kYear),
// float64, decimal128.Num / decimal256.Num, int32 days (kDate), int64
// microseconds (kTime, kDatetime, kTimestamp), string (kString, kEnum,
// kSet, kJSON), []byte (kBinary, kGeometry); nil is NULL.

// daysSinceEpoch counts whole days from 1970-01-01 (a Duration would
// overflow for dates before 1678 or after 2262).
func daysSinceEpoch(t time.Time) int32 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return int32(d)
}

// fromBinlog converts a value decoded by go-mysql (ParseTime and
// UseDecimal on) to the canonical form. Strings and byte slices are copied:
// go-mysql's alias the packet buffer.
func (c *column) fromBinlog(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind {
	case kInt:
		return toInt64(v)
	case kUint:
		n, err := toInt64(v)
		if err != nil {
			return nil, err
		}
		return c.unsigned(n), nil
	case kFloat32:
		if f, ok := v.(float32); ok {
			return float64(f), nil
		}
	case kFloat64:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case kDecimal:
		switch d := v.(type) {
		case decimal.Decimal:
			return c.decimalFromBig(d.Coefficient(), int(d.Exponent()))
		case string:
			return c.fromText([]byte(d))
		}
	case kBit:
		n, err := toInt64(v)
		return uint64(n), err
	case kYear:
		n, err := toInt64(v)
		return uint64(n), err
	case kDate, kTime:
		switch s := v.(type) {
		case string:
			return c.fromText([]byte(s))
		case time.Time:
			return daysSinceEpoch(s), nil
		}
	case kDatetime:
		switch t := v.(type) {
		case time.Time:
			w := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
			return w.UnixMicro(), nil
		case string:
			return c.fromText([]byte(t))
		}
	case kTimestamp:
		switch t := v.(type) {
		case time.Time:
			if t.Unix() == 0 && t.Nanosecond() == 0 {
				return nil, nil // MySQL's zero TIMESTAMP
			}
			return t.UnixMicro(), nil
		case string:
			return c.fromText([]byte(t))
		}
	case kString, kJSON:
		switch s := v.(type) {
		case string:
			if c.latin1 {
				return latin1ToUTF8([]byte(s))
			}
			return strings.Clone(s), nil
		case []byte:
			if c.latin1 {
				return latin1ToUTF8(s)
			}
			return string(s), nil
		}
	case kBinary:
		var out []byte
		switch b := v.(type) {
		case []byte:
			out = append([]byte(nil), b...)
		case string:
			out = []byte(b)
		default:
			return nil, fmt.Errorf("column %s (%s): unexpected binlog value %T", c.Name, c.ColType, v)
		}
		for len(out) < c.fixedLen {
			out = append(out, 0)
		}
		return out, nil
	case kGeometry:
		if b, ok := v.([]byte); ok {
			return stripSRID(b), nil
		}
	case kEnum:
		n, err := toInt64(v)
		if err != nil {
			return nil, err
		}
		if n <= 0 || int(n) > len(c.Elems) {
			return "", nil // MySQL's '' for an invalid ENUM value
		}
		return c.Elems[n-1], nil
	case kSet:
		n, err := toInt64(v)
		if err != nil {
			return nil, err
		}
		var parts []string
		for i, e := range c.Elems {
			if uint64(n)&(1<<uint(i)) != 0 {
				parts = append(parts, e)
			}
		}
		return strings.Join(parts, ","), nil
	}
	return nil, fmt.Errorf("column %s (%s): unexpected binlog value %T", c.Name, c.ColType, v)
}

// unsigned is an UNSIGNED column's value of n, which the binlog carries
// signed at the column's width.
func (c *column) unsigned(n int64) uint64 {
	if c.width >= 64 {
		return uint64(n)
	}
	return uint64(n) & (1<<c.width - 1)
}

func toInt64(v any) (int64, error) {
	switch n := v.(type) {
	case int8:
		return int64(n), nil
	case int16:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case uint8:
		return int64(n), nil
	case uint16:
		return int64(n), nil
	case uint32:
		return int64(n), nil
	case uint64:
		return int64(n), nil
	}
	return 0, fmt.Errorf("unexpected integer %T", v)
}

func latin1ToUTF8(b []byte) (string, error) {
	out, err := charmap.Windows1252.NewDecoder().Bytes(b) // MySQL's latin1 is cp1252
	return string(out), err
}

// stripSRID turns MySQL's internal geometry (4-byte SRID, then WKB) into WKB.
func stripSRID(b []byte) []byte {
	if len(b) < 4 {
		return append([]byte(nil), b...)
	}
	return append([]byte(nil), b[4:]...)
}

func (c *column) decimalFromBig(coef *big.Int, exp int) (any, error) {
	shift := exp + c.Scale
	v := new(big.Int).Set(coef)
	if shift > 0 {
		v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(shift)), nil))
	} else if shift < 0 {
		v.Quo(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-shift)), nil))
	}
	if _, ok := c.typ.(*arrow.Decimal128Type); ok {
		return decimal128.FromBigInt(v), nil
	}
	return decimal256.FromBigInt(v), nil
}

// fromText converts a value of the text protocol (a snapshot SELECT on a
// session with time_zone '+00:00') to the canonical form. nil is NULL.
func (c *column) fromText(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	s := string(b)
	switch c.kind {
	case kInt:
		return strconv.ParseInt(s, 10, 64)
	case kUint, kYear:
		return strconv.ParseUint(s, 10, 64)
	case kFloat32:
		f, err := strconv.ParseFloat(s, 64)
		return float64(float32(f)), err
	case kFloat64:
		return strconv.ParseFloat(s, 64)
	case kDecimal:
		if !plainDecimal(b) {
			// The server writes DECIMAL as [-]digits[.digits]; anything
			// else (an exponent: arrow's FromString panics on 1E01000000000)
			// is refused before it reaches the parser.
			return nil, fmt.Errorf("column %s: %q is not DECIMAL text", c.Name, s)
		}
		if t, ok := c.typ.(*arrow.Decimal128Type); ok {
			return decimal128.FromString(s, t.Precision, t.Scale)
		}
		t := c.typ.(*arrow.Decimal256Type)
		return decimal256.FromString(s, t.Precision, t.Scale)
	case kBit:
		var buf [8]byte
		if len(b) > 8 {
			return nil, fmt.Errorf("BIT value of %d bytes", len(b))
		}
		copy(buf[8-len(b):], b)
		return binary.BigEndian.Uint64(buf[:]), nil
	case kDate:
		if strings.HasPrefix(s, "0000-00-00") {
			return nil, nil
		}
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil, err
		}
		return daysSinceEpoch(t), nil
	case kTime:
		return parseTime(s)
	case kDatetime, kTimestamp:
		if strings.HasPrefix(s, "0000-00-00") {
			return nil, nil
		}
		t, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			return nil, err
		}
		return t.UnixMicro(), nil
	case kString, kEnum, kSet, kJSON:
		return s, nil
	case kBinary:
		return append([]byte(nil), b...), nil
	case kGeometry:
		return stripSRID(b), nil
	}
	return nil, fmt.Errorf("column %s: no text conversion", c.Name)
}

// parseTime reads MySQL TIME text, [-]HHH:MM:SS[.ffffff], into microseconds.
func parseTime(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var frac int64
	if i := strings.IndexByte(s, '.'); i >= 0 {
		f := (s[i+1:] + "000000")[:6]
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("TIME %q: %w", s, err)
		}
		frac, s = n, s[:i]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("TIME %q: want HH:MM:SS", s)
	}
	var hms [3]int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("TIME %q: %w", s, err)
		}
		hms[i] = n
	}
	us := ((hms[0]*60+hms[1])*60+hms[2])*1_000_000 + frac
	if neg {
		us = -us
	}
	return us, nil
}

// appendText adds one snapshot (text protocol) value to b: the common
// kinds directly, the others through fromText. nil is NULL.
func appendText(b array.Builder, c *column, v []byte) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	if appendTextFast(b, c, v) {
		return nil
	}
	switch c.kind {
	case kString, kEnum, kSet, kJSON:
		b.(*array.StringBuilder).BinaryBuilder.Append(v)
		return nil
	case kBinary:
		b.(*array.BinaryBuilder).Append(v)
		return nil
	case kFloat64:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return err
		}
		b.(*array.Float64Builder).Append(f)
		return nil
	}
	val, err := c.fromText(v)
	if err != nil {
		return err
	}
	appendValue(b, val)
	return nil
}

// appendInt appends n to a signed integer builder of any width (the
// column's width: a narrower value is the column's); false for another
// builder.
func appendInt(b array.Builder, n int64) bool {
	switch b := b.(type) {
	case *array.Int8Builder:
		b.Append(int8(n))
	case *array.Int16Builder:
		b.Append(int16(n))
	case *array.Int32Builder:
		b.Append(int32(n))
	case *array.Int64Builder:
		b.Append(n)
	default:
		return false
	}
	return true
}

// appendUint is appendInt for unsigned builders.
func appendUint(b array.Builder, u uint64) bool {
	switch b := b.(type) {
	case *array.Uint8Builder:
		b.Append(uint8(u))
	case *array.Uint16Builder:
		b.Append(uint16(u))
	case *array.Uint32Builder:
		b.Append(uint32(u))
	case *array.Uint64Builder:
		b.Append(u)
	default:
		return false
	}
	return true
}

// appendValue adds one canonical value to the builder of column c.
func appendValue(b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch x := v.(type) {
	case int64:
		if appendInt(b, x) {
			return
		}
	case uint64:
		if appendUint(b, x) {
			return
		}
	}
	switch b := b.(type) {
	case *array.Float32Builder:
		b.Append(float32(v.(float64)))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.Decimal128Builder:
		b.Append(v.(decimal128.Num))
	case *array.Decimal256Builder:
		b.Append(v.(decimal256.Num))
	case *array.Date32Builder:
		b.Append(arrow.Date32(v.(int32)))
	case *array.DurationBuilder:
		b.Append(arrow.Duration(v.(int64)))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.(int64)))
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.BinaryBuilder:
		b.Append(v.([]byte))
	default:
		panic(fmt.Sprintf("mysqlcdc: no appender for %T", b))
	}
}

// compareValues orders two canonical values of the same column; strings
// and bytes compare bytewise, which can differ from the column's collation
// (only routing efficiency depends on it, never correctness: see
// DESIGN.md).
func compareValues(a, b any) int {
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case uint64:
		return cmp.Compare(x, b.(uint64))
	case float64:
		return cmp.Compare(x, b.(float64))
	case int32:
		return cmp.Compare(x, b.(int32))
	case decimal128.Num:
		return x.Cmp(b.(decimal128.Num))
	case decimal256.Num:
		return x.Cmp(b.(decimal256.Num))
	case string:
		return strings.Compare(x, b.(string))
	case []byte:
		return strings.Compare(string(x), string(b.([]byte)))
	}
	return 0
}
