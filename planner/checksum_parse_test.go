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

func TestNotificationParse(t *testing.T) {
	st, err := Parse("CREATE NOTIFICATION ops URL 'http://127.0.0.1:9000/hook' FOR JOB orders EVENTS ('failed', BINLOG_RISK)")
	if err != nil {
		t.Fatal(err)
	}
	c := st.(*CreateNotification)
	if c.Name != "ops" || c.URL != "http://127.0.0.1:9000/hook" || c.Job != "orders" || len(c.Events) != 2 || c.Events[0] != "FAILED" || c.Events[1] != "BINLOG_RISK" {
		t.Fatalf("%+v", c)
	}
	if st, err := Parse("drop notification if exists ops"); err != nil || !st.(*DropNotification).IfExists {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := Parse("SHOW NOTIFICATIONS"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"CREATE NOTIFICATION x URL 'ftp://h/x'", "CREATE NOTIFICATION x URL 'http://'", "CREATE NOTIFICATION x URL 'http://h' EVENTS ()", "CREATE NOTIFICATION x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	for _, q := range []string{"CREATE NOTIFICATION x URL 'http://h'", "DROP NOTIFICATION x", "SHOW NOTIFICATIONS"} {
		if !IsDialect(q) {
			t.Errorf("%s: not taken as dialect", q)
		}
	}
	if IsDialect("SHOW TABLES") || IsDialect("CREATE TABLE t (a int)") {
		t.Error("ordinary SQL taken as dialect")
	}
}
