package planner

import "testing"

func TestChecksumParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ChecksumJob
		bad  bool
	}{
		{in: "CHECKSUM SYNC JOB orders", want: ChecksumJob{Name: "orders"}},
		{in: "checksum sync job orders TABLE shop.t1;", want: ChecksumJob{Name: "orders", Database: "shop", Table: "t1"}},
		{in: "CHECKSUM SYNC JOB `o` TABLE `shop`.`t` WHERE id > 10 AND note = 'a;b' ;", want: ChecksumJob{Name: "o", Database: "shop", Table: "t", Where: "id > 10 AND note = 'a;b'"}},
		{in: "CHECKSUM SYNC JOB o WHERE", bad: true},
		{in: "CHECKSUM SYNC JOB o TABLE t", bad: true},
		{in: "CHECKSUM SYNC JOB o extra", bad: true},
	} {
		st, err := Parse(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%s: parsed as %+v", c.in, st)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := *st.(*ChecksumJob); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.in, got, c.want)
		}
		if !IsDialect(c.in) {
			t.Errorf("%s: not taken as dialect", c.in)
		}
	}
}
