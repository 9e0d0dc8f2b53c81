package mysqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"sluice/connectors"
	"sluice/connectors/mysqlconn"
)

// Spec declares the mysql sink.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "mysql",
		Kind:        connectors.KindSink,
		Description: "MySQL / MariaDB target: batched upserts and deletes by primary key, idempotent under replay, or exactly-once through XA; creates missing tables",
		Options:     Options,
		Target: func(cfg connectors.Config) (connectors.SQLTarget, error) {
			set := parse(cfg)
			return connectors.SQLTarget{Addr: net.JoinHostPort(set.host, strconv.Itoa(set.port)), User: set.user, Password: set.password,
				Table: func(id connectors.TableID) connectors.TableID {
					if set.database != "" {
						id.Database = set.database
					}
					return id
				}}, nil
		},
		NewSink: func(cfg connectors.Config, env connectors.Env) (connectors.Sink, error) {
			return &Sink{set: parse(cfg), env: env, tables: map[connectors.TableID]*target{}}, nil
		},
		Check: func(ctx context.Context, cfg connectors.Config) error {
			db, err := open(parse(cfg))
			if err != nil {
				return err
			}
			defer db.Close()
			if err := ping(ctx, db, parse(cfg)); err != nil {
				return err
			}
			if parse(cfg).exactlyOnce {
				return checkXA(ctx, db)
			}
			return nil
		},
		CheckTables: func(_ context.Context, cfg connectors.Config, tables []connectors.TableInfo) error {
			if set := parse(cfg); set.exactlyOnce || set.appendKeyless {
				return nil
			}
			return connectors.RefuseKeyless(tables, keylessConsequence)
		},
	}
}

// Options of the mysql sink.
var Options = connectors.OptionSet{
	{Name: "host", Type: connectors.TypeString, Required: true, Description: "target server host"},
	{Name: "port", Type: connectors.TypeInt, Default: "3306", Min: connectors.Int64(1), Max: connectors.Int64(65535), Description: "target server port"},
	{Name: "user", Type: connectors.TypeString, Required: true, Description: "needs SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER on the target database"},
	{Name: "password", Type: connectors.TypeString, Secret: true, Description: "password of user"},
	{Name: "database", Type: connectors.TypeString, Description: "target database; default: the source table's database"},
	{Name: "batch.max_rows", Type: connectors.TypeInt, Default: "5000", Min: connectors.Int64(1), Max: connectors.Int64(1_000_000), Description: "rows buffered before a write"},
	{Name: "batch.interval", Type: connectors.TypeDuration, Default: "1s", MinDuration: time.Millisecond, Description: "longest time a change waits in the buffer"},
	{Name: "keyless", Type: connectors.TypeEnum, Enum: []string{"refuse", "append"}, Default: "refuse",
		Description: "at-least-once, a source table without a primary key: refuse it (a replay after a crash would insert its rows twice), or append and accept those duplicates"},
	{Name: "semantic", Type: connectors.TypeEnum, Default: "at-least-once", Enum: []string{"at-least-once", "exactly-once"},
		Description: "exactly-once: each checkpoint interval's changes, held in memory, are written in one XA transaction per task at the checkpoint and committed after the catalog commits it (tables without a key too)"},
	{Name: "xid.prefix", Type: connectors.TypeString, Default: "sluice",
		Description: "exactly-once: first part of the XA transaction ids; give each sluice cluster writing to one server its own"},
}

type settings struct {
	host, user, password, database string
	port                           int
	maxRows                        int
	interval                       time.Duration
	appendKeyless, exactlyOnce     bool
	xidPrefix                      string
}

func parse(cfg connectors.Config) settings {
	return settings{host: cfg.String("host"), user: cfg.String("user"), password: cfg.String("password"),
		database: cfg.String("database"), port: int(cfg.Int("port")), maxRows: int(cfg.Int("batch.max_rows")),
		interval: cfg.Duration("batch.interval"), appendKeyless: cfg.String("keyless") == "append",
		exactlyOnce: cfg.String("semantic") == "exactly-once", xidPrefix: cfg.String("xid.prefix")}
}

