package mysqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"sluice/connectors"
	"sluice/connectors/mysqlconn"
)

// Spec declares the mysql sink.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "mysql",
		Kind:        connectors.KindSink,
		Description: "MySQL / MariaDB target: batched upserts and deletes by primary key, idempotent under replay; creates missing tables",
		Options:     Options,
		NewSink: func(cfg connectors.Config, env connectors.Env) (connectors.Sink, error) {
			return &Sink{set: parse(cfg), env: env, tables: map[connectors.TableID]*target{}}, nil
		},
		Check: func(ctx context.Context, cfg connectors.Config) error {
			db, err := open(parse(cfg))
			if err != nil {
				return err
			}
			defer db.Close()
			return ping(ctx, db, parse(cfg))
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
}

type settings struct {
	host, user, password, database string
	port                           int
	maxRows                        int
	interval                       time.Duration
}

func parse(cfg connectors.Config) settings {
	return settings{host: cfg.String("host"), user: cfg.String("user"), password: cfg.String("password"),
		database: cfg.String("database"), port: int(cfg.Int("port")), maxRows: int(cfg.Int("batch.max_rows")),
		interval: cfg.Duration("batch.interval")}
}

func (s settings) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

func open(s settings) (*sql.DB, error) {
	return mysqlconn.Open(mysqlconn.Config{Addr: s.addr(), User: s.user, Password: s.password, MaxOpen: 2,
		Params: map[string]string{"time_zone": "'+00:00'", "charset": "utf8mb4", "sql_mode": "'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"}})
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
	pending  map[string]*change
	order    []string
}

type change struct {
	del  bool
	vals []any
}

func (t *target) quoted() string { return quote(t.db) + "." + quote(t.name) }

// Sink is one task's writer. A background flusher writes buffered changes
// that waited batch.interval while no new batch arrives; mu serialises it
// with Write and Flush.
type Sink struct {
	set     settings
	env     connectors.Env
	db      *sql.DB
	mu      sync.Mutex
	tables  map[connectors.TableID]*target
	rows    int
	lastApp time.Time
	bgErr   error // a failed background flush, reported by the next call
	stop    chan struct{}
	done    chan struct{}
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
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.flusher()
	return nil
}

func (s *Sink) flusher() {
	defer close(s.done)
	tick := time.NewTicker(max(s.set.interval/2, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.mu.Lock()
			if s.bgErr == nil && s.rows > 0 && time.Since(s.lastApp) >= s.set.interval {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				s.bgErr = s.flushLocked(ctx)
				cancel()
			}
			s.mu.Unlock()
		}
	}
}

// Write buffers a batch's changes, deduplicated per key (the last change
// of a key wins), and writes when the buffer is full or old.
func (s *Sink) Write(ctx context.Context, b connectors.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgErr != nil {
		return s.bgErr
	}
	id := b.Table
	if s.set.database != "" {
		id.Database = s.set.database
	}
	t := s.tables[id]
	if t == nil || b.DDL != "" || !t.schema.Equal(b.Record.Schema()) {
		if t != nil {
			if err := s.flushTable(ctx, t); err != nil {
				return err
			}
		}
		var err error
		if t, err = s.ensure(ctx, id, b.Record.Schema(), b.DDL, t); err != nil {
			return err
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
			if b, ok := vals[j].([]byte); ok && t.geom[j] {
				// MySQL's internal geometry: SRID (0), then the WKB.
				vals[j] = append([]byte{0, 0, 0, 0}, b...)
			}
		}
		k := connectors.RowKind(kinds.Value(i))
		del := k == connectors.Delete || k == connectors.UpdateBefore
		if len(t.pk) == 0 {
			if del {
				return fmt.Errorf("table %s has no primary key at the source, so a delete or update cannot be applied to %s", b.Table, t.quoted())
			}
			key := strconv.Itoa(len(t.order)) // append-only: every row is its own key
			t.pending[key] = &change{vals: vals}
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
	if s.rows >= s.set.maxRows || time.Since(s.lastApp) >= s.set.interval {
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

// Flush writes everything buffered, one transaction per table.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgErr != nil {
		return s.bgErr
	}
	return s.flushLocked(ctx)
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
	var dels, ups [][]any
	for _, k := range t.order {
		c := t.pending[k]
		if c.del {
			dels = append(dels, c.vals)
		} else {
			ups = append(ups, c.vals)
		}
	}
	perStmt := 60000 / (len(t.cols) + 1)
	if perStmt > s.set.maxRows {
		perStmt = s.set.maxRows
	}
	for len(dels) > 0 {
		n := min(len(dels), perStmt)
		if err := execDelete(ctx, tx, t, dels[:n]); err != nil {
			return err
		}
		dels = dels[n:]
	}
	for len(ups) > 0 {
		n := min(len(ups), perStmt)
		if err := execUpsert(ctx, tx, t, ups[:n]); err != nil {
			return err
		}
		ups = ups[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit to %s: %w", t.quoted(), err)
	}
	t.pending, t.order = map[string]*change{}, nil
	return nil
}

func execDelete(ctx context.Context, tx *sql.Tx, t *target, rows [][]any) error {
	keyCols := make([]string, len(t.pk))
	for i, k := range t.pk {
		keyCols[i] = quote(t.cols[k])
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(t.pk)), ",") + ")"
	var b strings.Builder
	b.WriteString("DELETE FROM " + t.quoted() + " WHERE (" + strings.Join(keyCols, ",") + ") IN (")
	args := make([]any, 0, len(rows)*len(t.pk))
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
		for _, k := range t.pk {
			args = append(args, r[k])
		}
	}
	b.WriteByte(')')
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("delete from %s: %w", t.quoted(), err)
	}
	return nil
}

