package main

import (
	"strings"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
)

// TestBinlogRiskWarnsBeforePurge: a paused job whose binlog file the
// server has closed shows in sluice.binlog_risk how long the server keeps
// it; the risk turns WARN (with an event) while the file is still there,
// and CRITICAL once the server purged it.
func TestBinlogRiskWarnsBeforePurge(t *testing.T) {
	db := mariadbtest.Start(t)
	const retention = 12 // seconds
	db.Exec(t, "SET GLOBAL binlog_expire_logs_seconds = 12",
		"CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)", "INSERT INTO shop.t VALUES (1, 1)")
	admin := db.Open(t, "")
	n := newNode(t)
	n.args = []string{"--binlog-risk-interval", "300ms"}
	n.start()
	n.sql(cdcJob("risky", db, `shop\\.t`, "replica", "'checkpoint.interval'='300ms'"))
	risk := func() (level string, left int64, file string) {
		out := n.sql("SELECT risk, IFNULL(seconds_to_purge, -1), IFNULL(checkpoint_position, ''), retention_seconds, IFNULL(error, '-') FROM sluice.binlog_risk WHERE job = 'risky'")
		f := strings.Split(out, "\t")
		if len(f) != 5 {
			return "", 0, ""
		}
		if f[4] != "-" {
			t.Fatalf("binlog_risk error: %s", f[4])
		}
		if atoi(f[3]) != retention {
			t.Fatalf("retention_seconds %s, want %d", f[3], retention)
		}
		file, _, _ = strings.Cut(f[2], ":")
		return f[0], int64(atoi(f[1])), file
	}
	n.waitFor("a forecast of the running job", func() bool { l, _, _ := risk(); return l != "" })
	if l, left, _ := risk(); l != "OK" || left < retention-2 {
		t.Fatalf("running job on the current binlog: %s with %d s left, want OK with about %d", l, left, retention)
	}
	n.sql("PAUSE SYNC JOB risky")
	n.waitFor("risky PAUSED", func() bool { return n.state("risky") == "PAUSED" })
	_, _, file := risk()
	closed := time.Now()
	db.Exec(t, "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (2, 2)")

	var level string
	var left int64
	for time.Since(closed) < retention*time.Second {
		if level, left, _ = risk(); level == "WARN" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if level != "WARN" || left <= 0 || left > retention/2 {
		t.Fatalf("paused job, binlog closed %s ago: %s with %d s left, want WARN within half the retention", time.Since(closed).Round(time.Millisecond), level, left)
	}
	var logs []string
	rows, err := admin.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var size any
		_ = rows.Scan(&name, &size)
		logs = append(logs, name)
	}
	rows.Close()
	if !strings.Contains(strings.Join(logs, " "), file) {
		t.Fatalf("WARN came after the purge: %s is not in %v", file, logs)
	}
	n.waitFor("a BINLOG_RISK event for OK -> WARN", func() bool {
		return n.int("SELECT COUNT(*) FROM sluice.events WHERE job = 'risky' AND kind = 'BINLOG_RISK' AND message LIKE '%OK -> WARN%'") > 0
	})

	// Past the retention the next rotation purges it: CRITICAL.
	time.Sleep(time.Until(closed.Add((retention + 1) * time.Second)))
	db.Exec(t, "FLUSH BINARY LOGS")
	n.waitFor("CRITICAL after the purge", func() bool {
		l, left, _ := risk()
		return l == "CRITICAL" && left == 0
	})
}
