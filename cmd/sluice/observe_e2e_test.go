package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
)

// tableRow is one sluice.job_tables row as the CLI prints it.
type tableRow struct {
	phase               string
	done, total, chunks int64
	exact               string
	lastEvent           string
	lag                 int64
}

func (n *node) jobTable(job, table string) (tableRow, bool) {
	n.t.Helper()
	out := n.sql(fmt.Sprintf(`SELECT phase, IFNULL(snapshot_rows_done, -1), IFNULL(snapshot_rows_total, -1), IFNULL(snapshot_chunks_total, -1),
		IFNULL(CAST(snapshot_exact AS CHAR), 'NULL'), IFNULL(CAST(last_event_at AS CHAR), 'NULL'), lag_ms FROM sluice.job_tables WHERE job = '%s' AND table_name = '%s'`, job, table))
	if out == "" {
		return tableRow{}, false
	}
	f := strings.Split(out, "\t")
	if len(f) != 7 {
		n.t.Fatalf("job_tables row %q", out)
	}
	return tableRow{phase: f[0], done: int64(atoi(f[1])), total: int64(atoi(f[2])), chunks: int64(atoi(f[3])), exact: f[4],
		lastEvent: f[5], lag: int64(atoi(f[6]))}, true
}

// TestJobTablesProgressAndLag: during a snapshot sluice.job_tables shows
// each table's progress growing against an estimate, exact once done; a
// restart mid-snapshot resumes the count instead of starting at zero; an
// idle streaming table has a small lag, a paused job's lag grows, and
// sluice.jobs says where the source's head and the applied position are.
func TestJobTablesProgressAndLag(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop",
		`CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40))`,
		`CREATE TABLE shop.small (id INT PRIMARY KEY, v INT)`,
		`INSERT INTO shop.big SELECT seq, CONCAT('row ', seq) FROM shop.seq_1_to_30000`,
		`INSERT INTO shop.small SELECT seq, seq FROM shop.seq_1_to_10`,
		`ANALYZE TABLE shop.big, shop.small`)
	admin := db.Open(t, "")
	n := newNode(t)
	n.start()
	// 1000-row chunks at 6000 rows/s: the snapshot of big takes about 5 s.
	n.sql(cdcJob("obs", db, `shop\\..*`, "replica", "'checkpoint.interval'='500ms', 'read.limit.rows_per_second'='6000'"))

	var seen []int64
	n.waitFor("big's snapshot under way", func() bool {
		r, ok := n.jobTable("obs", "shop.big")
		if ok && r.phase == "SNAPSHOT" && r.done > 0 {
			seen = append(seen, r.done)
			if r.total < 15000 || r.total > 60000 || r.chunks < 15 {
				t.Fatalf("estimate %d rows in %d chunks for a table of 30000 in chunks of 1000", r.total, r.chunks)
			}
			if r.exact != "0" {
				t.Fatalf("exact = %s during the snapshot", r.exact)
			}
		}
		return len(seen) >= 2 && seen[len(seen)-1] > seen[0]
	})
	// Killed mid-snapshot, the count resumes from the last checkpoint.
	n.waitFor("a checkpoint in the snapshot", func() bool {
		return n.int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'obs' AND state = 'COMPLETED' AND position LIKE '%\"rows\":%'") > 0
	})
	n.kill9()
	n.start()
	var afterRestart int64 = -1
	n.waitFor("big's snapshot reported again", func() bool {
		r, ok := n.jobTable("obs", "shop.big")
		if ok && (r.phase == "SNAPSHOT" || r.phase == "STREAMING") {
			afterRestart = r.done
		}
		return afterRestart >= 0
	})
	if afterRestart == 0 {
		t.Errorf("after a restart mid-snapshot job_tables counts big's rows from 0 again")
	}
	deadline := time.Now().Add(30 * time.Second)
	var r tableRow
	for time.Now().Before(deadline) {
		if r, _ = n.jobTable("obs", "shop.big"); r.phase == "STREAMING" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.phase != "STREAMING" || r.done != 30000 || r.total != 30000 || r.exact != "1" || (r.chunks != 30 && r.chunks != 31) {
		t.Fatalf("after the snapshot big is %+v, want STREAMING with exactly 30000 rows in 30 chunks (31: an empty last one)", r)
	}
	if s, _ := n.jobTable("obs", "shop.small"); s.phase != "STREAMING" || s.done != 10 || s.total != 10 {
		t.Fatalf("small is %+v", s)
	}

	// A change shows in last_event_at; idle tables stay current.
	if _, err := admin.Exec("UPDATE shop.small SET v = v + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	n.waitFor("small's change read", func() bool { s, _ := n.jobTable("obs", "shop.small"); return s.lastEvent != "NULL" })
	time.Sleep(2 * time.Second)
	for _, tb := range []string{"shop.small", "shop.big"} {
		if s, _ := n.jobTable("obs", tb); s.lag > 3000 {
			t.Errorf("%s: lag_ms %d while idle and caught up, want small", tb, s.lag)
		}
	}
	head := n.sql("SELECT IFNULL(source_head, 'NULL'), IFNULL(applied_position, 'NULL') FROM sluice.jobs WHERE name = 'obs'")
	if !strings.Contains(head, `"file":"`) || strings.Contains(head, "NULL") {
		t.Errorf("sluice.jobs source_head, applied_position = %q", head)
	}

	// Paused, the lag grows and the tables say PAUSED.
	n.sql("PAUSE SYNC JOB obs")
	n.waitFor("the job paused", func() bool { return n.state("obs") == "PAUSED" })
	a, _ := n.jobTable("obs", "shop.big")
	time.Sleep(1500 * time.Millisecond)
	b, _ := n.jobTable("obs", "shop.big")
	if a.phase != "PAUSED" || b.lag < a.lag+1000 {
		t.Errorf("paused: %+v then %+v, want PAUSED with lag_ms growing by the time waited", a, b)
	}
	if jl := n.int("SELECT lag_ms FROM sluice.jobs WHERE name = 'obs'"); jl < b.lag {
		t.Errorf("sluice.jobs lag_ms %d below its table's %d", jl, b.lag)
	}
	// A restart of the node keeps a paused job's tables listed.
	n.kill9()
	n.start()
	if r, ok := n.jobTable("obs", "shop.big"); !ok || r.phase != "PAUSED" || r.lag < b.lag {
		t.Errorf("after a restart the paused job's table is %+v (listed: %v), want PAUSED with lag at least %d", r, ok, b.lag)
	}
	n.sql("RESUME SYNC JOB obs")
	n.waitFor("lag small again after RESUME", func() bool {
		s, _ := n.jobTable("obs", "shop.big")
		return s.phase == "STREAMING" && s.lag < 3000
	})
}
