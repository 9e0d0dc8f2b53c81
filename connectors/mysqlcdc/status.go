package mysqlcdc

// What the source reports to sluice.job_tables and sluice.jobs
// (connectors.Reporter, connectors.SourceClock): per-table phase and
// snapshot progress, the last change read per table, how current the
// reader is, and the server's binlog head.

import (
	"context"
	"database/sql"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sluice/connectors"
)

// tableStat is one captured table's figures. The reader goroutine writes
// them; Reporter calls read them from any goroutine.
type tableStat struct {
	id         connectors.TableID
	key        string      // "db.table"
	snapshot   atomic.Bool // a snapshot of the table is pending, running or done in this run
	done       atomic.Bool // its snapshot finished: the counts are exact
	rowsDone   atomic.Int64
	chunksDone atomic.Int64
	rowsEst    atomic.Int64 // the server's estimate (information_schema.TABLES.TABLE_ROWS)
	lastEvent  atomic.Int64 // unix seconds of the last change read; 0 none
}

// restart marks a table whose snapshot starts (again) from nothing.
func (st *tableStat) restart() {
	st.snapshot.Store(true)
	st.done.Store(false)
	st.rowsDone.Store(0)
	st.chunksDone.Store(0)
}

// monitor holds every captured table's figures and the reader's clock.
type monitor struct {
	mu        sync.Mutex
	stats     map[string]*tableStat // by "db.table"
	chunkSize int64
	waiting   atomic.Bool  // the reader has read all the server sent and waits for more
	lastTime  atomic.Int64 // unix seconds of the last event read
	head      atomic.Pointer[string]
	stopHead  context.CancelFunc
	headDone  chan struct{}
}

func newMonitor(chunkSize int) *monitor {
	return &monitor{stats: map[string]*tableStat{}, chunkSize: int64(max(1, chunkSize))}
}

// stat returns key's figures, creating them.
func (m *monitor) stat(key string, id connectors.TableID) *tableStat {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats[key]
	if st == nil {
		st = &tableStat{id: id, key: key}
		m.stats[key] = st
	}
	return st
}

// forget drops a table renamed away (its new name is a table of its own).
func (m *monitor) forget(key string) {
	m.mu.Lock()
	delete(m.stats, key)
	m.mu.Unlock()
}

// stat is t's figures (attached to the table on first use: tables are
// rebuilt at every schema change).
func (s *Source) stat(t *table) *tableStat {
	if t.st == nil {
		if s.mon == nil { // a Source built by hand (tests)
			s.mon = newMonitor(s.set.chunkSize)
		}
		t.st = s.mon.stat(t.key(), t.ID)
	}
	return t.st
}

// TableStates reports every captured table (connectors.Reporter).
func (s *Source) TableStates() []connectors.TableState {
	m := s.mon
	m.mu.Lock()
	stats := make([]*tableStat, 0, len(m.stats))
	for _, st := range m.stats {
		stats = append(stats, st)
	}
	m.mu.Unlock()
	sort.Slice(stats, func(i, k int) bool { return stats[i].key < stats[k].key })
	out := make([]connectors.TableState, 0, len(stats))
	for _, st := range stats {
		ts := connectors.TableState{Table: st.id, Phase: connectors.PhaseStreaming, Snapshot: st.snapshot.Load()}
		if ts.Snapshot {
			ts.RowsDone, ts.ChunksDone = st.rowsDone.Load(), st.chunksDone.Load()
			if st.done.Load() {
				ts.Exact, ts.RowsTotal, ts.ChunksTotal = true, ts.RowsDone, ts.ChunksDone
			} else {
				ts.Phase = connectors.PhaseSnapshot
				ts.RowsTotal = max(st.rowsEst.Load(), ts.RowsDone)
				ts.ChunksTotal = max((ts.RowsTotal+m.chunkSize-1)/m.chunkSize, ts.ChunksDone+1)
			}
		}
		if sec := st.lastEvent.Load(); sec > 0 {
			ts.LastEventAt = time.Unix(sec, 0).UTC()
		}
		out = append(out, ts)
	}
	return out
}

// Status reports how current the reader is and the binlog head.
func (s *Source) Status() connectors.SourceStatus {
	m := s.mon
	var st connectors.SourceStatus
	if m.waiting.Load() {
		st.CurrentAt = time.Now().UTC()
	} else if sec := m.lastTime.Load(); sec > 0 {
		st.CurrentAt = time.Unix(sec, 0).UTC()
	}
	if h := m.head.Load(); h != nil {
		st.Head = *h
	}
	return st
}