func execUpsert(ctx context.Context, tx *sql.Tx, t *target, rows [][]any) error {
	cols := make([]string, len(t.cols))
	marks := make([]string, len(t.cols))
	var upd []string
	for i, c := range t.cols {
		cols[i] = quote(c)
		marks[i] = "?"
		upd = append(upd, quote(c)+"=VALUES("+quote(c)+")")
	}
	tuple := "(" + strings.Join(marks, ",") + ")"
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.quoted() + " (" + strings.Join(cols, ",") + ") VALUES ")
	args := make([]any, 0, len(rows)*len(t.cols))
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
		args = append(args, r...)
	}
	if len(t.pk) > 0 {
		b.WriteString(" ON DUPLICATE KEY UPDATE " + strings.Join(upd, ","))
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("upsert into %s: %w", t.quoted(), err)
	}
	return nil
}

// Close releases the connection pool; buffered rows not flushed are
// dropped (the engine flushes at every checkpoint and at the end).
func (s *Sink) Close() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	if s.db != nil {
		return s.db.Close()
	}
	return nil
}

func quote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// valueAt converts one Arrow value to a database/sql argument that MySQL
// reads back as the same value (the session time zone is UTC).
func valueAt(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Decimal256:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal256Type).Scale)
	case *array.Date32:
		return time.Unix(0, 0).UTC().AddDate(0, 0, int(a.Value(i))).Format("2006-01-02")
	case *array.Duration:
		return formatTime(int64(a.Value(i)))
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC().Format("2006-01-02 15:04:05.999999")
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return append([]byte{}, a.Value(i)...) // never nil: nil is NULL to the driver
	case *array.Boolean:
		return a.Value(i)
	}
	return a.ValueStr(i)
}

// formatTime renders microseconds as MySQL TIME text.
func formatTime(us int64) string {
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	s := us / 1_000_000
	return fmt.Sprintf("%s%02d:%02d:%02d.%06d", sign, s/3600, s/60%60, s%60, us%1_000_000)
}

// ensure makes the target table match schema: created when missing;
// renamed, added, dropped and retyped columns when a DDL says the source
// changed.
func (s *Sink) ensure(ctx context.Context, id connectors.TableID, schema *arrow.Schema, ddl string, old *target) (*target, error) {
	t := &target{db: id.Database, name: id.Table, schema: schema, pending: map[string]*change{}}
	fields := schema.Fields()[1:]
	byName := map[string]int{}
	for i, f := range fields {
		t.cols = append(t.cols, f.Name)
		byName[strings.ToLower(f.Name)] = i
		t.geom = append(t.geom, isGeometry(sourceType(f)))
	}
	pkNames, err := connectors.PrimaryKey(schema)
	if err != nil {
		return nil, err
	}
	for _, n := range pkNames {
		i, ok := byName[strings.ToLower(n)]
		if !ok {
			return nil, fmt.Errorf("%w: primary key column %q is not in the batch", connectors.ErrBadBatch, n)
		}
		t.pk = append(t.pk, i)
	}
	existing, err := s.columns(ctx, t)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		var defs []string
		for i, f := range fields {
			defs = append(defs, quote(f.Name)+" "+columnType(f, slices.Contains(t.pk, i)))
		}
		if len(pkNames) > 0 {
			q := make([]string, len(pkNames))
			for i, n := range pkNames {
				q[i] = quote(n)
			}
			defs = append(defs, "PRIMARY KEY ("+strings.Join(q, ",")+")")
		}
		if _, err := s.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quote(t.db)); err != nil {
			return nil, fmt.Errorf("create database %s: %w", quote(t.db), err)
		}
		stmt := "CREATE TABLE IF NOT EXISTS " + t.quoted() + " (" + strings.Join(defs, ", ") + ")"
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create target table: %s: %w", stmt, err)
		}
		return t, nil
	}
	if ddl == "" && old == nil {
		return t, s.requireColumns(t, existing)
	}
	// The source changed: renames first (they keep data), then the diff.
	var alters []string
	for _, r := range connectors.RenamedColumns(ddl) {
		from, to := r[0], r[1]
		if _, has := existing[strings.ToLower(from)]; has {
			if _, clash := existing[strings.ToLower(to)]; !clash {
				alters = append(alters, "RENAME COLUMN "+quote(from)+" TO "+quote(to))
				existing[strings.ToLower(to)] = existing[strings.ToLower(from)]
				delete(existing, strings.ToLower(from))
			}
		}
	}
	for i, f := range fields {
		want := columnType(f, slices.Contains(t.pk, i))
		have, ok := existing[strings.ToLower(f.Name)]
		switch {
		case !ok:
			alters = append(alters, "ADD COLUMN "+quote(f.Name)+" "+want+placement(fields, i))
		case sourceType(f) != "" && !strings.EqualFold(have, sourceType(f)):
			alters = append(alters, "MODIFY COLUMN "+quote(f.Name)+" "+want)
		}
	}
	// Drop only what the source's statement drops: a schema announced for
	// rows replayed from before an ADD COLUMN lacks that column too.
	for name := range existing {
		if _, ok := byName[name]; !ok && connectors.DropsColumn(ddl, name) {
			alters = append(alters, "DROP COLUMN "+quote(name))
		}
	}
	if len(alters) > 0 {
		stmt := "ALTER TABLE " + t.quoted() + " " + strings.Join(alters, ", ")
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("follow schema change on %s: %s: %w", t.quoted(), stmt, err)
		}
		s.log("applied schema change", "table", t.quoted(), "statement", stmt)
	}
	return t, nil
}

