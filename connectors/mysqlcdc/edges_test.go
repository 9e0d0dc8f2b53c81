package mysqlcdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/connectors/conformance"
)

// Two-phase XA at the source: MariaDB logs the rows at XA PREPARE and the
// outcome as a group of its own. A prepared transaction on tables the job
// does not capture (an exactly-once mysql sink writing to the same server)
// is one GTID group like any other, not a binlog gap (the crash test found
// one); one that changes a captured table stops the job loudly, since its
// rows may yet roll back.
func TestTwoPhaseXAAtTheSource(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE xs", "CREATE TABLE xs.t (id INT PRIMARY KEY)", "CREATE TABLE xs.other (id INT PRIMARY KEY)")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	src := newSource(t, alloc, map[string]string{"tables": `xs\.t`, "startup.mode": "latest", "heartbeat.interval": "200ms"})
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer func() { src.Close(); alloc.AssertSize(t, 0) }()
	db := srv.Open(t, "")
	exec := func(q ...string) {
		t.Helper()
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, s := range q {
			if _, err := c.ExecContext(context.Background(), s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	exec("XA START 'a'", "INSERT INTO xs.other VALUES (1)", "XA END 'a'", "XA PREPARE 'a'")
	exec("XA COMMIT 'a'")
	exec("INSERT INTO xs.t VALUES (1)")
	c := &collected{}
	readUntil(t, src, c, func() bool { return len(c.rows) >= 1 })
	if got := strings.Join(c.rows, ";"); got != "xs.t INSERT 1" {
		t.Fatalf("rows %q", got)
	}

	exec("XA START 'b'", "INSERT INTO xs.t VALUES (2)", "XA END 'b'", "XA PREPARE 'b'")
	exec("XA ROLLBACK 'b'")
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		b, err := src.Read(ctx)
		cancel()
		if err == nil {
			b.Release()
		}
		if errors.Is(err, connectors.ErrPrecondition) && strings.Contains(err.Error(), "two-phase XA") {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
			t.Fatalf("a prepared XA transaction on a captured table: %v", err)
		}
	}
}

// A change from before an ADD COLUMN that patches a snapshot chunk read
// after it stores the added column's default, as the ALTER filled it in
// (the crash test found NULL written into a NOT NULL column).
func TestAddedColumnDefaultForOlderChanges(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE dv", `CREATE TABLE dv.t (id INT PRIMARY KEY, s VARCHAR(20) NOT NULL DEFAULT 'it''s ✓',
		n INT NOT NULL DEFAULT 7, z VARCHAR(5) NULL, ts DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`)
	db := srv.Open(t, "")
	tb, err := loadTable(context.Background(), db, connectors.TableID{Database: "dv", Table: "t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": "it's ✓ true", "n": "7 true", "z": "<nil> true", "ts": "<nil> false"}
	for _, c := range tb.Cols[1:] {
		v, ok := c.defaultValue()
		if got := fmt.Sprint(v, " ", ok); got != want[c.Name] {
			t.Errorf("default of %s (%q): %s, want %s", c.Name, c.Default, got, want[c.Name])
		}
	}
}

// An ALTER the reader has not reached yet, and an update of the new column
// of a row in a later chunk: the chunk's SELECT must not read that row
// under the old column list (its new value would be lost, as the update's
// own image is not emitted for a key the snapshot has yet to read).
func TestChunkAfterAnAlterTheReaderHasNotReached(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE ca", "CREATE TABLE ca.t (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO ca.t SELECT seq, CONCAT('v', seq) FROM ca.seq_1_to_30")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	src := newSource(t, alloc, map[string]string{"tables": `ca\.t`, "snapshot.chunk.size": "10", "heartbeat.interval": "200ms"})
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer func() { src.Close(); alloc.AssertSize(t, 0) }()
	state := conformance.NewState()
	read := func(cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out; state %v", state.Lines())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			b, err := src.Read(ctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			_ = state.Apply(b)
			b.Release()
		}
	}
	read(func() bool { return len(state.Lines()) >= 10 })
	srv.Exec(t, "ALTER TABLE ca.t ADD COLUMN c VARCHAR(10) NOT NULL DEFAULT 'd'", "UPDATE ca.t SET c = 'new' WHERE id = 15")
	want := "ca.t c=new,id=15,v=v15"
	read(func() bool {
		for _, l := range state.Lines() {
			if l == want {
				return len(state.Lines()) == 30
			}
		}
		return false
	})
}
