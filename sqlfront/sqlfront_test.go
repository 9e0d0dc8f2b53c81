package sqlfront_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
	"sluice/connectors/tablerename"
	"sluice/internal/testnode"
)

// secretSink declares a required option and a secret, to test both.
func secretSink() connectors.Spec {
	return connectors.Spec{Name: "vault", Kind: connectors.KindSink,
		Options: connectors.OptionSet{
			{Name: "host", Type: connectors.TypeString, Required: true, Description: "where to write"},
			{Name: "password", Type: connectors.TypeString, Secret: true},
		},
		NewSink: func(connectors.Config, connectors.Env) (connectors.Sink, error) { return &blackhole.Sink{}, nil },
	}
}

func registry() *connectors.Registry {
	return connectors.NewRegistry().MustRegister(datagen.Spec(), blackhole.Spec(), tablerename.Spec(), secretSink())
}

// step is one statement and what must come back: an error code, or rows
// (each row's columns joined by "|"; NULL as "NULL"). want == nil with
// code 0 only checks success.
type step struct {
	sql  string
	code uint16
	msg  string // substring of the error message
	want []string
}

// script runs in order against one server, over the text protocol.
var script = []step{
	{sql: "SHOW SYNC JOBS", want: []string{}},
	{sql: "CREATE SYNC JOB orders FROM datagen ('rows'='100', 'tables'='a,b') TRANSFORM table_rename ('prefix'='ods_') TO blackhole () WITH ('parallelism'='2')"},
	{sql: "create sync job if not exists ORDERS from datagen () to blackhole ()"},
	{sql: "CREATE SYNC JOB `weird name ü` FROM datagen ('rate'='10') TO vault ('host'='h', 'password'='canary-pw-123')"},
	{sql: "SELECT name, source, transforms, sink, parallelism FROM sluice.jobs ORDER BY job_id",
		want: []string{"orders|datagen|table_rename|blackhole|2", "weird name ü|datagen|NULL|vault|1"}},
	{sql: "SHOW SYNC JOBS LIKE 'ord%'", want: nil},
	{sql: "SELECT count(*) FROM sluice.jobs j JOIN sluice.events e ON e.job = j.name WHERE e.kind = 'CREATED'", want: []string{"2"}},
	// Bad input: each refused with its code, nothing changed.
	{sql: "CREATE SYNC JOB orders FROM datagen () TO blackhole ()", code: 1050, msg: "already exists: orders"},
	{sql: "CREATE SYNC JOB r FROM datagen () TO blackhole () WITH ('tags'='zone=mars', 'schedule.strategy'='reject')", code: 1041,
		msg: "not enough free slots: needs 1 free slot; no node fits (n1 tags none) (schedule.strategy=reject)"},
	{sql: "CREATE SYNC JOB x FROM datagen ('rate'='fast') TO blackhole ()", code: 1231, msg: `"fast" is not an integer`},
	{sql: "CREATE SYNC JOB x FROM nosuch () TO blackhole ()", code: 1286, msg: "valid sources are datagen"},
	{sql: "CREATE SYNC JOB x FROM datagen ('rowz'='1') TO blackhole ()", code: 1911, msg: "valid options are batch_size, rate, rows, tables"},
	{sql: "CREATE SYNC JOB x FROM datagen () TO vault ()", code: 1210, msg: `missing required option "host"`},
	{sql: "CREATE SYNC JOB x FROM datagen () TO blackhole () WITH ('parallelism'='-1')", code: 1231, msg: "below the minimum 1"},
	{sql: "CREATE SYNC JOB x FROM datagen () TO blackhole () WITH ('checkpoint.interval'='soon')", code: 1231, msg: "not a duration"},
	{sql: "CREATE SYNC JOB x FROM datagen () TO blackhole () WITH ('nope'='1')", code: 1911, msg: "valid options are checkpoint.interval"},
	{sql: "CREATE SYNC JOB x FROM datagen () blackhole ()", code: 1064, msg: "near 'blackhole ()' at line 1, column 35"},
	{sql: "CREATE SYNC JOB x FROM datagen ('a'='1', 'A'='2') TO blackhole ()", code: 1064, msg: "given twice"},
	{sql: "CREATE SYNC JOB x FROM datagen ('rows'='1) TO blackhole ()", code: 1064, msg: "unterminated string"},
	{sql: "CREATE SYNC JOB 123 FROM datagen () TO blackhole ()", code: 1064, msg: "only digits"},
	{sql: "PAUSE SYNC JOB nope", code: 1146, msg: "does not exist: nope"},
	{sql: "DROP SYNC JOB nope", code: 1146},
	{sql: "DROP SYNC JOB IF EXISTS nope"},
	{sql: "RESUME SYNC JOB orders", code: 1221, msg: "expected PAUSED or FAILED"},
	{sql: "ALTER SYNC JOB orders SET ('parallelism'='3')", code: 1231, msg: "fixed at CREATE"},
	{sql: "ALTER SYNC JOB orders SET ('rows'='3')", code: 1911, msg: "job options only"},
	{sql: "SELECT count(*) FROM sluice.jobs", want: []string{"2"}},
	// Secrets never come back.
	{sql: "SHOW CREATE SYNC JOB `weird name ü`", want: []string{"weird name ü|CREATE SYNC JOB `weird name ü`\n  FROM datagen ('rate'='10')\n  TO vault ('host'='h', 'password'='******')"}},
	{sql: "ALTER SYNC JOB `weird name ü` SET ('read.limit.rows_per_second'='5')"},
	{sql: "PAUSE SYNC JOB `WEIRD NAME Ü`"},
	{sql: "SELECT state FROM sluice.jobs WHERE name = 'weird name ü'", want: []string{"PAUSED"}},
	{sql: "RESUME SYNC JOB `weird name ü`"},
	{sql: "EXPLAIN CREATE SYNC JOB z FROM datagen () TO vault ('host'='h', 'password'='canary-pw-123')", want: []string{
		"== Logical DAG ==", "[1] source datagen ()", "[2] sink vault ('host'='h', 'password'='******')", "[1] -> [2]",
		"== Pipelines ==", "pipeline 1: [1] datagen -> [2] vault; parallelism 1", "== Tasks ==", "pipeline 1 task 0: not scheduled"}},
	// Ordinary SQL goes to the engine.
	{sql: "SELECT connector, `option`, type, required, default_value FROM sluice.connectors WHERE connector = 'datagen' ORDER BY `option`",
		want: []string{"datagen|batch_size|int|0|1024", "datagen|rate|int|0|0", "datagen|rows|int|0|0", "datagen|tables|list|0|t1"}},
	{sql: "SELECT count(*) > 5 FROM sluice.connectors WHERE kind = 'job'", want: []string{"1"}},
	{sql: "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sluice' ORDER BY table_name",
		want: []string{"binlog_risk", "checkpoints", "connectors", "events", "jobs", "job_history", "job_tables", "metrics", "nodes", "notifications", "slots", "tasks", "verifications"}},
	{sql: "SHOW TABLES FROM sluice", want: []string{"binlog_risk", "checkpoints", "connectors", "events", "job_history", "job_tables", "jobs", "metrics", "nodes", "notifications", "slots", "tasks", "verifications"}},
	{sql: "SELECT column_name FROM information_schema.columns WHERE table_schema='sluice' AND table_name='metrics' ORDER BY ordinal_position",
		want: []string{"job", "table_name", "source_received_count", "source_received_bytes", "source_received_qps", "sink_write_count",
			"sink_write_bytes", "sink_write_qps", "lag_ms", "updated_at"}},
	{sql: "SELECT node_id, role, raft_state, alive FROM sluice.nodes", want: []string{"n1|hybrid|Leader|1"}},
	{sql: "INSERT INTO sluice.jobs (name) VALUES ('x')", code: 1105},
	{sql: "CREATE DATABASE other", code: 1105},
	{sql: "SELECT @@version, @@version_comment", want: []string{"8.0.33-sluice|sluice"}},
	{sql: "SELECT message FROM sluice.events WHERE message LIKE '%canary%'", want: []string{}},
	{sql: "DROP SYNC JOB orders"},
	{sql: "SELECT name FROM sluice.jobs", want: []string{"weird name ü"}},
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rowsOf(t *testing.T, rs *sql.Rows) []string {
	t.Helper()
	defer rs.Close()
	cols, _ := rs.Columns()
	out := []string{}
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, db *sql.DB, st step) {
	t.Helper()
	rs, err := db.Query(st.sql)
	if st.code != 0 {
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != st.code || !strings.Contains(me.Message, st.msg) {
			t.Fatalf("%s\n got error %v, want %d containing %q", st.sql, err, st.code, st.msg)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s\n %v", st.sql, err)
	}
	got := rowsOf(t, rs)
	if st.want != nil && strings.Join(got, "\n") != strings.Join(st.want, "\n") {
		t.Fatalf("%s\n got  %q\n want %q", st.sql, got, st.want)
	}
}

func TestScript(t *testing.T) {
	n := testnode.Start(t, registry(), "", 0)
	db := open(t, n.DSN("interpolateParams=true"))
	for _, st := range script {
		run(t, db, st)
	}
}

func TestPreparedAndMultiStatements(t *testing.T) {
	n := testnode.Start(t, registry(), "", 0)
	// Multi-statement packets: dialect and SQL mixed, both orders.
	multi := open(t, n.DSN("multiStatements=true"))
	if _, err := multi.Exec("CREATE SYNC JOB a FROM datagen ('rate'='10') TO blackhole (); SELECT 1; CREATE SYNC JOB b FROM datagen ('rate'='10') TO blackhole ()"); err != nil {
		t.Fatal(err)
	}
	rs, err := multi.Query("SELECT 1; SHOW SYNC JOBS LIKE 'b'")
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, rs); len(got) != 1 || got[0] != "1" {
		t.Fatalf("first result: %q", got)
	}
	// Server-side prepared statements for ordinary queries.
	prep := open(t, n.DSN("interpolateParams=false"))
	var state string
	if err := prep.QueryRow("SELECT state FROM sluice.jobs WHERE name = ?", "b").Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state == "" {
		t.Fatal("empty state over a prepared statement")
	}
	var cnt int
	if err := prep.QueryRow("SELECT count(*) FROM sluice.jobs WHERE name IN (?, ?)", "a", "b").Scan(&cnt); err != nil || cnt != 2 {
		t.Fatalf("count %d, %v", cnt, err)
	}
	// The dialect cannot be prepared server-side: the error says so (1064)
	// and the catalog is unchanged.
	if _, err := prep.Exec("PAUSE SYNC JOB a WHERE ?", 1); err == nil {
		t.Fatal("a prepared dialect statement must fail")
	}
	if err := prep.QueryRow("SELECT state FROM sluice.jobs WHERE name = ?", "a").Scan(&state); err != nil || state == "PAUSED" {
		t.Fatalf("state %s, %v", state, err)
	}
}

func TestMetricsGrowWithinASecond(t *testing.T) {
	n := testnode.Start(t, registry(), "", 0)
	db := open(t, n.DSN(""))
	if _, err := db.Exec("CREATE SYNC JOB m FROM datagen ('rate'='2000', 'tables'='x,y') TO blackhole ()"); err != nil {
		t.Fatal(err)
	}
	var prev int64
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second)
		var rows, tables int64
		if err := db.QueryRow("SELECT COALESCE(SUM(sink_write_count),0), COUNT(*) FROM sluice.metrics WHERE job = 'm'").Scan(&rows, &tables); err != nil {
			t.Fatal(err)
		}
		if rows <= prev || tables != 2 {
			t.Fatalf("after %ds: %d rows over %d tables (before: %d)", i+1, rows, tables, prev)
		}
		prev = rows
	}
}