// placement keeps an added column where the source has it.
func placement(fields []arrow.Field, i int) string {
	if i == 0 {
		return " FIRST"
	}
	return " AFTER " + quote(fields[i-1].Name)
}

func (s *Sink) log(msg string, args ...any) {
	if s.env.Logger != nil {
		s.env.Logger.Info(msg, args...)
	}
}

func (s *Sink) requireColumns(t *target, existing map[string]string) error {
	var missing []string
	for _, c := range t.cols {
		if _, ok := existing[strings.ToLower(c)]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		// A restart after an ADD COLUMN the sink had not applied yet:
		// add them (never drop without a DDL from the source).
		var alters []string
		for i, f := range t.schema.Fields()[1:] {
			if slices.Contains(missing, f.Name) {
				alters = append(alters, "ADD COLUMN "+quote(f.Name)+" "+columnType(f, slices.Contains(t.pk, i))+placement(t.schema.Fields()[1:], i))
			}
		}
		stmt := "ALTER TABLE " + t.quoted() + " " + strings.Join(alters, ", ")
		if _, err := s.db.Exec(stmt); err != nil {
			return fmt.Errorf("target %s lacks columns %v: %s: %w", t.quoted(), missing, stmt, err)
		}
	}
	return nil
}

// columns returns the target table's columns (lower-case name → type),
// or nil when the table does not exist.
func (s *Sink) columns(ctx context.Context, t *target) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=?", t.db, t.name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[string]string
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.ToLower(n)] = typ
	}
	return out, rows.Err()
}

func sourceType(f arrow.Field) string {
	v, _ := f.Metadata.GetValue(connectors.MetaSourceType)
	return v
}

func isGeometry(typ string) bool {
	switch strings.ToLower(typ) {
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return true
	}
	return false
}

// columnType is the target column definition of a field: the source's own
// type when the source said it, else one derived from the Arrow type.
func columnType(f arrow.Field, key bool) string {
	typ := sourceType(f)
	if typ == "" {
		typ = fromArrow(f.Type, key)
	}
	if f.Nullable && !key {
		return typ + " NULL"
	}
	return typ + " NOT NULL"
}

func fromArrow(t arrow.DataType, key bool) string {
	switch t := t.(type) {
	case *arrow.Int8Type:
		return "TINYINT"
	case *arrow.Int16Type:
		return "SMALLINT"
	case *arrow.Int32Type:
		return "INT"
	case *arrow.Int64Type:
		return "BIGINT"
	case *arrow.Uint8Type:
		return "TINYINT UNSIGNED"
	case *arrow.Uint16Type:
		return "SMALLINT UNSIGNED"
	case *arrow.Uint32Type:
		return "INT UNSIGNED"
	case *arrow.Uint64Type:
		return "BIGINT UNSIGNED"
	case *arrow.Float32Type:
		return "FLOAT"
	case *arrow.Float64Type:
		return "DOUBLE"
	case *arrow.BooleanType:
		return "BOOLEAN"
	case *arrow.Decimal128Type:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *arrow.Decimal256Type:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *arrow.Date32Type:
		return "DATE"
	case *arrow.DurationType:
		return "TIME(6)"
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "TIMESTAMP(6)"
		}
		return "DATETIME(6)"
	case *arrow.StringType:
		if key {
			return "VARCHAR(255)"
		}
		return "LONGTEXT"
	case *arrow.BinaryType:
		if key {
			return "VARBINARY(255)"
		}
		return "LONGBLOB"
	}
	return "LONGTEXT"
}
