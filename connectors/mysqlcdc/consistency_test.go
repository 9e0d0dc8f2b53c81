package mysqlcdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
)

// replica applies batches to an in-memory table and checks invariant I4:
// the versions of a key never go backwards.
type replica struct {
	rows    map[int64]string
	hist    map[int64][]string
	maxVer  map[int64]int64
	applied int
}

func (r *replica) apply(t *testing.T, b connectors.Batch) {
	t.Helper()
	kinds, err := connectors.RowKinds(b.Record)
	if err != nil {
		t.Fatal(err)
	}
	ids := b.Record.Column(1).(*array.Int32)
	vers := b.Record.Column(2).(*array.Int64)
	for i := 0; i < int(b.Record.NumRows()); i++ {
		id := int64(ids.Value(i))
		var vals []string
		for j := 1; j <= 3; j++ { // id, ver, pad (a column added later is not compared)
			vals = append(vals, b.Record.Column(j).ValueStr(i))
		}
		if r.hist != nil {
			r.hist[id] = append(r.hist[id], fmt.Sprint(connectors.RowKind(kinds.Value(i)), vals, string(b.Position)))
		}
		switch connectors.RowKind(kinds.Value(i)) {
		case connectors.UpdateBefore:
			// A change applies to the state the previous change left: a
			// repeated or lost change shows up as a mismatch here (I3).
			if cur, ok := r.rows[id]; ok && cur != fmt.Sprint(vals) {
				t.Logf("history of %d: %v", id, r.hist[id])
				t.Fatalf("I3: key %d: update from %v, but the replica holds %s", id, vals, cur)
			}
		case connectors.Insert, connectors.UpdateAfter:
			v := vers.Value(i)
			if v < r.maxVer[id] {
				t.Fatalf("I4: key %d went from version %d back to %d", id, r.maxVer[id], v)
			}
			r.maxVer[id] = v
			r.rows[id] = fmt.Sprint(vals)
		case connectors.Delete:
			delete(r.rows, id)
		}
		r.applied++
	}
}

// TestSnapshotUnderWritesWithRestarts runs the chunked snapshot while a
// writer updates, deletes and inserts across the key range in multi-row
// transactions (one of them larger than a batch), restarts the source from
// the last delivered position several times, and requires the replica to
// equal the source at the end with versions never going backwards.
func TestSnapshotUnderWritesWithRestarts(t *testing.T) {
	for _, par := range []int{1, 3} { // one chunk at a time; chunks read ahead
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) { snapshotUnderWrites(t, par) })
	}
}

