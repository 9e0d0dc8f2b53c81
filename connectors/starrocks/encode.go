package starrocks

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
)

// appendJSON appends one Arrow value as JSON.
func appendJSON(dst []byte, a arrow.Array, i int) []byte {
	if a.IsNull(i) {
		return append(dst, "null"...)
	}
	if s, ok := a.(*array.String); ok {
		return appendJSONString(dst, s.Value(i))
	}
	start := len(dst)
	dst, quote := appendText(dst, a, i)
	if !quote {
		return dst
	}
	// Text values (no quote, backslash or control characters in them
	// except from strings, handled above) just need quotes.
	dst = append(dst, 0)
	copy(dst[start+1:], dst[start:len(dst)-1])
	dst[start] = '"'
	return append(dst, '"')
}

// appendText appends a non-null value as the text StarRocks parses for
// its column type, and whether JSON needs it quoted.
func appendText(dst []byte, a arrow.Array, i int) ([]byte, bool) {
	switch a := a.(type) {
	case *array.Int8:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), false
	case *array.Int16:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), false
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), false
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10), false
	case *array.Uint8:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), false
	case *array.Uint16:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), false
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), false
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10), true // LARGEINT: beyond JSON's safe integers
	case *array.Float32:
		return strconv.AppendFloat(dst, float64(a.Value(i)), 'g', -1, 32), false
	case *array.Float64:
		return strconv.AppendFloat(dst, a.Value(i), 'g', -1, 64), false
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i)), false
	case *array.Decimal128:
		return appendDecimal128(dst, a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale), true
	case *array.Decimal256:
		return append(dst, a.Value(i).ToString(a.DataType().(*arrow.Decimal256Type).Scale)...), true
	case *array.Date32:
		return time.Unix(0, 0).UTC().AddDate(0, 0, int(a.Value(i))).AppendFormat(dst, "2006-01-02"), true
	case *array.Timestamp:
		return appendDateTime(dst, int64(a.Value(i))), true
	case *array.Duration:
		return append(dst, time.Duration(a.Value(i)*1000).String()...), true
	case *array.String:
		return append(dst, a.Value(i)...), true
	case *array.Binary:
		return base64.StdEncoding.AppendEncode(dst, a.Value(i)), true
	}
	return append(dst, a.ValueStr(i)...), true
}

// appendDecimal128 appends v scaled by 10^-scale as plain decimal text
// (what DECIMAL(p,s) loads from): exact, without big.Float.
func appendDecimal128(dst []byte, v decimal128.Num, scale int32) []byte {
	var digits []byte
	neg := v.Sign() < 0
	if neg {
		v = v.Negate()
	}
	if v.HighBits() == 0 && v.LowBits() < 1<<63 {
		var buf [20]byte
		digits = strconv.AppendUint(buf[:0], v.LowBits(), 10)
	} else {
		digits = []byte(v.BigInt().String())
	}
	if neg {
		dst = append(dst, '-')
	}
	if scale <= 0 {
		dst = append(dst, digits...)
		for k := int32(0); k < -scale; k++ {
			dst = append(dst, '0')
		}
		return dst
	}
	if int32(len(digits)) <= scale { // 0.00ddd
		dst = append(dst, '0', '.')
		for k := int32(len(digits)); k < scale; k++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	cut := len(digits) - int(scale)
	dst = append(dst, digits[:cut]...)
	dst = append(dst, '.')
	return append(dst, digits[cut:]...)
}

// appendDateTime appends microseconds since the epoch (UTC) as
// "2006-01-02 15:04:05.999999" (fraction without trailing zeros).
func appendDateTime(dst []byte, us int64) []byte {
	t := time.UnixMicro(us).UTC()
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	pad := func(dst []byte, v, w int) []byte {
		var buf [8]byte
		b := strconv.AppendInt(buf[:0], int64(v), 10)
		for k := len(b); k < w; k++ {
			dst = append(dst, '0')
		}
		return append(dst, b...)
	}
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, "2006-01-02 15:04:05.999999")
	}
	dst = pad(dst, y, 4)
	dst = append(dst, '-')
	dst = pad(dst, int(mo), 2)
	dst = append(dst, '-')
	dst = pad(dst, d, 2)
	dst = append(dst, ' ')
	dst = pad(dst, h, 2)
	dst = append(dst, ':')
	dst = pad(dst, mi, 2)
	dst = append(dst, ':')
	dst = pad(dst, sec, 2)
	if frac := t.Nanosecond() / 1000; frac > 0 {
		dst = append(dst, '.')
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		dst = pad(dst, frac, n)
	}
	return dst
}

// appendJSONString appends s as a JSON string (encoding/json's escaping
// of control characters, quotes and backslashes; UTF-8 passes through).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendCSVRow appends one row as CSV: the columns of t.cols (cols gives
// each one's index in rec), then __op. Strings are enclosed in " with
// inner quotes doubled; NULL is \N. A delete carries the whole row: CSV
// is positional.
func appendCSVRow(dst []byte, rec arrow.Record, cols []int, i int, del bool) []byte {
	for _, j := range cols {
		a := rec.Column(j)
		switch {
		case a.IsNull(i):
			dst = append(dst, `\N`...)
		default:
			if str, ok := a.(*array.String); ok {
				dst = appendEnclosed(dst, str.Value(i))
			} else {
				dst, _ = appendText(dst, a, i)
			}
		}
		dst = append(dst, '\t')
	}
	if del {
		return append(dst, '1')
	}
	return append(dst, '0')
}

func appendEnclosed(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for k := 0; k < len(s); k++ {
		if s[k] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[k])
	}
	return append(dst, '"')
}
