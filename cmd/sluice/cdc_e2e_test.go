package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
)

// cdcJob is the CREATE statement of a mysql_cdc → mysql job between two
// databases of one MariaDB.
func cdcJob(name string, db *mariadbtest.Server, tables, target string, with string) string {
	return fmt.Sprintf(`CREATE SYNC JOB %s
  FROM mysql_cdc ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'tables'='%s', 'snapshot.chunk.size'='1000', 'heartbeat.interval'='1s')
  TO mysql ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'database'='%s', 'batch.interval'='200ms')
  WITH (%s)`, name, db.Port, mariadbtest.ReplUser, mariadbtest.ReplPass, tables, db.Port, mariadbtest.AdminUser, mariadbtest.AdminPass, target, with)
}

// workload writes a mix of inserts, updates, deletes and multi-table
// transactions until ctx ends.
func workload(ctx context.Context, db *sql.DB, seed int64) error {
	rng := rand.New(rand.NewSource(seed))
	next := 100000 + int(seed)*1000000
	for ctx.Err() == nil {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		for k := 0; k < 1+rng.Intn(5); k++ {
			id := 1 + rng.Intn(20000)
			switch rng.Intn(7) {
			case 0:
				_, err = tx.Exec("DELETE FROM shop.orders WHERE id = ?", id)
			case 1, 2:
				next++
				_, err = tx.Exec("INSERT INTO shop.orders (id, customer, amount, status, created) VALUES (?, ?, ?, 'new', NOW(6))", next, rng.Intn(500), float64(rng.Intn(100000))/100)
			case 3:
				_, err = tx.Exec("INSERT INTO shop.items (order_id, line, sku, qty) VALUES (?, ?, ?, 1) ON DUPLICATE KEY UPDATE qty = qty + 1", id, rng.Intn(4), fmt.Sprintf("sku-%d", rng.Intn(99)))
			case 4:
				_, err = tx.Exec("DELETE FROM shop.items WHERE order_id = ? AND line = ?", id, rng.Intn(4))
			default:
				_, err = tx.Exec("UPDATE shop.orders SET amount = amount + 1, status = ELT(1 + FLOOR(RAND() * 3), 'paid', 'shipped', 'done') WHERE id BETWEEN ? AND ?", id, id+rng.Intn(5))
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			tx.Rollback()
			if strings.Contains(err.Error(), "Deadlock") || strings.Contains(err.Error(), "Lock wait") {
				continue // the two writers collided; the server rolled back
			}
			return err
		}
	}
	return nil
}

// sameTables waits until every table equals its copy: invariant I1
// (counts) and I2 (content checksums per key range).
func sameTables(t *testing.T, db *sql.DB, src, dst string, tables []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		last = ""
		for _, tb := range tables {
			a, err := mariadbtest.Checksum(db, src, tb)
			if err != nil {
				t.Fatal(err)
			}
			b, err := mariadbtest.Checksum(db, dst, tb)
			if err != nil {
				last += fmt.Sprintf("%s: %v; ", tb, err)
				continue
			}
			for k, v := range a {
				if b[k] != v {
					last += fmt.Sprintf("%s key range %s000: source %s, target %s; ", tb, k, v, b[k])
				}
			}
			for k, v := range b {
				if _, ok := a[k]; !ok {
					last += fmt.Sprintf("%s key range %s000: only at the target (%s); ", tb, k, v)
				}
			}
		}
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			for _, tb := range tables {
				diffKeys(t, db, src, dst, tb)
			}
			t.Fatalf("tables differ after %s: %s", within, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// diffKeys logs up to 10 primary keys whose rows differ between two
// copies of a table, to locate a mismatch.
func diffKeys(t *testing.T, db *sql.DB, src, dst, table string) {
	var pk string
	if err := db.QueryRow(`SELECT GROUP_CONCAT(CONCAT('`+"`"+`', COLUMN_NAME, '`+"`"+`') ORDER BY ORDINAL_POSITION) FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'`, src, table).Scan(&pk); err != nil {
		t.Log(err)
		return
	}
	for _, q := range []string{
		fmt.Sprintf("SELECT CONCAT_WS(',', %[1]s) FROM `%[2]s`.`%[4]s` a WHERE (%[1]s) NOT IN (SELECT %[1]s FROM `%[3]s`.`%[4]s`) LIMIT 10", pk, src, dst, table),
		fmt.Sprintf("SELECT CONCAT_WS(',', %[1]s) FROM `%[3]s`.`%[4]s` a WHERE (%[1]s) NOT IN (SELECT %[1]s FROM `%[2]s`.`%[4]s`) LIMIT 10", pk, src, dst, table),
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Log(err)
			continue
		}
		for rows.Next() {
			var k string
			_ = rows.Scan(&k)
			t.Logf("%s: key (%s) in only one of %s, %s (%s)", table, k, src, dst, q[:60])
		}
		rows.Close()
	}
}

// TestCDCToMySQLSurvivesKill9 is issue 4's "done when": existing tables
// and live writes, kill -9 of sluice mid-stream, restart, an ADD COLUMN,
// and at the end every table equal row for row and column for column.
func TestCDCToMySQLSurvivesKill9(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop",
		`CREATE TABLE shop.orders (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(12,2), status ENUM('new','paid','shipped','done'),
		  created DATETIME(6), note VARCHAR(200) CHARACTER SET utf8mb4)`,
		`CREATE TABLE shop.items (order_id INT, line TINYINT UNSIGNED, sku VARCHAR(20), qty INT, PRIMARY KEY (order_id, line))`,
		`CREATE TABLE shop.customers (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(50), since DATE, balance DOUBLE)`,
		`INSERT INTO shop.orders SELECT seq, seq % 500, seq / 7, ELT(1 + seq % 4, 'new','paid','shipped','done'), '2024-01-01' + INTERVAL seq SECOND, IF(seq % 3 = 0, NULL, CONCAT('n', seq, ' ✓')) FROM shop.seq_1_to_20000`,
		`INSERT INTO shop.items SELECT seq DIV 4 + 1, seq % 4, CONCAT('sku-', seq % 97), seq % 5 FROM shop.seq_0_to_7999`,
		`INSERT INTO shop.customers SELECT seq, CONCAT('c', seq), '2020-01-01' + INTERVAL seq DAY, seq * 1.25 FROM shop.seq_1_to_500`)
	admin := db.Open(t, "")

	n := newNode(t)
	n.start()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := n.run("SELECT checkpoint_id, attempt, state, position FROM sluice.checkpoints WHERE job = 'shop'")
			t.Logf("checkpoints:\n%s", out)
		}
	})
	n.sql(cdcJob("shop", db, `shop\\..*`, "replica", "'checkpoint.interval'='1s'"))

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := int64(1); w <= 2; w++ {
		wg.Add(1)
		go func(seed int64) { defer wg.Done(); errs <- workload(ctx, admin, seed) }(w)
	}
	n.waitFor("the first checkpoint", func() bool {
		return n.int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'shop' AND state = 'COMPLETED'") > 0
	})
	time.Sleep(time.Second)
	n.kill9() // mid-stream, maybe mid-snapshot
	n.start()
	n.waitFor("the job running again", func() bool { return n.state("shop") == "RUNNING" })
	time.Sleep(2 * time.Second)
	db.Exec(t, "ALTER TABLE shop.orders ADD COLUMN priority SMALLINT NULL AFTER status",
		"UPDATE shop.orders SET priority = id % 3 WHERE id % 10 = 0")
	time.Sleep(2 * time.Second)
	n.kill9() // again, after the schema change
	n.start()
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sameTables(t, admin, "shop", "replica", []string{"orders", "items", "customers"}, 60*time.Second)
	if st := n.state("shop"); st != "RUNNING" {
		t.Fatalf("job is %s: %s", st, n.sql("SELECT error FROM sluice.jobs WHERE name = 'shop'"))
	}
	var cols string
	if err := admin.QueryRow("SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='replica' AND TABLE_NAME='orders'").Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cols, "priority") {
		t.Fatalf("target columns %s lack the added column", cols)
	}
	n.waitFor("the schema change in sluice.events", func() bool {
		return n.int("SELECT COUNT(*) FROM sluice.events WHERE job = 'shop' AND kind = 'SCHEMA_CHANGE' AND message LIKE '%shop.orders%priority%'") > 0
	})
	// Metrics live in memory: after the restart only tables with new
	// changes (the workload writes orders and items) have counts.
	if got := n.int("SELECT COUNT(*) FROM sluice.metrics WHERE job = 'shop' AND table_name IN ('shop.orders', 'shop.items') AND sink_write_count > 0"); got != 2 {
		t.Errorf("sluice.metrics has %d of shop.orders, shop.items with writes, want 2", got)
	}
}

