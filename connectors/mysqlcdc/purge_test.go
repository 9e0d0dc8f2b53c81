package mysqlcdc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// TestPurgedBinlogFailsLoudly: a stored position whose binlog is gone must
// fail the source with what to do, never continue from a later point (I8).
func TestPurgedBinlogFailsLoudly(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE pg", "CREATE TABLE pg.t (id INT PRIMARY KEY)")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	opts := map[string]string{"tables": "pg\\.t", "startup.mode": "latest", "heartbeat.interval": "200ms"}
	src := newSource(t, alloc, opts)
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	pos := src.Position()
	src.Close()
	srv.Exec(t, "INSERT INTO pg.t VALUES (1)", "FLUSH BINARY LOGS", "INSERT INTO pg.t VALUES (2)")
	srv.RotateAndPurge(t)

	src = newSource(t, alloc, opts)
	defer src.Close()
	err := src.Open(context.Background(), pos)
	deadline := time.Now().Add(40 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		b, rerr := src.Read(ctx)
		cancel()
		if rerr == nil {
			b.Release()
			t.Fatalf("read a batch after the purge: %s (position %s)", b.Table, pos)
		}
		if !errors.Is(rerr, context.DeadlineExceeded) {
			err = rerr
		}
	}
	if err == nil || !strings.Contains(err.Error(), "is gone from the server") {
		t.Fatalf("want the purged-binlog error, got %v (position %s)", err, pos)
	}
	t.Log(err)
}