// keylessConsequence is what an at-least-once replay does to a table
// without a key.
const keylessConsequence = "an at-least-once replay after a crash would insert its rows twice at the target"

// sessionMode is the target session's sql_mode: strict, so a value the
// target column cannot hold (a character outside its character set, a
// number out of range) fails the write instead of being altered.
const sessionMode = "'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"

func (s settings) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

func open(s settings) (*sql.DB, error) {
	return mysqlconn.Open(mysqlconn.Config{Addr: s.addr(), User: s.user, Password: s.password, MaxOpen: 2,
		Params: map[string]string{"time_zone": "'+00:00'", "charset": "utf8mb4", "sql_mode": sessionMode}})
}

func ping(ctx context.Context, db *sql.DB, s settings) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return mysqlconn.Ping(ctx, db, s.addr(), s.user)
}

// target is one table at the target as the sink knows it.
type target struct {
	db, name string
	schema   *arrow.Schema
	cols     []string // data columns, in batch order (after __row_kind)
	pk       []int    // indexes into cols
	geom     []bool
	// zeroIfNull: a NOT NULL temporal column, whose zero value the source
	// delivers as NULL (Arrow has no zero date); written back as zero.
	zeroIfNull []any
	pending    map[string]*change
	order      []string
	// older holds the generations of the table buffered before schema
	// changes in this interval (exactly-once), written before this one;
	// keep, in an older generation, the columns the target still has.
	older []*target
	keep  []int
}

func (t *target) clear() { t.pending, t.order, t.older = map[string]*change{}, nil, nil }

type change struct {
	del  bool
	vals []any
}

func (t *target) quoted() string { return quote(t.db) + "." + quote(t.name) }

// Sink is one task's writer. At-least-once, a background flusher writes
// buffered changes that waited batch.interval while no new batch arrives;
// mu serialises it with Write and Flush. Exactly-once, see xa.go.
type Sink struct {
	set     settings
	env     connectors.Env
	db      *sql.DB
	mu      sync.Mutex
	tables  map[connectors.TableID]*target
	rows    int
	lastApp time.Time
	flusher *connectors.Flusher // at-least-once: writes what waited batch.interval
	// exactly-once
	conn     *sql.Conn // the task's XA connection
	prepared *prepared // the transaction awaiting Commit
	deferred []connectors.Batch
}

// Open connects to the target and starts the interval flusher.
func (s *Sink) Open(ctx context.Context) error {
	db, err := open(s.set)
	if err != nil {
		return err
	}
	s.db = db
	s.lastApp = time.Now()
	if err := ping(ctx, db, s.set); err != nil {
		return err
	}
	if s.set.exactlyOnce {
		return checkXA(ctx, db)
	}
	s.flusher = connectors.StartFlusher(&s.mu, max(s.set.interval/2, 10*time.Millisecond), time.Minute, func(ctx context.Context) error {
		if s.rows > 0 && time.Since(s.lastApp) >= s.set.interval {
			return s.flushLocked(ctx)
		}
		return nil
	})
	return nil
}

// Write buffers a batch's changes, deduplicated per key (the last change
// of a key wins), and writes when the buffer is full or old.
func (s *Sink) Write(ctx context.Context, b connectors.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flusher.Err(); err != nil {
		return err
	}
	if s.prepared != nil { // exactly-once: see xa.go
		s.holdBatch(b)
		return nil
	}
	return s.writeLocked(ctx, b)
}