func TestPrivileges(t *testing.T) {
	n := testnode.Start(t, registry(), "", 0)
	root := open(t, n.DSN(""))
	for _, q := range []string{
		"CREATE USER viewer@'%' IDENTIFIED BY 'pw'", "GRANT SELECT ON sluice.* TO viewer@'%'",
		"CREATE USER op@'%' IDENTIFIED BY 'pw'", "GRANT SELECT, ALTER ON sluice.* TO op@'%'",
		"CREATE SYNC JOB j FROM datagen ('rate'='10') TO blackhole ()",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dsn := func(user string) string {
		return fmt.Sprintf("%s:pw@tcp(%s)/", user, n.Front.Addr())
	}
	viewer, op := open(t, dsn("viewer")), open(t, dsn("op"))
	run(t, viewer, step{sql: "SHOW SYNC JOBS"})
	run(t, viewer, step{sql: "SELECT name FROM sluice.jobs", want: []string{"j"}})
	run(t, viewer, step{sql: "PAUSE SYNC JOB j", code: 1227, msg: "ALTER privilege"})
	run(t, op, step{sql: "PAUSE SYNC JOB j"})
	run(t, op, step{sql: "DROP SYNC JOB j", code: 1227, msg: "DROP privilege"})
	run(t, op, step{sql: "CREATE SYNC JOB k FROM datagen () TO blackhole ()", code: 1227, msg: "CREATE privilege"})
	run(t, root, step{sql: "SELECT count(*) FROM sluice.jobs", want: []string{"1"}})
	// A wrong password and a user that does not exist get the same answer
	// at the handshake, 1045, so it does not tell which users exist.
	for _, cred := range []string{"viewer:nope", "viewer:", "nosuch:nope", "nosuch:"} {
		bad := open(t, fmt.Sprintf("%s@tcp(%s)/", cred, n.Front.Addr()))
		var me *mysql.MySQLError
		if err := bad.Ping(); !errors.As(err, &me) || me.Number != 1045 {
			t.Fatalf("%s: got %v, want error 1045", cred, err)
		}
	}
}

// A checkpoint of one job is one Raft entry: with nothing else changing,
// the applied index advances exactly as the checkpoint ids do.
func TestOneRaftEntryPerCheckpoint(t *testing.T) {
	n := testnode.Start(t, registry(), "", 0)
	db := open(t, n.DSN(""))
	if _, err := db.Exec("CREATE SYNC JOB k FROM datagen ('rate'='1000') TO blackhole () WITH ('checkpoint.interval'='20ms', 'parallelism'='3')"); err != nil {
		t.Fatal(err)
	}
	job, _ := n.Catalog.Job("k")
	// consistent reads the FSM index and the newest checkpoint id with no
	// commit in between.
	consistent := func() (uint64, uint64) {
		for {
			a := n.Catalog.Index()
			id := n.Catalog.MaxCheckpointID(job.ID, 1)
			if n.Catalog.Index() == a {
				return a, id
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.Catalog.MaxCheckpointID(job.ID, 1) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	i0, c0 := consistent()
	time.Sleep(400 * time.Millisecond)
	i1, c1 := consistent()
	if c1-c0 < 5 {
		t.Fatalf("only %d checkpoints in 400ms at a 20ms interval", c1-c0)
	}
	if i1-i0 != c1-c0 {
		t.Fatalf("%d Raft entries for %d checkpoints of a 3-task job", i1-i0, c1-c0)
	}
}