// TestCDCMisconfigurationsAnswered: every misconfiguration issue 4 lists
// is refused at CREATE with error 1429 and what to fix, the catalog stays
// as it was; a binlog purged past a paused job fails it loudly on RESUME.
func TestCDCMisconfigurationsAnswered(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)", "CREATE TABLE app.nopk (v INT)",
		"CREATE USER weak@'%' IDENTIFIED BY 'weakpw'", "GRANT SELECT ON *.* TO weak@'%'",
		"CREATE USER halfrepl@'%' IDENTIFIED BY 'halfpw'", "GRANT SELECT, REPLICATION SLAVE ON *.* TO halfrepl@'%'")
	nobinlog := mariadbtest.Start(t, "--skip-log-bin")
	n := newNode(t)
	n.start()
	_, sluicePort, _ := net.SplitHostPort(n.mysqlAddr)
	src := func(port int, user, pass, tables string, extra string) string {
		return fmt.Sprintf(`CREATE SYNC JOB bad FROM mysql_cdc ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'tables'='%s'%s)
			TO blackhole ()`, port, user, pass, tables, extra)
	}
	deadPort := 1
	cases := []struct {
		name, stmt, want string
		setup, undo      string
	}{
		{"wrong password", src(db.Port, "repl", "nope", `app\\.t`, ""), "wrong user or password", "", ""},
		{"unreachable", src(deadPort, "repl", "replpw", `app\\.t`, ""), "cannot reach 127.0.0.1:1", "", ""},
		{"binlog off", src(nobinlog.Port, "admin", "adminpw", `app\\.t`, ""), "binary logging is off", "", ""},
		{"binlog_format", src(db.Port, "repl", "replpw", `app\\.t`, ""), "binlog_format is MIXED",
			"SET GLOBAL binlog_format = 'MIXED'", "SET GLOBAL binlog_format = 'ROW'"},
		{"row image", src(db.Port, "repl", "replpw", `app\\.t`, ""), "binlog_row_image is MINIMAL",
			"SET GLOBAL binlog_row_image = 'MINIMAL'", "SET GLOBAL binlog_row_image = 'FULL'"},
		{"no replication privilege", src(db.Port, "weak", "weakpw", `app\\.t`, ""), "lacks REPLICATION SLAVE", "", ""},
		{"no binlog monitor", src(db.Port, "halfrepl", "halfpw", `app\\.t`, ""), "lacks BINLOG MONITOR", "", ""},
		{"unknown table", src(db.Port, "repl", "replpw", `app\\.nosuch`, ""), "no table on 127.0.0.1", "", ""},
		{"no primary key", src(db.Port, "repl", "replpw", `app\\..*`, ""), "app.nopk has no primary key", "", ""},
		{"bad regex", src(db.Port, "repl", "replpw", `app\\.(`, ""), "is not a regular expression", "", ""},
		{"sink at sluice's own port", strings.Replace(src(db.Port, "repl", "replpw", `app\\.t`, ""), "TO blackhole ()",
			"TO mysql ('host'='127.0.0.1', 'port'='"+sluicePort+"', 'user'='root')", 1), "is the SQL port of a sluice server", "", ""},
		{"source at sluice's own port", src(atoi(sluicePort), "root", "", `app\\.t`, ""), "is the SQL port of a sluice server", "", ""},
		{"parallelism", src(db.Port, "repl", "replpw", `app\\.t`, "") + " WITH ('parallelism'='2')", "mysql_cdc runs as at most 1 parallel instance", "", ""},
		// A table without a key into an at-least-once mysql sink: refused
		// at CREATE (it used to fail at the first batch), naming the ways out.
		{"keyless table, at-least-once", strings.Replace(src(db.Port, "repl", "replpw", `app\\.nopk`, ", 'snapshot.chunk.key'='v'"), "TO blackhole ()",
			fmt.Sprintf("TO mysql ('host'='127.0.0.1', 'port'='%d', 'user'='admin', 'password'='adminpw', 'database'='copy')", db.Port), 1),
			"app.nopk has no primary key, so an at-least-once replay after a crash would insert its rows twice", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != "" {
				db.Exec(t, c.setup)
				defer db.Exec(t, c.undo)
			}
			out, err := n.run(c.stmt)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("want an error containing %q, got %v: %s", c.want, err, out)
			}
			code := "ERROR 1429"
			switch c.name {
			case "bad regex", "parallelism":
				code = "ERROR 1231"
			}
			if !strings.Contains(out, code) {
				t.Errorf("want %s, got %s", code, out)
			}
			if got := n.int("SELECT COUNT(*) FROM sluice.jobs"); got != 0 {
				t.Fatalf("the catalog changed: %d jobs", got)
			}
		})
	}

	// A server_id is one job's.
	n.sql(src(db.Port, "repl", "replpw", `app\\.t`, ", 'server_id'='4242'"))
	out, err := n.run(strings.Replace(src(db.Port, "repl", "replpw", `app\\.t`, ", 'server_id'='4242'"), "JOB bad", "JOB bad2", 1))
	if err == nil || !strings.Contains(out, "4242 is already used by job bad") {
		t.Fatalf("duplicate server_id: %v %s", err, out)
	}

	// A binlog purged past a paused job's position: RESUME fails loudly.
	n.waitFor("job bad running", func() bool { return n.state("bad") == "RUNNING" })
	n.sql("ALTER SYNC JOB bad SET ('retry.times'='0')")
	n.sql("PAUSE SYNC JOB bad")
	n.waitFor("job bad paused", func() bool { return n.state("bad") == "PAUSED" })
	db.Exec(t, "INSERT INTO app.t VALUES (1, 1)", "FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (2, 2)")
	db.RotateAndPurge(t)
	n.sql("RESUME SYNC JOB bad")
	deadline := time.Now().Add(60 * time.Second) // the binlog client retries ~10 s first
	for n.state("bad") != "FAILED" {
		if time.Now().After(deadline) {
			t.Fatalf("job bad is %s, not FAILED, a minute after its binlog was purged", n.state("bad"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if msg := n.sql("SELECT error FROM sluice.jobs WHERE name = 'bad'"); !strings.Contains(msg, "is gone from the server") {
		t.Fatalf("error after purge: %s", msg)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