func (s *Sink) writeLocked(ctx context.Context, b connectors.Batch) error {
	id := b.Table
	if s.set.database != "" {
		id.Database = s.set.database
	}
	t := s.tables[id]
	if t == nil || b.DDL != "" || !t.schema.Equal(b.Record.Schema()) {
		if t != nil && !s.set.exactlyOnce {
			if err := s.flushTable(ctx, t); err != nil {
				return err
			}
		}
		old := t
		var err error
		if t, err = s.ensure(ctx, id, b.Record.Schema(), b.DDL, old); err != nil {
			return err
		}
		if old != nil && s.set.exactlyOnce {
			t.older = old.generations(b.Record.Schema(), b.DDL)
		}
		s.tables[id] = t
	}
	kinds, err := connectors.RowKinds(b.Record)
	if err != nil {
		return err
	}
	n := int(b.Record.NumRows())
	cols := b.Record.Columns()[1:]
	for i := 0; i < n; i++ {
		vals := make([]any, len(cols))
		for j, c := range cols {
			vals[j] = valueAt(c, i)
			if vals[j] == nil && t.zeroIfNull[j] != nil {
				vals[j] = t.zeroIfNull[j]
			}
			if b, ok := vals[j].([]byte); ok && t.geom[j] {
				// MySQL's internal geometry: SRID (0), then the WKB.
				vals[j] = append([]byte{0, 0, 0, 0}, b...)
			}
		}
		k := connectors.RowKind(kinds.Value(i))
		del := k == connectors.Delete || k == connectors.UpdateBefore
		if len(t.pk) == 0 { // exactly-once, or keyless=append (see ensure)
			if del && !s.set.exactlyOnce {
				return fmt.Errorf("table %s has no primary key at the source, so a delete or update cannot be applied to %s", b.Table, t.quoted())
			}
			key := strconv.Itoa(len(t.order)) // append-only: every row is its own key
			t.pending[key] = &change{del: del, vals: vals}
			t.order = append(t.order, key)
			s.rows++
			continue
		}
		key := t.key(vals)
		if c, ok := t.pending[key]; ok {
			c.del, c.vals = del, vals
		} else {
			t.pending[key] = &change{del: del, vals: vals}
			t.order = append(t.order, key)
			s.rows++
		}
	}
	if !s.set.exactlyOnce && (s.rows >= s.set.maxRows || time.Since(s.lastApp) >= s.set.interval) {
		return s.flushLocked(ctx)
	}
	return nil
}

func (t *target) key(vals []any) string {
	var b strings.Builder
	for _, i := range t.pk {
		fmt.Fprintf(&b, "%T:%v\x00", vals[i], vals[i])
	}
	return b.String()
}

// Flush writes everything buffered, one transaction per table. In
// exactly-once mode PreCommit writes instead.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flusher.Err(); err != nil {
		return err
	}
	if s.set.exactlyOnce {
		return nil
	}
	return s.flushLocked(ctx)
}

// Recover, exactly-once: commits what checkpoint id prepared, rolls back
// the rest (xa.go). At-least-once has nothing to recover.
func (s *Sink) Recover(ctx context.Context, id uint64, state []byte) error {
	if !s.set.exactlyOnce {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recoverXA(ctx, id, state)
}

// PreCommit, exactly-once: writes the interval in an XA transaction and
// prepares it (xa.go). At-least-once, Flush wrote everything already.
func (s *Sink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	if !s.set.exactlyOnce {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.preCommitXA(ctx, id)
}

// Commit, exactly-once: commits the transaction prepared up to id.
func (s *Sink) Commit(ctx context.Context, id uint64, _ []byte) error {
	if !s.set.exactlyOnce {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitXA(ctx, id)
}

func (s *Sink) flushLocked(ctx context.Context) error {
	for _, t := range s.tables {
		if err := s.flushTable(ctx, t); err != nil {
			return err
		}
	}
	s.rows = 0
	s.lastApp = time.Now()
	return nil
}

func (s *Sink) flushTable(ctx context.Context, t *target) error {
	if len(t.order) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write %s: %w", t.quoted(), err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := writeAll(ctx, tx, t, s.set.maxRows); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit to %s: %w", t.quoted(), err)
	}
	t.clear()
	return nil
}

// Close releases the connection pool; buffered rows not flushed are
// dropped (the engine flushes at every checkpoint and at the end). A
// prepared XA transaction stays prepared at the target for Recover.
func (s *Sink) Close() error {
	s.flusher.Stop()
	s.flusher = nil
	s.dropConn()
	for _, b := range s.deferred {
		b.Release()
	}
	s.deferred = nil
	if s.db != nil {
		return s.db.Close()
	}
	return nil
}

func quote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
