package sqlfront

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
)

// fixTemporalParams rewrites the DATE, DATETIME, TIMESTAMP and TIME
// parameters of a server-side prepared statement into canonical MySQL
// text. The wire library decodes the binary values but renders them
// without padding and with the microseconds as a bare integer
// ("2024-1-2 3:4:5.1500" for 03:04:05.001500; " " for a zero date), which
// then compares as a malformed string: a BI tool's time filter silently
// matched the wrong rows (issue 10, defect 10).
func fixTemporalParams(p *mysql.PrepareData) {
	for i, typ := range p.ParamsType {
		key := fmt.Sprintf("v%d", i+1)
		bv := p.BindVars[key]
		if bv == nil || bv.Type != querypb.Type_VARCHAR {
			continue
		}
		var fixed string
		var ok bool
		switch querypb.Type(typ) {
		case sqltypes.Date, sqltypes.Datetime, sqltypes.Timestamp:
			fixed, ok = canonicalDatetime(string(bv.Value), querypb.Type(typ) == sqltypes.Date)
		case sqltypes.Time:
			fixed, ok = canonicalTime(string(bv.Value))
		}
		if ok {
			p.BindVars[key] = sqltypes.StringBindVariable(fixed)
		}
	}
}

// numbers splits s at every non-digit and parses the parts.
func numbers(s string) ([]int64, bool) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	out := make([]int64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// canonicalDatetime renders the library's "Y-M-D[ h:m:s[.micros]]".
func canonicalDatetime(s string, dateOnly bool) (string, bool) {
	if strings.TrimSpace(s) == "" { // a zero-length value: the zero date
		if dateOnly {
			return "0000-00-00", true
		}
		return "0000-00-00 00:00:00", true
	}
	n, ok := numbers(s)
	if !ok || (len(n) != 3 && len(n) != 6 && len(n) != 7) {
		return "", false
	}
	out := fmt.Sprintf("%04d-%02d-%02d", n[0], n[1], n[2])
	if len(n) == 3 {
		if dateOnly {
			return out, true
		}
		return out + " 00:00:00", true
	}
	out += fmt.Sprintf(" %02d:%02d:%02d", n[3], n[4], n[5])
	if len(n) == 7 && n[6] != 0 {
		out += fmt.Sprintf(".%06d", n[6])
	}
	return out, true
}

// canonicalTime renders the library's "[-]h:m:s[.micros]".
func canonicalTime(s string) (string, bool) {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	n, ok := numbers(s)
	if !ok || (len(n) != 3 && len(n) != 4) {
		return "", false
	}
	out := fmt.Sprintf("%s%02d:%02d:%02d", sign, n[0], n[1], n[2])
	if len(n) == 4 && n[3] != 0 {
		out += fmt.Sprintf(".%06d", n[3])
	}
	return out, true
}
