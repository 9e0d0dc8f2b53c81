package main

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
	"sluice/internal/sremu"
)

// srJob is a mysql_cdc → starrocks job into the emulator, exactly-once.
// batch.carry_bytes 0 loads at every checkpoint, so each crash point finds
// prepared transactions (carrying rows across checkpoints is covered in
// connectors/starrocks and exec).
func srJob(db *mariadbtest.Server, e *sremu.Emulator, queryPort string) string {
	return fmt.Sprintf(`CREATE SYNC JOB sr
  FROM mysql_cdc ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'tables'='shop\\.orders', 'snapshot.chunk.size'='500', 'heartbeat.interval'='1s')
  TO starrocks ('fe'='%s', 'query_port'='%s', 'user'='loader', 'password'='pw', 'database'='ods', 'table'='ods_${table}',
                'semantic'='exactly-once', 'retry.backoff'='10ms', 'max_retries'='10', 'batch.carry_bytes'='0')
  WITH ('checkpoint.interval'='500ms')`, db.Port, mariadbtest.ReplUser, mariadbtest.ReplPass, e.FE, queryPort)
}

// emuMatches waits until the emulator's table equals the source (I1, I2)
// and no transaction of ours is left prepared (I7), and checks no label
// was committed twice.
func emuMatches(t *testing.T, db *mariadbtest.Server, e *sremu.Emulator, within time.Duration) {
	t.Helper()
	admin := db.Open(t, "")
	deadline := time.Now().Add(within)
	var diff string
	for {
		rows, err := admin.Query("SELECT id, amount, IFNULL(note, 'NULL') FROM shop.orders")
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for rows.Next() {
			var id, amount, note string
			_ = rows.Scan(&id, &amount, &note)
			want = append(want, id+"|"+amount+"|"+note)
		}
		rows.Close()
		var got []string
		for _, r := range e.Rows("ods", "ods_orders") {
			note := "NULL"
			if r["note"] != nil {
				note = fmt.Sprint(r["note"])
			}
			got = append(got, fmt.Sprintf("%v|%v|%s", r["id"], r["amount"], note))
		}
		sort.Strings(want)
		sort.Strings(got)
		diff = ""
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			diff = fmt.Sprintf("source %d rows, emulator %d rows", len(want), len(got))
			for i := 0; i < len(want) && i < len(got); i++ {
				if want[i] != got[i] {
					diff += fmt.Sprintf("; first difference: source %s, emulator %s", want[i], got[i])
					break
				}
			}
		}
		if diff == "" && len(e.Dangling()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s; dangling %v", within, diff, e.Dangling())
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, l := range e.Loads() {
		if seen[l.Label] {
			t.Fatalf("I7: label %s committed twice", l.Label)
		}
		seen[l.Label] = true
	}
}

// TestCDCToStarRocksExactlyOnceSurvivesCrashes: MariaDB → sluice →
// StarRocks emulator in exactly-once mode, with live writes, the process
// killed between prepare and the catalog commit, between the catalog
// commit and the sink commit, and with kill -9; 1 in 50 load requests
// answered 500. The emulator ends with exactly the source's rows and no
// prepared transaction left.
func TestCDCToStarRocksExactlyOnceSurvivesCrashes(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, amount DECIMAL(12,2), note VARCHAR(40))",
		"INSERT INTO shop.orders SELECT seq, seq / 4, IF(seq % 5 = 0, NULL, CONCAT('n', seq)) FROM shop.seq_1_to_5000")
	e, qport := startEmulator(t)
	e.SetFaults(sremu.Faults{FailEvery: 50, CommitLatency: 5 * time.Millisecond})
	admin := db.Open(t, "")

	stop := liveWrites(t, admin, 6000, 2*time.Millisecond)
	defer stop()

	n := newNode(t)
	for _, fp := range []string{"after-sink-precommit", "before-sink-commit"} {
		n.bin, n.env = fpBinary, []string{"SLUICE_FAILPOINTS=" + fp + "=exit@4"}
		n.start()
		if fp == "after-sink-precommit" {
			n.sql(srJob(db, e, qport))
		}
		done := make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("failpoint %s never fired", fp)
		}
		if code := n.cmd.ProcessState.ExitCode(); code != 86 {
			t.Fatalf("exit code %d, want the failpoint's 86", code)
		}
	}
	n.bin, n.env = binary, nil
	n.start()
	n.waitFor("job running", func() bool { return n.state("sr") == "RUNNING" })
	time.Sleep(2 * time.Second)
	n.kill9()
	n.start()
	time.Sleep(time.Second)
	stop()
	emuMatches(t, db, e, 60*time.Second)
	if st := n.state("sr"); st != "RUNNING" {
		t.Fatalf("job is %s: %s", st, n.sql("SELECT error FROM sluice.jobs WHERE name = 'sr'"))
	}
}

// startEmulator starts a StarRocks emulator with its query port, closed
// when the test ends; it returns the query port's number.
func startEmulator(t *testing.T) (*sremu.Emulator, string) {
	t.Helper()
	return startEmulatorAs(t, "loader", "pw")
}

func startEmulatorAs(t *testing.T, user, password string) (*sremu.Emulator, string) {
	t.Helper()
	e, err := sremu.Start(user, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	q, err := e.ServeQueries()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(q, ":")
	return e, port
}

// liveWrites changes shop.orders (ids 1..span: deletes, upserts, range
// updates) every pause until the returned stop is called (it waits for the
// writer to end); a failed write fails the test.
func liveWrites(t *testing.T, admin *sql.DB, span int, pause time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			id := 1 + (i*7919)%span
			var err error
			switch i % 4 {
			case 0:
				_, err = admin.Exec("DELETE FROM shop.orders WHERE id = ?", id)
			case 1:
				_, err = admin.Exec("INSERT INTO shop.orders VALUES (?, 1, 'ins') ON DUPLICATE KEY UPDATE amount = amount + 1", id)
			default:
				_, err = admin.Exec("UPDATE shop.orders SET amount = amount + 0.5, note = 'upd' WHERE id BETWEEN ? AND ?", id, id+3)
			}
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(pause)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}
