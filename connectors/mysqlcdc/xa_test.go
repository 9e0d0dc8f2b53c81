package mysqlcdc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
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
