package verify

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// kind is how a column's text is put in canonical form, so two servers
// that print one value differently (StarRocks and MariaDB: decimals'
// trailing zeros, floats' digits, datetimes' fractions, booleans, JSON
// spacing) hash alike.
type kind int

const (
	kText kind = iota // compared as bytes
	kInt
	kDecimal
	kFloat
	kDouble
	kDate
	kDatetime
	kJSON
)

// kindOf maps information_schema.COLUMNS.DATA_TYPE.
func kindOf(dataType string) kind {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		return kInt
	case "decimal", "numeric":
		return kDecimal
	case "float":
		return kFloat
	case "double", "real":
		return kDouble
	case "date":
		return kDate
	case "datetime", "timestamp":
		return kDatetime
	case "json":
		return kJSON
	}
	return kText
}

// canon is v's canonical text (nil stays nil: NULL).
func canon(k kind, v []byte) []byte {
	if v == nil {
		return nil
	}
	s := strings.TrimSpace(string(v))
	switch k {
	case kInt:
		switch strings.ToLower(s) {
		case "true":
			return []byte("1")
		case "false":
			return []byte("0")
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.AppendInt(nil, n, 10)
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return strconv.AppendUint(nil, n, 10)
		}
	case kDecimal:
		return []byte(canonDecimal(s))
	case kFloat:
		if f, err := strconv.ParseFloat(s, 32); err == nil {
			return strconv.AppendFloat(nil, f, 'g', -1, 32)
		}
	case kDouble:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return strconv.AppendFloat(nil, f, 'g', -1, 64)
		}
	case kDate:
		if len(s) >= 10 {
			return []byte(s[:10])
		}
	case kDatetime:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z07:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return []byte(t.UTC().Format("2006-01-02 15:04:05.999999"))
			}
		}
	case kJSON:
		var x any
		if json.Unmarshal(v, &x) == nil {
			if b, err := json.Marshal(x); err == nil { // maps sort their keys
				return b
			}
		}
	}
	return v
}

// canonDecimal drops a sign on zero, a leading +, leading zeros and the
// fraction's trailing zeros.
func canonDecimal(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	whole, frac, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	if whole == "" {
		whole = "0"
	}
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out
}

// rowHash hashes a row's canonical values (a NULL differs from every
// value, and lengths keep column boundaries apart).
func rowHash(vals [][]byte) uint64 {
	h := fnv.New64a()
	var n [5]byte
	for _, v := range vals {
		if v == nil {
			_, _ = h.Write([]byte{0xff})
			continue
		}
		n[0] = 0
		binary.BigEndian.PutUint32(n[1:], uint32(len(v)))
		_, _ = h.Write(n[:])
		_, _ = h.Write(v)
	}
	return h.Sum64()
}

// splitKey undoes keyString.
func splitKey(k string) []any {
	var out []any
	for len(k) > 0 {
		if k[0] == 0xff {
			out, k = append(out, nil), k[1:]
			continue
		}
		i := strings.IndexByte(k, ':')
		if i < 0 {
			return out
		}
		n, err := strconv.Atoi(k[:i])
		if err != nil || i+1+n > len(k) {
			return out
		}
		out, k = append(out, k[i+1:i+1+n]), k[i+1+n:]
	}
	return out
}

// keyString joins a row's canonical key values.
func keyString(vals [][]byte) string {
	var b strings.Builder
	for _, v := range vals {
		if v == nil {
			b.WriteString("\xff")
			continue
		}
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.Write(v)
	}
	return b.String()
}