func snapshotUnderWrites(t *testing.T, par int) {
	srv.Exec(t, "DROP DATABASE IF EXISTS cw", "CREATE DATABASE cw", "CREATE TABLE cw.t (id INT PRIMARY KEY, ver BIGINT NOT NULL, pad VARCHAR(40))",
		"CREATE TABLE cw.other (id INT PRIMARY KEY, v INT)")
	db := srv.Open(t, "cw")
	const initial = 6000
	for i := 0; i < initial; i += 1000 {
		q := "INSERT INTO t VALUES "
		for j := i + 1; j <= i+1000; j++ {
			if j > i+1 {
				q += ","
			}
			q += fmt.Sprintf("(%d, 1, 'p%d')", j, j)
		}
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	var writeErr error
	go func() { // the writer
		defer wg.Done()
		rng := rand.New(rand.NewSource(1))
		next := initial + 1
		for n := 0; ctx.Err() == nil; n++ {
			tx, err := db.Begin()
			if err != nil {
				writeErr = err
				return
			}
			for k := 0; k < 1+rng.Intn(8); k++ {
				id := 1 + rng.Intn(next)
				switch rng.Intn(7) {
				case 6: // re-insert a key that may have been deleted (newer version)
					_, err = tx.Exec("INSERT INTO t (id, ver, pad) VALUES (?, ?, 'again') ON DUPLICATE KEY UPDATE ver = ver + 1", min(id, next-1), 10_000*(n+1))
				case 0:
					_, err = tx.Exec("DELETE FROM t WHERE id = ?", id)
				case 1:
					_, err = tx.Exec("INSERT INTO t (id, ver, pad) VALUES (?, 1, 'new')", next)
					next++
				case 2:
					_, err = tx.Exec("INSERT INTO other VALUES (?, 1) ON DUPLICATE KEY UPDATE v = v + 1", rng.Intn(50))
				default:
					_, err = tx.Exec("UPDATE t SET ver = ver + 1, pad = CONCAT('u', ver) WHERE id BETWEEN ? AND ?", id, id+rng.Intn(3))
				}
				if err != nil {
					writeErr = err
					tx.Rollback()
					return
				}
			}
			if n == 25 { // a schema change while chunks are in progress
				if err := tx.Commit(); err != nil {
					writeErr = err
					return
				}
				if _, err := db.Exec("ALTER TABLE t ADD COLUMN extra INT NULL"); err != nil {
					writeErr = err
					return
				}
				continue
			}
			if n == 40 { // one transaction larger than a batch
				if _, err := tx.Exec("UPDATE t SET ver = ver + 1 WHERE id <= 5000"); err != nil {
					writeErr = err
				}
			}
			if err := tx.Commit(); err != nil {
				writeErr = err
				return
			}
		}
	}()

	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	// Both tables are captured: transactions switch tables mid-way, so
	// batches end at table switches inside transactions.
	opts := map[string]string{"tables": "cw\\..*", "snapshot.chunk.size": "500", "heartbeat.interval": "200ms",
		"snapshot.parallelism": fmt.Sprint(par)}
	rep := &replica{rows: map[int64]string{}, maxVer: map[int64]int64{}, hist: map[int64][]string{}}
	var pos connectors.Position
	restarts, midTxn := 0, 0
	deadline := time.Now().Add(6 * time.Second)
	writerStopped := false
	for {
		src := newSource(t, alloc, opts)
		src.batchRows = 7 // batches end inside transactions
		if len(pos) > 0 && restarts > 0 {
			var p position
			_ = json.Unmarshal(pos, &p)
			if p.Skip > 0 {
				midTxn++
			}
		}
		t.Logf("restart %d from %s", restarts, pos)
		if err := src.Open(context.Background(), pos); err != nil {
			t.Fatal(err)
		}
		// The system tables read the source's report from another
		// goroutine while it runs (go test -race checks the sharing).
		watchDone := make(chan struct{})
		watchErr := make(chan string, 1)
		go func() {
			defer close(watchErr)
			for {
				select {
				case <-watchDone:
					return
				case <-time.After(5 * time.Millisecond):
				}
				_ = src.Status()
				for _, ts := range src.TableStates() {
					if ts.Phase == connectors.PhaseSnapshot && (ts.RowsDone > ts.RowsTotal || ts.ChunksDone >= ts.ChunksTotal) {
						watchErr <- fmt.Sprintf("%+v: progress beyond its total", ts)
						return
					}
				}
			}
		}()
		batches := 0
		limit := 40 + restarts*50 // restart after a few batches, later ones longer
		for {
			if !writerStopped && time.Now().After(deadline) {
				stop()
				wg.Wait()
				writerStopped = true
			}
			rctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			b, err := src.Read(rctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				if writerStopped && caughtUp(t, db, src) {
					break
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			table := b.Table.Table
			if table == "t" {
				rep.apply(t, b)
			}
			pos = b.Position
			b.Release()
			// Restart after a batch of the other table: it usually ended at a
			// switch of tables inside a transaction.
			if batches++; restarts < 8 && batches >= limit && table == "other" {
				break
			}
		}
		if p := src.Position(); p != nil {
			pos = p
		}
		close(watchDone)
		if msg, ok := <-watchErr; ok {
			t.Fatal(msg)
		}
		src.Close()
		if writerStopped && restarts >= 8 { // the last run read until caught up
			break
		}
		restarts++
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	want := map[int64]string{}
	rows, err := db.Query("SELECT id, ver, pad FROM t")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, ver int64
		var pad sql.NullString
		_ = rows.Scan(&id, &ver, &pad)
		want[id] = fmt.Sprint([]string{fmt.Sprint(id), fmt.Sprint(ver), pad.String})
	}
	rows.Close()
	if len(want) != len(rep.rows) {
		t.Errorf("I1: source has %d rows, replica %d", len(want), len(rep.rows))
	}
	bad := 0
	for id := range rep.rows {
		if _, ok := want[id]; !ok && bad < 5 {
			bad++
			t.Errorf("I1: id %d deleted at the source but in the replica; history %v", id, rep.hist[id])
		}
	}
	for id, w := range want {
		if rep.rows[id] != w && bad < 10 {
			bad++
			t.Errorf("I2: id %d: source %s, replica %s", id, w, rep.rows[id])
		}
	}
	t.Logf("%d restarts (%d inside a transaction), %d changes applied, %d rows", restarts, midTxn, rep.applied, len(want))
	if midTxn == 0 {
		t.Error("no restart happened inside a transaction; the test lost its point")
	}
	alloc.AssertSize(t, 0)
}

// caughtUp says whether the source has read everything the server has
// written.
func caughtUp(t *testing.T, db *sql.DB, src *Source) bool {
	h, err := masterStatus(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return src.snap == nil && src.chunk == nil && (binlogPos{src.file, src.lastPos}).reached(h)
}
