package mysqlsink

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
)

// valueAt converts one Arrow value to a database/sql argument that MySQL
// reads back as the same value (the session time zone is UTC).
func valueAt(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Decimal256:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal256Type).Scale)
	case *array.Date32:
		return time.Unix(0, 0).UTC().AddDate(0, 0, int(a.Value(i))).Format("2006-01-02")
	case *array.Duration:
		return formatTime(int64(a.Value(i)))
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC().Format("2006-01-02 15:04:05.999999")
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return append([]byte{}, a.Value(i)...) // never nil: nil is NULL to the driver
	case *array.Boolean:
		return a.Value(i)
	}
	return a.ValueStr(i)
}

// formatTime renders microseconds as MySQL TIME text.
func formatTime(us int64) string {
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	s := us / 1_000_000
	return fmt.Sprintf("%s%02d:%02d:%02d.%06d", sign, s/3600, s/60%60, s%60, us%1_000_000)
}

// zeroValue is what a NULL means in a NOT NULL DATE, DATETIME or
// TIMESTAMP column: the source's zero date, which Arrow cannot hold and
// sources deliver as NULL. nil for every other column.
func zeroValue(f arrow.Field) any {
	if f.Nullable {
		return nil
	}
	switch f.Type.(type) {
	case *arrow.Date32Type:
		return "0000-00-00"
	case *arrow.TimestampType:
		return "0000-00-00 00:00:00"
	}
	return nil
}
