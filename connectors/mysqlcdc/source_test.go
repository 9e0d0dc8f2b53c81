package mysqlcdc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/internal/mariadbtest"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { os.Exit(mariadbtest.Main(m, &srv)) }

func newSource(t *testing.T, alloc memory.Allocator, opts map[string]string) *Source {
	t.Helper()
	raw := map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port), "user": mariadbtest.ReplUser,
		"password": mariadbtest.ReplPass, "server_id": fmt.Sprint(100 + len(t.Name()))}
	for k, v := range opts {
		raw[k] = v
	}
	cfg, err := Options.Validate("mysql_cdc", raw)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Spec().NewSource(cfg, connectors.Env{Job: t.Name(), JobID: 7, Alloc: alloc})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

// collected is what a test reader saw: rows per table as "kind:json".
type collected struct {
	rows []string
	ddl  []string
	last connectors.Position
}

// readUntil reads batches until cond holds or the timeout passes.
func readUntil(t *testing.T, src *Source, c *collected, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; have %d rows: %v", len(c.rows), tailOf(c.rows, 5))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		b, err := src.Read(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.DDL != "" {
			c.ddl = append(c.ddl, b.Table.String()+": "+b.DDL)
		}
		kinds, _ := connectors.RowKinds(b.Record)
		for i := 0; i < int(b.Record.NumRows()); i++ {
			var vals []string
			for j := 1; j < int(b.Record.NumCols()); j++ {
				vals = append(vals, b.Record.Column(j).ValueStr(i))
			}
			c.rows = append(c.rows, fmt.Sprintf("%s %s %s", b.Table, connectors.RowKind(kinds.Value(i)), strings.Join(vals, "|")))
		}
		c.last = b.Position
		b.Release()
	}
}

func tailOf(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSnapshotThenStream(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE s1", "CREATE TABLE s1.t (id INT PRIMARY KEY, v VARCHAR(20))")
	for i := 1; i <= 25; i++ {
		srv.Exec(t, fmt.Sprintf("INSERT INTO s1.t VALUES (%d, 'v%d')", i, i))
	}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	src := newSource(t, alloc, map[string]string{"tables": "s1\\..*", "snapshot.chunk.size": "10", "heartbeat.interval": "200ms"})
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	c := &collected{}
	readUntil(t, src, c, func() bool { return len(c.rows) >= 25 })
	srv.Exec(t, "INSERT INTO s1.t VALUES (100, 'new')", "UPDATE s1.t SET v='upd' WHERE id=3", "DELETE FROM s1.t WHERE id=4")
	readUntil(t, src, c, func() bool { return len(c.rows) >= 29 })
	t.Log(strings.Join(c.rows, "\n"), c.ddl, string(c.last))
	src.Close()
	alloc.AssertSize(t, 0)
}

// TestStartupModes: latest skips existing rows; earliest replays the whole
// binlog; timestamp starts at the first change at or after a time;
// specific starts after a given GTID set.
func TestStartupModes(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE sm", "CREATE TABLE sm.t (id INT PRIMARY KEY)", "INSERT INTO sm.t VALUES (1), (2)")
	time.Sleep(1100 * time.Millisecond) // binlog timestamps have whole seconds
	mark := time.Now()
	db := srv.Open(t, "")
	var gtid string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, "INSERT INTO sm.t VALUES (3)")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ids := func(opts map[string]string, after func()) []string {
		src := newSource(t, alloc, opts)
		if err := src.Open(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if after != nil {
			after()
		}
		c := &collected{}
		readUntil(t, src, c, func() bool { return len(c.rows) > 0 && strings.HasSuffix(c.rows[len(c.rows)-1], " 4") })
		var out []string
		for _, r := range c.rows {
			out = append(out, r[strings.LastIndexByte(r, ' ')+1:])
		}
		return out
	}
	base := map[string]string{"tables": `sm\.t`, "heartbeat.interval": "200ms"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	insert4 := func() { srv.Exec(t, "INSERT INTO sm.t VALUES (4)") }
	if got := fmt.Sprint(ids(with("startup.mode", "latest"), insert4)); got != "[4]" {
		t.Errorf("latest: %s", got)
	}
	srv.Exec(t, "DELETE FROM sm.t WHERE id = 4")
	if got := fmt.Sprint(ids(with("startup.mode", "timestamp", "startup.timestamp", fmt.Sprint(mark.UnixMilli())), insert4)); !strings.HasPrefix(got, "[3 4") {
		t.Errorf("timestamp: %s", got)
	}
	srv.Exec(t, "DELETE FROM sm.t WHERE id = 4")
	if got := fmt.Sprint(ids(with("startup.mode", "specific", "startup.gtid", gtid), insert4)); !strings.HasPrefix(got, "[3 4") {
		t.Errorf("specific: %s", got)
	}
	srv.Exec(t, "DELETE FROM sm.t WHERE id = 4")
	if got := fmt.Sprint(ids(with("startup.mode", "earliest"), insert4)); !strings.HasPrefix(got, "[1 2 3 4") {
		t.Errorf("earliest: %s", got)
	}
	alloc.AssertSize(t, 0)
}
