package sqlfront

import (
	"testing"

	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
)

// The inputs are what the wire library renders for each binary form
// (vitess go/mysql/query.go parseStmtArgs): lengths 0, 4, 7 and 11 for
// dates, 0, 8 and 12 for times.
func TestTemporalParamsAreCanonical(t *testing.T) {
	cases := []struct {
		typ      querypb.Type
		in, want string
	}{
		{sqltypes.Datetime, "2024-1-2 3:4:5.0", "2024-01-02 03:04:05"},
		{sqltypes.Datetime, "2024-1-2 3:4:5.1500", "2024-01-02 03:04:05.001500"},
		{sqltypes.Datetime, "2024-12-31 23:59:59.999999", "2024-12-31 23:59:59.999999"},
		{sqltypes.Timestamp, "2024-1-2 3:4:5", "2024-01-02 03:04:05"},
		{sqltypes.Timestamp, "2024-1-2", "2024-01-02 00:00:00"},
		{sqltypes.Datetime, " ", "0000-00-00 00:00:00"},
		{sqltypes.Date, "2024-1-2", "2024-01-02"},
		{sqltypes.Date, " ", "0000-00-00"},
		{sqltypes.Date, "99-1-2", "0099-01-02"},
		{sqltypes.Time, "3:4:5.0", "03:04:05"},
		{sqltypes.Time, "-27:4:5.120000", "-27:04:05.120000"},
		{sqltypes.Time, "838:59:59", "838:59:59"},
		{sqltypes.Time, "00:00:00", "00:00:00"},
	}
	for _, c := range cases {
		p := &mysql.PrepareData{ParamsType: []int32{int32(sqltypes.Int64), int32(c.typ)},
			BindVars: map[string]*querypb.BindVariable{"v1": sqltypes.Int64BindVariable(7), "v2": sqltypes.StringBindVariable(c.in)}}
		fixTemporalParams(p)
		if got := string(p.BindVars["v2"].Value); got != c.want {
			t.Errorf("%v %q: got %q, want %q", c.typ, c.in, got, c.want)
		}
		if string(p.BindVars["v1"].Value) != "7" {
			t.Errorf("a non-temporal parameter changed: %v", p.BindVars["v1"])
		}
	}
}