// SourceTime is how current Position is (connectors.SourceClock): now if
// the reader waits for the server with nothing held back, else the time
// of the last event read; zero while a batch is pending (Position is nil).
func (s *Source) SourceTime() time.Time {
	if len(s.out) > 0 || (s.cur != nil && s.cur.n > 0) {
		return time.Time{}
	}
	if s.mon.waiting.Load() && !s.inTxn {
		return time.Now().UTC()
	}
	if s.eventTime.IsZero() {
		return s.openedAt
	}
	return s.eventTime
}

// seen records an event's time (the reader's clock).
func (m *monitor) seen(ts uint32) {
	if m != nil && ts > 0 {
		m.lastTime.Store(int64(ts))
	}
}

// startMonitor takes the row estimates of the tables still to snapshot
// and starts polling the binlog head.
func (s *Source) startMonitor(ctx context.Context) {
	m := s.mon
	if s.snap != nil {
		for i, key := range s.snap.Pending {
			t := s.tables[key]
			if t == nil {
				continue
			}
			st := s.stat(t)
			st.snapshot.Store(true)
			if i == 0 { // in progress at the restart point
				st.rowsDone.Store(s.snap.Rows)
				st.chunksDone.Store(s.snap.Chunks)
			}
		}
		s.estimateRows(ctx)
	}
	for _, t := range s.tables {
		s.stat(t)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopHead, m.headDone = cancel, make(chan struct{})
	go func() {
		defer close(m.headDone)
		tick := time.NewTicker(s.set.heartbeat)
		defer tick.Stop()
		for {
			// Not cancelled midway: go-sql-driver's cancel races its cleanup
			// with the query (go test -race); stop waits for the query.
			if h, err := binlogHead(context.WithoutCancel(hctx), s.db, s.maria); err == nil {
				m.head.Store(&h)
			}
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// stopMonitor ends the head polling.
func (m *monitor) stop() {
	if m.stopHead != nil {
		m.stopHead()
		<-m.headDone
		m.stopHead = nil
	}
}

// estimateRows reads the server's row estimates of the tables to snapshot.
func (s *Source) estimateRows(ctx context.Context) {
	schemas := map[string]bool{}
	for _, key := range s.snap.Pending {
		if t := s.tables[key]; t != nil {
			schemas[t.ID.Database] = true
		}
	}
	if len(schemas) == 0 {
		return
	}
	args := make([]any, 0, len(schemas))
	for db := range schemas {
		args = append(args, db)
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := s.db.QueryContext(qctx, "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?"+
		strings.Repeat(",?", len(args)-1)+")", args...)
	if err != nil {
		s.log.Warn("mysql_cdc: no row estimates for the snapshot", "job", s.env.Job, "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var db, name string
		var n int64
		if rows.Scan(&db, &name, &n) != nil {
			continue
		}
		if t := s.tables[db+"."+name]; t != nil {
			s.stat(t).rowsEst.Store(n)
		}
	}
}

// chunkCounted records an emitted chunk of read rows.
func (s *Source) chunkCounted(t *table, read int, last bool) {
	st := s.stat(t)
	st.snapshot.Store(true)
	st.rowsDone.Add(int64(read))
	st.chunksDone.Add(1)
	if last {
		st.done.Store(true)
	}
	if s.snap != nil {
		s.snap.Rows, s.snap.Chunks = st.rowsDone.Load(), st.chunksDone.Load()
		if last {
			s.snap.Rows, s.snap.Chunks = 0, 0
		}
	}
}

// binlogHead is the server's newest position in position notation.
func binlogHead(ctx context.Context, db *sql.DB, maria bool) (string, error) {
	qctx := ctx
	p, err := masterStatus(qctx, db)
	if err != nil {
		return "", err
	}
	head := position{File: p.File, Pos: p.Pos}
	if maria {
		var g sql.NullString
		if err := db.QueryRowContext(qctx, "SELECT @@gtid_binlog_pos").Scan(&g); err == nil {
			head.GTID = g.String
		}
	} else {
		var g sql.NullString
		if err := db.QueryRowContext(qctx, "SELECT @@gtid_executed").Scan(&g); err == nil {
			head.GTID = strings.ReplaceAll(g.String, "\n", "")
		}
	}
	b, err := json.Marshal(head)
	return string(b), err
}
