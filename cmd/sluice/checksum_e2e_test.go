package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
)

// checksumRows runs CHECKSUM and returns "table:chunks:different:src:dst:result" per table.
func (n *node) checksumRows(q string) []string {
	n.t.Helper()
	out := n.sql(q)
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		rows = append(rows, strings.ReplaceAll(line, "\t", ":"))
	}
	return rows
}

const checksumTable = `CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, price DECIMAL(10,2),
	at DATETIME(6), ratio DOUBLE, qty SMALLINT UNSIGNED, born DATE)`

const checksumRowsSQL = `INSERT INTO shop.items SELECT seq, CONCAT('item ', seq, IF(seq % 7 = 0, ' ✓', '')), seq / 3, '2024-01-01' + INTERVAL seq SECOND + INTERVAL seq MICROSECOND,
	seq / 7, seq % 1000, IF(seq % 5 = 0, NULL, '2020-01-01' + INTERVAL seq DAY) FROM shop.seq_1_to_5000`

// TestChecksumFindsChangesBehindTheJob: CHECKSUM SYNC JOB finds every
// chunk equal while the job runs under writes (no false alarm), then the
// chunk of a row changed at the target behind the job's back, a row
// deleted there and one added; TABLE and WHERE narrow it; every chunk is
// in sluice.verifications.
func TestChecksumFindsChangesBehindTheJob(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop", checksumTable, checksumRowsSQL, "CREATE TABLE shop.other (id INT PRIMARY KEY, v INT)", "INSERT INTO shop.other VALUES (1, 1)")
	admin := db.Open(t, "")
	n := newNode(t)
	n.start()
	n.sql(cdcJob("ck", db, `shop\\..*`, "replica", "'checkpoint.interval'='300ms'"))
	sameTables(t, admin, "shop", "replica", []string{"items", "other"}, 30*time.Second)

	// Writes keep coming while the comparison runs: no chunk may differ.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewSource(1))
		for ctx.Err() == nil {
			id := 1 + rng.Intn(5000)
			_, _ = admin.Exec("UPDATE shop.items SET price = price + 1, at = NOW(6) WHERE id = ?", id)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	got := n.checksumRows("CHECKSUM SYNC JOB ck")
	stop()
	wg.Wait()
	want := []string{"shop.items:5:0:5000:5000:EQUAL", "shop.other:1:0:1:1:EQUAL"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("CHECKSUM under writes: %v, want %v", got, want)
	}
	sameTables(t, admin, "shop", "replica", []string{"items"}, 30*time.Second)

	// Behind the job's back: one value changed, one row deleted, one added.
	db.Exec(t, "UPDATE replica.items SET name = 'tampered' WHERE id = 4321", "DELETE FROM replica.items WHERE id = 1500",
		"INSERT INTO replica.items (id, name) VALUES (90000, 'stray')")
	got = n.checksumRows("CHECKSUM SYNC JOB ck TABLE shop.items")
	if want := "shop.items:5:3:5000:5000:DIFFERENT"; len(got) != 1 || got[0] != want {
		t.Fatalf("after tampering: %v, want %s", got, want)
	}
	chunks := n.sql("SELECT GROUP_CONCAT(CONCAT(chunk, '=', `equal`, ':', source_rows, '/', target_rows) ORDER BY chunk) FROM sluice.verifications WHERE job = 'ck' AND table_name = 'shop.items'")
	if want := "-1=0:0/1,0=1:1000/1000,1=0:1000/999,2=1:1000/1000,3=1:1000/1000,4=0:1000/1000"; chunks != want {
		t.Fatalf("sluice.verifications: %s, want %s", chunks, want)
	}
	if other := n.int("SELECT COUNT(*) FROM sluice.verifications WHERE job = 'ck' AND table_name = 'shop.other'"); other != 1 {
		t.Fatalf("a TABLE run replaced the other table's chunks: %d left", other)
	}
	if got := n.checksumRows("CHECKSUM SYNC JOB ck TABLE shop.items WHERE id <= 1000"); len(got) != 1 || got[0] != "shop.items:1:0:1000:1000:EQUAL" {
		t.Fatalf("WHERE id <= 1000: %v", got)
	}
	for q, code := range map[string]string{
		"CHECKSUM SYNC JOB nosuch":                   "ERROR 1146",
		"CHECKSUM SYNC JOB ck TABLE shop.missing":    "ERROR 1235",
		"CHECKSUM SYNC JOB ck WHERE no_such_col > 1": "ERROR 1105",
	} {
		if out, err := n.run(q); err == nil || !strings.Contains(out, code) {
			t.Errorf("%s: %q, want %s", q, out, code)
		}
	}
}

// TestChecksumStarRocks: the same comparison against the StarRocks
// emulator's query port, after a load behind the job's back. With a 3 s
// checkpoint interval the rechecks' waits for the target to catch up take
// longer than a dialect statement's 10 s catalog bound, which CHECKSUM
// must not be held to.
func TestChecksumStarRocks(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop", checksumTable, checksumRowsSQL)
	e, qport := startEmulator(t)
	n := newNode(t)
	n.start()
	n.sql(fmt.Sprintf(`CREATE SYNC JOB sr FROM mysql_cdc ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'tables'='shop\\.items', 'snapshot.chunk.size'='2000')
  TO starrocks ('fe'='%s', 'query_port'='%s', 'user'='loader', 'password'='pw', 'database'='ods', 'batch.interval'='200ms')
  WITH ('checkpoint.interval'='3s')`, db.Port, mariadbtest.ReplUser, mariadbtest.ReplPass, e.FE, qport))
	n.waitFor("the snapshot at the emulator", func() bool { return len(e.Rows("ods", "items")) == 5000 })
	time.Sleep(time.Second)
	if got := n.checksumRows("CHECKSUM SYNC JOB sr"); len(got) != 1 || got[0] != "shop.items:3:0:5000:5000:EQUAL" {
		t.Fatalf("CHECKSUM of the StarRocks target: %v", got)
	}
	// A manual Stream Load overwrites a row.
	req, _ := http.NewRequest(http.MethodPut, "http://"+e.BE+"/api/ods/items/_stream_load",
		bytes.NewReader([]byte(`[{"id": 2500, "name": "loaded by hand", "price": "1.00", "at": null, "ratio": 0, "qty": 0, "born": null}]`)))
	req.SetBasicAuth("loader", "pw")
	req.Header.Set("format", "json")
	req.Header.Set("strip_outer_array", "true")
	req.Header.Set("label", "by-hand-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := n.checksumRows("CHECKSUM SYNC JOB sr"); len(got) != 1 || got[0] != "shop.items:3:1:5000:5000:DIFFERENT" {
		t.Fatalf("after a load behind the job: %v", got)
	}
	if bad := n.sql("SELECT chunk FROM sluice.verifications WHERE job = 'sr' AND `equal` = 0"); bad != "1" {
		t.Fatalf("the different chunk is %q, want 1 (keys 2001-4000)", bad)
	}
}
