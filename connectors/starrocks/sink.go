package starrocks

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"sluice/connectors"
	"sluice/connectors/mysqlconn"
)

// Spec declares the starrocks sink.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "starrocks",
		Kind:        connectors.KindSink,
		Description: "StarRocks Stream Load (JSON, __op upserts/deletes); exactly-once through the Stream Load transaction API",
		Options:     Options,
		NewSink: func(cfg connectors.Config, env connectors.Env) (connectors.Sink, error) {
			return newSink(cfg, env), nil
		},
	}
}

// Options of the starrocks sink.
var Options = connectors.OptionSet{
	{Name: "fe", Type: connectors.TypeList, Required: true, Description: "FE HTTP addresses host:port, comma-separated; tried in order"},
	{Name: "query_port", Type: connectors.TypeInt, Default: "9030", Min: connectors.Int64(1), Max: connectors.Int64(65535), Description: "FE MySQL-protocol port, for creating tables"},
	{Name: "user", Type: connectors.TypeString, Required: true, Description: "needs INSERT on the target tables (CREATE TABLE for save_mode create_if_missing)"},
	{Name: "password", Type: connectors.TypeString, Secret: true, Description: "password of user"},
	{Name: "database", Type: connectors.TypeString, Default: "${database}", Description: "target database; ${database} and ${table} name the source's"},
	{Name: "table", Type: connectors.TypeString, Default: "${table}", Description: "target table; ${database} and ${table} name the source's (after transforms)"},
	{Name: "format", Type: connectors.TypeEnum, Default: "json", Enum: []string{"json", "csv"},
		Description: "json: objects with __op; csv: tab-separated, strings enclosed in \" (needs StarRocks 3.0+ for enclose), NULL as \\N"},
	{Name: "batch.max_rows", Type: connectors.TypeInt, Default: "500000", Min: connectors.Int64(1), Description: "rows per load"},
	{Name: "batch.max_bytes", Type: connectors.TypeInt, Default: "94371840", Min: connectors.Int64(1024), Description: "bytes per load"},
	{Name: "batch.interval", Type: connectors.TypeDuration, Default: "30s", MinDuration: 100 * time.Millisecond,
		Description: "at-least-once: longest time rows wait; StarRocks wants at most one load per table every 30-60 s in production"},
	{Name: "semantic", Type: connectors.TypeEnum, Default: "at-least-once", Enum: []string{"at-least-once", "exactly-once"},
		Description: "exactly-once: one transaction per table per checkpoint, committed after the catalog commits it"},
	{Name: "max_retries", Type: connectors.TypeInt, Default: "3", Min: connectors.Int64(0), Max: connectors.Int64(100), Description: "retries of a failed request, with the same label"},
	{Name: "retry.backoff", Type: connectors.TypeDuration, Default: "1s", MinDuration: time.Millisecond, Description: "first retry delay; doubles"},
	{Name: "http.timeout", Type: connectors.TypeDuration, Default: "60s", MinDuration: time.Second, Description: "per HTTP request"},
	{Name: "label.prefix", Type: connectors.TypeString, Default: "sluice", Description: "start of every load label"},
	{Name: "batch.carry_bytes", Type: connectors.TypeInt, Default: "1048576", Min: connectors.Int64(0),
		Description: "rows of tables not yet due (waited less than batch.interval) are kept in the checkpoint, up to this many bytes per task, instead of loaded at every checkpoint; 0 loads everything at every checkpoint"},
	{Name: "txn.max_open", Type: connectors.TypeInt, Default: "50", Min: connectors.Int64(1), Max: connectors.Int64(10000),
		Description: "exactly-once: most transactions a task keeps running per database (StarRocks allows 100 per database by default); further tables wait for the next checkpoint"},
	{Name: "partial_update", Type: connectors.TypeBool, Default: "false", Description: "send only the batch's columns (primary-key tables)"},
	{Name: "save_mode", Type: connectors.TypeEnum, Default: "create_if_missing", Enum: []string{"create_if_missing", "error_if_missing", "ignore"},
		Description: "create_if_missing: CREATE TABLE … PRIMARY KEY over query_port when the table is missing"},
}

type settings struct {
	fes                  []string
	queryPort            int
	user, password       string
	database, table      string
	maxRows, maxBytes    int
	interval             time.Duration
	exactlyOnce, partial bool
	retries              int
	backoff, timeout     time.Duration
	prefix, saveMode     string
	csv                  bool
	carryBytes, maxOpen  int
}

func parse(cfg connectors.Config) settings {
	return settings{fes: cfg.List("fe"), queryPort: int(cfg.Int("query_port")), user: cfg.String("user"), password: cfg.String("password"),
		database: cfg.String("database"), table: cfg.String("table"), maxRows: int(cfg.Int("batch.max_rows")),
		maxBytes: int(cfg.Int("batch.max_bytes")), interval: cfg.Duration("batch.interval"),
		exactlyOnce: cfg.String("semantic") == "exactly-once", partial: cfg.Bool("partial_update"),
		retries: int(cfg.Int("max_retries")), backoff: cfg.Duration("retry.backoff"), timeout: cfg.Duration("http.timeout"),
		prefix: cfg.String("label.prefix"), saveMode: cfg.String("save_mode"), csv: cfg.String("format") == "csv",
		carryBytes: int(cfg.Int("batch.carry_bytes")), maxOpen: int(cfg.Int("txn.max_open"))}
}

// target is one StarRocks table and the rows waiting for it.
type target struct {
	db, table string
	pk        []string
	cols      []string
	types     map[string]string // lower-case column → StarRocks type
	rows      map[string]int    // key → index in buf (the last change of a key wins)
	buf       [][]byte          // encoded rows: JSON objects or CSV lines
	bytes     int
	since     time.Time
	txn       string // exactly-once: the open transaction's label
	loaded    bool   // exactly-once: rows were loaded into txn
}

// Sink writes to StarRocks. With semantic at-least-once every flush is a
// Stream Load with a fresh label (reused on retries); with exactly-once
// the rows between two checkpoints go into one transaction per table,
// prepared at the barrier and committed when the catalog has committed the
// checkpoint.
type Sink struct {
	set     settings
	env     connectors.Env
	c       *client
	targets map[connectors.TableID]*target
	seq     int // at-least-once: loads so far (labels)
	run     string

	// at-least-once: a timer sends tables whose rows waited batch.interval
	// when no batch arrives; mu serialises it with the engine's calls.
	mu    sync.Mutex
	bgErr error
	stop  chan struct{}
	done  chan struct{}

	// exactly-once
	base     uint64          // checkpoint this run recovered from
	k        int             // barriers so far in this run
	prepared []preparedBatch // prepared, not yet committed
	known    map[string][2]string
	open     map[string]int // database → our transactions begun and not yet committed
	// labels crashed runs may have left prepared: <base>_<from…to>
	probes []probe
	warned bool // the carry budget was exceeded (logged once)
}

// probe is a series of labels to look for after a restart.
type probe struct {
	base     uint64
	from, to int // to: probe at least this far; then until a label is unknown
}

type preparedBatch struct {
	ID     uint64      `json:"id"`
	Labels [][3]string `json:"labels"` // db, table, label
}

// state is what a checkpoint stores for a task (exactly-once).
type state struct {
	Base     uint64          `json:"base"`
	K        int             `json:"k"`
	Tables   [][2]string     `json:"tables"`
	Prepared []preparedBatch `json:"prepared"`
	Carry    []carried       `json:"carry,omitempty"`
}

// carried is a table's buffer kept in a checkpoint instead of loaded (the
// table was not due yet). Rows and keys are bytes: they need not be UTF-8.
type carried struct {
	Source [2]string `json:"source"` // the source table (database, table)
	DB     string    `json:"db"`
	Table  string    `json:"table"`
	PK     []string  `json:"pk,omitempty"`
	Cols   []string  `json:"cols"`
	Rows   [][]byte  `json:"rows"`
	Keys   [][]byte  `json:"keys,omitempty"` // per row, for primary-key tables
	Since  int64     `json:"since"`          // when the oldest row was buffered (Unix ns): restarts do not reset its wait
}

func newSink(cfg connectors.Config, env connectors.Env) *Sink {
	set := parse(cfg)
	return &Sink{set: set, env: env, targets: map[connectors.TableID]*target{}, known: map[string][2]string{}, open: map[string]int{},
		c: newClient(set.fes, set.user, set.password, set.timeout, set.retries, set.backoff)}
}

// Open prepares the run; at-least-once starts the interval timer.
func (s *Sink) Open(ctx context.Context) error {
	s.run = fmt.Sprintf("a%d", s.env.Attempt)
	if !s.set.exactlyOnce {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.timer()
	}
	return nil
}

func (s *Sink) timer() {
	defer close(s.done)
	tick := time.NewTicker(max(s.set.interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.mu.Lock()
			for _, t := range s.targets {
				if s.bgErr == nil && s.due(t) {
					ctx, cancel := context.WithTimeout(context.Background(), s.set.timeout*time.Duration(s.set.retries+2))
					s.bgErr = s.flushTarget(ctx, t)
					cancel()
				}
			}
			s.mu.Unlock()
		}
	}
}

var labelChars = regexp.MustCompile(`[^A-Za-z0-9_]`)

// label builds a load label: deterministic, [A-Za-z0-9_], at most 128
// characters, and unique per job incarnation, pipeline and subtask: the
// job id is in it (names are reused: a dropped and re-created job must not
// find its predecessor's labels "already loaded"). Parts that had to be
// rewritten or cut are followed by a hash of the exact parts, so two
// different tables never share a label.
func (s *Sink) label(parts ...string) string {
	all := append([]string{s.set.prefix, s.env.Job, "j" + strconv.FormatUint(s.env.JobID, 10),
		"p" + strconv.Itoa(s.env.Pipeline), strconv.Itoa(s.env.Subtask)}, parts...)
	l := labelChars.ReplaceAllString(strings.Join(all, "_"), "_")
	if l != strings.Join(all, "_") || len(l) > 128 {
		h := sha1.Sum([]byte(strings.Join(all, "\x00")))
		l = l[:min(len(l), 87)] + "_" + hex.EncodeToString(h[:])
	}
	return l
}

func placeholder(pattern string, id connectors.TableID) string {
	return strings.NewReplacer("${database}", id.Database, "${table}", id.Table).Replace(pattern)
}

// Write encodes a batch's rows as JSON with __op, keeping the last change
// per key.
func (s *Sink) Write(ctx context.Context, b connectors.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgErr != nil {
		return s.bgErr
	}
	t, err := s.target(ctx, b)
	if err != nil {
		return err
	}
	kinds, err := connectors.RowKinds(b.Record)
	if err != nil {
		return err
	}
	fields := b.Record.Schema().Fields()
	// Column indexes of the key, and each column's JSON name, once per batch.
	pkIdx := make([]int, 0, len(t.pk))
	for _, c := range t.pk {
		for j := 1; j < len(fields); j++ {
			if fields[j].Name == c {
				pkIdx = append(pkIdx, j)
			}
		}
	}
	names := make([][]byte, len(fields))
	for j := 1; j < len(fields); j++ {
		names[j], _ = json.Marshal(fields[j].Name)
	}
	// CSV is positional: the record's column of each of t.cols.
	var colIdx []int
	if s.set.csv {
		for _, c := range t.cols {
			j := b.Record.Schema().FieldIndices(c)
			if len(j) == 0 {
				return fmt.Errorf("%w: column %q is not in the batch", connectors.ErrBadBatch, c)
			}
			colIdx = append(colIdx, j[0])
		}
	}
	var key, row []byte
	for i := 0; i < int(b.Record.NumRows()); i++ {
		k := connectors.RowKind(kinds.Value(i))
		del := k == connectors.Delete || k == connectors.UpdateBefore
		if len(t.pk) == 0 && del {
			continue // a duplicate-key table keeps history: deletes do not apply
		}
		key = key[:0]
		for _, j := range pkIdx {
			key = appendJSON(key, b.Record.Column(j), i)
			key = append(key, 0)
		}
		if s.set.csv {
			row = appendCSVRow(row[:0], b.Record, colIdx, i, del)
		} else {
			row = append(row[:0], '{')
			for j := 1; j < len(fields); j++ {
				if del && !slices.Contains(pkIdx, j) {
					continue // a delete needs only the key
				}
				if len(row) > 1 {
					row = append(row, ',')
				}
				row = append(append(row, names[j]...), ':')
				row = appendJSON(row, b.Record.Column(j), i)
			}
			if del {
				row = append(row, `,"__op":1}`...)
			} else {
				row = append(row, `,"__op":0}`...)
			}
		}
		data := append([]byte(nil), row...)
		if t.rows == nil {
			t.rows, t.since = map[string]int{}, time.Now()
		}
		if idx, ok := t.rows[string(key)]; ok && len(t.pk) > 0 {
			t.bytes += len(data) - len(t.buf[idx])
			t.buf[idx] = data
		} else {
			if len(t.pk) > 0 {
				t.rows[string(key)] = len(t.buf)
			}
			t.buf = append(t.buf, data)
			t.bytes += len(data)
		}
	}
	if len(t.buf) >= s.set.maxRows || t.bytes >= s.set.maxBytes || (!s.set.exactlyOnce && s.due(t)) {
		if s.set.exactlyOnce && t.txn == "" && s.open[t.db] >= s.set.maxOpen {
			return nil // no transaction free in this database: the rows wait for the barrier
		}
		return s.flushTarget(ctx, t)
	}
	return nil
}

// due reports whether t's oldest buffered row waited batch.interval.
func (s *Sink) due(t *target) bool {
	return len(t.buf) > 0 && time.Since(t.since) >= s.set.interval
}

// target resolves (and on first sight prepares) the table of a batch.
func (s *Sink) target(ctx context.Context, b connectors.Batch) (*target, error) {
	id := b.Table
	if t := s.targets[id]; t != nil && b.DDL == "" {
		return t, nil
	}
	t := s.targets[id]
	if t == nil {
		t = &target{db: placeholder(s.set.database, id), table: placeholder(s.set.table, id)}
		s.targets[id] = t
	}
	schema := b.Record.Schema()
	var cols []string
	for _, f := range schema.Fields()[1:] {
		cols = append(cols, f.Name)
	}
	if len(t.buf) > 0 && !slices.Equal(cols, t.cols) {
		// Buffered rows were encoded for the old column list (CSV is
		// positional; partial updates name the columns): send them first.
		if err := s.flushTarget(ctx, t); err != nil {
			return nil, err
		}
	}
	old, oldTypes := t.cols, t.types
	t.cols, t.types = cols, map[string]string{}
	isKey := map[string]bool{}
	pk, err := connectors.PrimaryKey(schema)
	if err != nil {
		return nil, err
	}
	t.pk = pk
	for _, k := range t.pk {
		isKey[strings.ToLower(k)] = true
	}
	for _, f := range schema.Fields()[1:] {
		t.types[strings.ToLower(f.Name)] = srType(f.Type, isKey[strings.ToLower(f.Name)])
	}
	if _, seen := s.known[t.db+"."+t.table]; !seen && s.set.exactlyOnce && len(s.probes) > 0 {
		if err := s.rollbackLeftovers(ctx, t.db, t.table); err != nil {
			return nil, err
		}
	}
	s.known[t.db+"."+t.table] = [2]string{t.db, t.table}
	if s.set.saveMode == "ignore" {
		return t, nil
	}
	if len(old) == 0 {
		// First sight (also after a restart, when the first batch may be a
		// replayed schema change): create if missing, follow a DDL.
		if err := s.ensureTable(ctx, t, schema); err != nil || b.DDL == "" {
			return t, err
		}
	}
	return t, s.evolve(ctx, t, schema.Fields()[1:], old, oldTypes, b.DDL)
}

// evolve follows a source schema change: renamed columns are renamed
// (RENAME COLUMN, StarRocks 3.3+), new ones added, retyped non-key ones
// modified, and columns the source statement drops are dropped. Rows
// buffered under the old schema were sent before (target).
//
// The diff is against the table's columns as StarRocks lists them, not
// against the previous batch: after a restart, rows replayed from before
// an ADD COLUMN arrive without a column the table already has.
func (s *Sink) evolve(ctx context.Context, t *target, fields []arrow.Field, old []string, oldTypes map[string]string, ddl string) error {
	db, addr, err := s.queryDB()
	if err != nil {
		return err
	}
	defer db.Close()
	had := map[string]string{} // lower-case name → the source's previous type ("" unknown)
	rows, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?", t.db, t.table)
	if err != nil {
		return fmt.Errorf("StarRocks query port %s: columns of %s.%s: %w", addr, t.db, t.table, err)
	}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return err
		}
		had[strings.ToLower(name)] = oldTypes[strings.ToLower(name)]
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(had) == 0 { // no column list (not StarRocks): the previous batch's
		for _, c := range old {
			had[strings.ToLower(c)] = oldTypes[strings.ToLower(c)]
		}
	}
	isKey := map[string]bool{}
	for _, k := range t.pk {
		isKey[strings.ToLower(k)] = true
	}
	// had holds the source's previous type of each column (unknown: ""),
	// which is what a retype is judged by.
	retype := func(f arrow.Field, prev string) bool {
		lc := strings.ToLower(f.Name)
		return prev != "" && prev != t.types[lc] && !isKey[lc]
	}
	var alters []string
	for _, c := range connectors.DiffColumns(had, fields, ddl, retype) {
		lc := strings.ToLower(c.Name)
		switch c.Op {
		case connectors.RenameColumn:
			alters = append(alters, "RENAME COLUMN `"+c.From+"` TO `"+c.Name+"`")
		case connectors.AddColumn:
			alters = append(alters, "ADD COLUMN `"+c.Name+"` "+t.types[lc]+" NULL"+srDefault(c.Field))
		case connectors.ModifyColumn:
			alters = append(alters, "MODIFY COLUMN `"+c.Name+"` "+t.types[lc]+" NULL")
		case connectors.DropColumn:
			alters = append(alters, "DROP COLUMN `"+c.Name+"`")
		}
	}
	if len(alters) == 0 {
		return nil
	}
	if err := s.flushTarget(ctx, t); err != nil {
		return err
	}
	for _, a := range alters { // StarRocks runs one schema change per table at a time
		stmt := "ALTER TABLE `" + t.db + "`.`" + t.table + "` " + a
		// A type change is an asynchronous schema-change job; the next
		// statement is refused until it ends, so each is retried.
		if err := s.c.retry(ctx, func() error {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%w: StarRocks query port %s: %s: %v", errTransient, addr, stmt, err)
			}
			return nil
		}); err != nil {
			return err
		}
		if s.env.Logger != nil {
			s.env.Logger.Info("starrocks: followed a source schema change", "statement", stmt)
		}
	}
	return nil
}

// srDefault renders a source column's default for StarRocks' ADD COLUMN,
// which fills existing rows with it (the binlog has no rows for them): a
// literal as a quoted string, CURRENT_TIMESTAMP as itself; NULL, or an
// expression StarRocks cannot evaluate, as nothing.
func srDefault(f arrow.Field) string {
	d, ok := f.Metadata.GetValue(connectors.MetaDefault)
	if !ok || strings.EqualFold(d, "NULL") {
		return ""
	}
	if strings.HasPrefix(strings.ToLower(d), "current_timestamp") {
		return " DEFAULT CURRENT_TIMESTAMP"
	}
	if len(d) >= 2 && d[0] == '\'' && d[len(d)-1] == '\'' {
		d = strings.ReplaceAll(d[1:len(d)-1], "''", "'")
	} else if _, err := strconv.ParseFloat(d, 64); err != nil {
		return "" // an expression
	}
	return " DEFAULT \"" + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(d) + "\""
}

// queryDB opens the FE's MySQL port.
func (s *Sink) queryDB() (*sql.DB, string, error) {
	host, _, err := net.SplitHostPort(s.set.fes[0])
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(s.set.queryPort))
	db, err := mysqlconn.Open(mysqlconn.Config{Addr: addr, User: s.set.user, Password: s.set.password, InterpolateParams: true})
	return db, addr, err
}

// body is the buffered rows: a JSON array, or CSV lines.
func (s *Sink) body(t *target) []byte {
	b := make([]byte, 0, t.bytes+len(t.buf)+2)
	if !s.set.csv {
		b = append(b, '[')
	}
	for i, r := range t.buf {
		if i > 0 {
			if s.set.csv {
				b = append(b, '\n')
			} else {
				b = append(b, ',')
			}
		}
		b = append(b, r...)
	}
	if !s.set.csv {
		b = append(b, ']')
	}
	return b
}

func (s *Sink) loadHeaders(t *target, label string) map[string]string {
	h := map[string]string{"strict_mode": "true", "max_filter_ratio": "0", "label": label, "db": t.db, "table": t.table,
		"timeout": "600"}
	if s.set.csv {
		// Documented CSV parameters: hex separators, and enclose so that
		// strings may hold tabs, newlines and quotes (doubled inside).
		h["format"], h["column_separator"], h["row_delimiter"], h["enclose"] = "csv", `\x09`, `\x0a`, `"`
		h["columns"] = "`" + strings.Join(t.cols, "`,`") + "`,__op"
	} else {
		h["format"], h["strip_outer_array"], h["ignore_json_size"] = "json", "true", "true"
	}
	if s.set.partial && len(t.pk) > 0 {
		h["partial_update"] = "true"
		h["columns"] = "`" + strings.Join(t.cols, "`,`") + "`,__op"
	}
	return h
}

func (t *target) reset() {
	t.rows, t.buf, t.bytes = nil, nil, 0
}

// flushTarget sends t's buffer: a Stream Load (at-least-once) or a load
// into the open transaction (exactly-once).
func (s *Sink) flushTarget(ctx context.Context, t *target) error {
	if len(t.buf) == 0 {
		return nil
	}
	if s.set.exactlyOnce {
		if err := s.txnLoad(ctx, t); err != nil {
			return err
		}
		t.reset()
		return nil
	}
	s.seq++
	label := s.label(t.db, t.table, s.run, strconv.Itoa(s.seq))
	body := s.body(t)
	err := s.c.retry(ctx, func() error {
		r, err := s.c.do(ctx, http.MethodPut, "/api/"+t.db+"/"+t.table+"/_stream_load", s.loadHeaders(t, label), body)
		if err != nil {
			return err
		}
		return s.loadOutcome(ctx, t, label, r)
	})
	if err != nil {
		return fmt.Errorf("stream load %s.%s (label %s): %w", t.db, t.table, label, err)
	}
	t.reset()
	return nil
}

// loadOutcome reads a Stream Load answer: done, retry (same label), or fail.
func (s *Sink) loadOutcome(ctx context.Context, t *target, label string, r response) error {
	switch r.Status {
	case "Success", "OK", "Publish Timeout": // Publish Timeout: committed, visible later
		return nil
	case "Label Already Exists":
		switch strings.ToUpper(r.ExistingJobStatus) {
		case "FINISHED", "VISIBLE", "COMMITTED":
			return nil // an earlier try of this very load succeeded
		case "RUNNING", "PREPARE", "PREPARED", "":
			st, err := s.c.loadState(ctx, t.db, label)
			if err != nil {
				return err
			}
			switch st {
			case "VISIBLE", "COMMITTED":
				return nil
			case "ABORTED", "UNKNOWN":
				return fmt.Errorf("label %s ended %s", label, st)
			}
			return fmt.Errorf("%w: label %s still %s", errTransient, label, st)
		}
		return fmt.Errorf("label %s exists as %s", label, r.ExistingJobStatus)
	}
	msg := r.Message
	if txt := s.c.errorText(ctx, r.ErrorURL); txt != "" {
		msg += "; rejected rows: " + txt
	}
	if s.env.Logger != nil {
		s.env.Logger.Warn("stream load failed", "table", t.db+"."+t.table, "label", label, "status", r.Status, "message", msg)
	}
	return fmt.Errorf("StarRocks answered %s: %s", r.Status, msg)
}

// Flush runs at a checkpoint barrier. It loads the tables that are due
// (rows waited batch.interval), those with a transaction open, and, oldest
// first, others while the buffers left exceed batch.carry_bytes; the rest
// stay buffered and go into the checkpoint's state (PreCommit), so a small
// table is loaded once per batch.interval however often checkpoints run.
// In exactly-once mode at most txn.max_open transactions run per database.
func (s *Sink) Flush(ctx context.Context) error { return s.settle(ctx, false) }

// Drain loads every buffer: the final barrier of a job finishing, pausing
// or being dropped.
func (s *Sink) Drain(ctx context.Context) error { return s.settle(ctx, true) }

func (s *Sink) settle(ctx context.Context, all bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgErr != nil {
		return s.bgErr
	}
	var waiting []*target
	left := 0
	for _, t := range s.targets {
		if len(t.buf) > 0 {
			waiting = append(waiting, t)
			left += t.bytes
		}
	}
	slices.SortFunc(waiting, func(a, b *target) int { return a.since.Compare(b.since) })
	for _, t := range waiting {
		if !all && t.txn == "" && !s.due(t) && left <= s.set.carryBytes {
			continue
		}
		if !all && s.set.exactlyOnce && t.txn == "" && s.open[t.db] >= s.set.maxOpen {
			continue
		}
		left -= t.bytes
		if err := s.flushTarget(ctx, t); err != nil {
			return err
		}
	}
	if left > s.set.carryBytes && !s.warned && s.env.Logger != nil {
		s.warned = true
		s.env.Logger.Warn("starrocks: more rows wait than batch.carry_bytes, because txn.max_open transactions are running per database; they go into the checkpoint",
			"bytes", left, "batch.carry_bytes", s.set.carryBytes, "txn.max_open", s.set.maxOpen)
	}
	return nil
}

// carry lists the buffers Flush left for a later checkpoint.
func (s *Sink) carry() []carried {
	var out []carried
	for id, t := range s.targets {
		if len(t.buf) == 0 {
			continue
		}
		c := carried{Source: [2]string{id.Database, id.Table}, DB: t.db, Table: t.table, PK: t.pk, Cols: t.cols, Rows: t.buf, Since: t.since.UnixNano()}
		if len(t.pk) > 0 {
			c.Keys = make([][]byte, len(t.buf))
			for k, i := range t.rows {
				c.Keys[i] = []byte(k)
			}
		}
		out = append(out, c)
	}
	return out
}

// restore puts carried buffers back, after a restart.
func (s *Sink) restore(cs []carried) {
	for _, c := range cs {
		t := &target{db: c.DB, table: c.Table, pk: c.PK, cols: c.Cols, buf: c.Rows, rows: map[string]int{}, since: time.Unix(0, c.Since)}
		for i, r := range c.Rows {
			t.bytes += len(r)
			if i < len(c.Keys) {
				t.rows[string(c.Keys[i])] = i
			}
		}
		s.targets[connectors.TableID{Database: c.Source[0], Table: c.Source[1]}] = t
		s.known[t.db+"."+t.table] = [2]string{t.db, t.table}
	}
}

// Close stops the timer and drops unflushed rows: the engine flushes at
// every checkpoint.
func (s *Sink) Close() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	return nil
}

// ---- exactly-once -------------------------------------------------------

// txnLoad begins t's transaction for this checkpoint if needed and loads
// the buffer into it.
func (s *Sink) txnLoad(ctx context.Context, t *target) error {
	if t.txn == "" {
		label := s.label(t.db, t.table, strconv.FormatUint(s.base, 10), strconv.Itoa(s.k+1))
		if err := s.begin(ctx, t.db, t.table, label); err != nil {
			return err
		}
		t.txn = label
		s.open[t.db]++
	}
	body := s.body(t)
	err := s.c.retry(ctx, func() error {
		r, err := s.c.do(ctx, http.MethodPut, "/api/transaction/load", s.loadHeaders(t, t.txn), body)
		if err != nil {
			return err
		}
		if r.Status != "OK" {
			return fmt.Errorf("load into transaction %s: %s %s", t.txn, r.Status, r.Message)
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.loaded = true
	return nil
}

func (s *Sink) txnCall(ctx context.Context, verb, db, table, label string) (response, error) {
	var r response
	err := s.c.retry(ctx, func() error {
		var err error
		r, err = s.c.do(ctx, http.MethodPost, "/api/transaction/"+verb, map[string]string{"db": db, "table": table, "label": label}, nil)
		return err
	})
	return r, err
}

// begin opens a transaction; a leftover of a crashed run under the same
// label is rolled back first.
func (s *Sink) begin(ctx context.Context, db, table, label string) error {
	for i := 0; i < 2; i++ {
		r, err := s.txnCall(ctx, "begin", db, table, label)
		if err != nil {
			return fmt.Errorf("begin %s: %w", label, err)
		}
		switch r.Status {
		case "OK":
			return nil
		case "LABEL_ALREADY_EXISTS":
			switch strings.ToUpper(r.ExistingJobStatus) {
			case "RUNNING", "PREPARE", "PREPARED":
				if _, err := s.txnCall(ctx, "rollback", db, table, label); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("begin %s: the label was already committed (%s); refusing to load it twice", label, r.ExistingJobStatus)
		default:
			return fmt.Errorf("begin %s: %s %s", label, r.Status, r.Message)
		}
	}
	return fmt.Errorf("begin %s: label still in use after rolling it back", label)
}

// PreCommit loads what is buffered and prepares every open transaction.
func (s *Sink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.set.exactlyOnce {
		if c := s.carry(); len(c) > 0 {
			return json.Marshal(state{Carry: c})
		}
		return nil, nil
	}
	pb := preparedBatch{ID: id}
	for _, t := range s.targets {
		if t.txn == "" {
			continue
		}
		if len(t.buf) > 0 { // Flush loads these; PreCommit alone must not lose them
			if err := s.txnLoad(ctx, t); err != nil {
				return nil, err
			}
			t.reset()
		}
		r, err := s.txnCall(ctx, "prepare", t.db, t.table, t.txn)
		if err == nil && r.Status != "OK" {
			// TXN_NOT_EXISTS after a retried prepare: check the label.
			st, serr := s.c.loadState(ctx, t.db, t.txn)
			if serr != nil || st != "PREPARED" {
				err = fmt.Errorf("prepare %s: %s %s (state %s)", t.txn, r.Status, r.Message, st)
			}
		}
		if err != nil {
			return nil, err
		}
		pb.Labels = append(pb.Labels, [3]string{t.db, t.table, t.txn})
		t.txn, t.loaded = "", false
	}
	s.k++
	if len(pb.Labels) > 0 {
		s.prepared = append(s.prepared, pb)
	}
	st := state{Base: s.base, K: s.k, Prepared: s.prepared, Carry: s.carry()}
	for _, v := range s.known {
		st.Tables = append(st.Tables, v)
	}
	return json.Marshal(st)
}

// Commit commits every transaction prepared up to checkpoint id.
func (s *Sink) Commit(ctx context.Context, id uint64, _ []byte) error {
	if !s.set.exactlyOnce {
		return nil
	}
	var keep []preparedBatch
	for _, pb := range s.prepared {
		if pb.ID > id {
			keep = append(keep, pb)
			continue
		}
		for _, l := range pb.Labels {
			if err := s.commitLabel(ctx, l[0], l[1], l[2]); err != nil {
				return err
			}
			s.open[l[0]]--
		}
	}
	s.prepared = keep
	return nil
}

// commitLabel commits a prepared transaction; an earlier commit whose
// answer was lost shows as COMMITTED or VISIBLE.
func (s *Sink) commitLabel(ctx context.Context, db, table, label string) error {
	r, err := s.txnCall(ctx, "commit", db, table, label)
	if err == nil && r.Status == "OK" {
		return nil
	}
	st, serr := s.c.loadState(ctx, db, label)
	if serr == nil && (st == "VISIBLE" || st == "COMMITTED") {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("%s %s", r.Status, r.Message)
	}
	return fmt.Errorf("commit %s (state %s): %w", label, st, err)
}

// Recover commits what the last committed checkpoint prepared and rolls
// back what the crashed run prepared after it: its labels are
// <base>_<k+1>, <base>_<k+2>, … per table, probed until one is unknown.
func (s *Sink) Recover(ctx context.Context, id uint64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.k, s.open = id, 0, map[string]int{}
	var st state
	if len(data) > 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("checkpoint state: %w", err)
		}
	}
	s.restore(st.Carry)
	if !s.set.exactlyOnce {
		return nil
	}
	for _, pb := range st.Prepared {
		if pb.ID > id {
			continue
		}
		for _, l := range pb.Labels {
			if err := s.commitLabel(ctx, l[0], l[1], l[2]); err != nil {
				return err
			}
		}
	}
	// The crashed run took at most one barrier per checkpoint id after id:
	// up to the last id the catalog recorded, plus one in flight. A table
	// need not have a transaction at each (it may have waited for
	// batch.interval), so that whole range is probed; without the bound,
	// probing stops at the first unknown label.
	last := 0
	if s.env.LastCheckpointID > id {
		last = st.K + int(s.env.LastCheckpointID-id) + 1
	}
	// Two runs may have left transactions: the one that took checkpoint id
	// (labels <st.Base>_<st.K+1…>) and any that recovered from id before
	// this one and crashed (labels <id>_<1…>).
	again := 1
	if s.env.LastCheckpointID > id {
		again = int(s.env.LastCheckpointID-id) + 1
	}
	s.probes = []probe{{base: st.Base, from: st.K + 1, to: last}, {base: id, from: 1, to: again}}
	for _, tb := range st.Tables {
		s.known[tb[0]+"."+tb[1]] = tb
		if err := s.rollbackLeftovers(ctx, tb[0], tb[1]); err != nil {
			return err
		}
	}
	return nil
}

// rollbackLeftovers rolls back the transactions the crashed run prepared
// for one table after the checkpoint this run recovered from. Recover does
// it for the tables the checkpoint names; a table the crashed run first
// wrote after that checkpoint is done when this run first sees it (the
// replay from the same position writes it again).
func (s *Sink) rollbackLeftovers(ctx context.Context, db, table string) error {
	for _, p := range s.probes {
		for k := p.from; ; k++ {
			label := s.label(db, table, strconv.FormatUint(p.base, 10), strconv.Itoa(k))
			state, err := s.c.loadState(ctx, db, label)
			if err != nil {
				return err
			}
			if state == "UNKNOWN" && k >= p.to {
				break
			}
			if state == "PREPARE" || state == "PREPARED" {
				if _, err := s.txnCall(ctx, "rollback", db, table, label); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ---- tables ---------------------------------------------------------------

// ensureTable creates a missing table (save_mode create_if_missing) as a
// PRIMARY KEY table over the FE's MySQL port, or refuses (error_if_missing).
func (s *Sink) ensureTable(ctx context.Context, t *target, schema *arrow.Schema) error {
	db, addr, err := s.queryDB()
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", t.db, t.table).Scan(&n)
	if err != nil {
		return fmt.Errorf("StarRocks query port %s: %w", addr, err)
	}
	if n > 0 {
		return nil
	}
	if s.set.saveMode == "error_if_missing" {
		return fmt.Errorf("StarRocks table %s.%s does not exist (save_mode = error_if_missing)", t.db, t.table)
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+t.db+"`"); err != nil {
		return err
	}
	stmt := createTable(t, schema)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// createTable renders CREATE TABLE for StarRocks: key columns first (a
// StarRocks rule), PRIMARY KEY when the source has one.
func createTable(t *target, schema *arrow.Schema) string {
	fields := schema.Fields()[1:]
	isKey := map[string]bool{}
	for _, k := range t.pk {
		isKey[k] = true
	}
	var defs []string
	for _, k := range t.pk {
		for _, f := range fields {
			if f.Name == k {
				defs = append(defs, "`"+f.Name+"` "+srType(f.Type, true)+" NOT NULL")
			}
		}
	}
	for _, f := range fields {
		if !isKey[f.Name] {
			defs = append(defs, "`"+f.Name+"` "+srType(f.Type, false)+" NULL")
		}
	}
	q := "CREATE TABLE IF NOT EXISTS `" + t.db + "`.`" + t.table + "` (" + strings.Join(defs, ", ") + ")"
	if len(t.pk) > 0 {
		q += " PRIMARY KEY (`" + strings.Join(t.pk, "`,`") + "`) DISTRIBUTED BY HASH (`" + strings.Join(t.pk, "`,`") + "`)"
	} else if len(fields) > 0 {
		q += " DUPLICATE KEY (`" + fields[0].Name + "`) DISTRIBUTED BY HASH (`" + fields[0].Name + "`)"
	}
	return q
}

// srType maps an Arrow type to a StarRocks column type.
func srType(t arrow.DataType, key bool) string {
	switch t := t.(type) {
	case *arrow.Int8Type:
		return "TINYINT"
	case *arrow.Int16Type, *arrow.Uint8Type:
		return "SMALLINT"
	case *arrow.Int32Type, *arrow.Uint16Type:
		return "INT"
	case *arrow.Int64Type, *arrow.Uint32Type:
		return "BIGINT"
	case *arrow.Uint64Type:
		return "LARGEINT"
	case *arrow.Float32Type:
		return "FLOAT"
	case *arrow.Float64Type:
		return "DOUBLE"
	case *arrow.BooleanType:
		return "BOOLEAN"
	case *arrow.Decimal128Type:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *arrow.Decimal256Type:
		if t.Precision <= 76 {
			return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale) // DECIMAL256 in StarRocks 3.4+
		}
	case *arrow.Date32Type:
		return "DATE"
	case *arrow.TimestampType:
		return "DATETIME"
	case *arrow.StringType:
		if key {
			return "VARCHAR(1024)"
		}
		return "STRING"
	case *arrow.BinaryType:
		return "VARBINARY"
	}
	return "STRING"
}

// appendJSON appends one Arrow value as JSON.
func appendJSON(dst []byte, a arrow.Array, i int) []byte {
	if a.IsNull(i) {
		return append(dst, "null"...)
	}
	if s, ok := a.(*array.String); ok {
		return appendJSONString(dst, s.Value(i))
	}
	start := len(dst)
	dst, quote := appendText(dst, a, i)
	if !quote {
		return dst
	}
	// Text values (no quote, backslash or control characters in them
	// except from strings, handled above) just need quotes.
	dst = append(dst, 0)
	copy(dst[start+1:], dst[start:len(dst)-1])
	dst[start] = '"'
	return append(dst, '"')
}

// appendText appends a non-null value as the text StarRocks parses for
// its column type, and whether JSON needs it quoted.
func appendText(dst []byte, a arrow.Array, i int) ([]byte, bool) {
	switch a := a.(type) {
	case *array.Int8:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), false
	case *array.Int16:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), false
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), false
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10), false
	case *array.Uint8:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), false
	case *array.Uint16:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), false
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), false
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10), true // LARGEINT: beyond JSON's safe integers
	case *array.Float32:
		return strconv.AppendFloat(dst, float64(a.Value(i)), 'g', -1, 32), false
	case *array.Float64:
		return strconv.AppendFloat(dst, a.Value(i), 'g', -1, 64), false
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i)), false
	case *array.Decimal128:
		return appendDecimal128(dst, a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale), true
	case *array.Decimal256:
		return append(dst, a.Value(i).ToString(a.DataType().(*arrow.Decimal256Type).Scale)...), true
	case *array.Date32:
		return time.Unix(0, 0).UTC().AddDate(0, 0, int(a.Value(i))).AppendFormat(dst, "2006-01-02"), true
	case *array.Timestamp:
		return appendDateTime(dst, int64(a.Value(i))), true
	case *array.Duration:
		return append(dst, time.Duration(a.Value(i)*1000).String()...), true
	case *array.String:
		return append(dst, a.Value(i)...), true
	case *array.Binary:
		return base64.StdEncoding.AppendEncode(dst, a.Value(i)), true
	}
	return append(dst, a.ValueStr(i)...), true
}

// appendDecimal128 appends v scaled by 10^-scale as plain decimal text
// (what DECIMAL(p,s) loads from): exact, without big.Float.
func appendDecimal128(dst []byte, v decimal128.Num, scale int32) []byte {
	var digits []byte
	neg := v.Sign() < 0
	if neg {
		v = v.Negate()
	}
	if v.HighBits() == 0 && v.LowBits() < 1<<63 {
		var buf [20]byte
		digits = strconv.AppendUint(buf[:0], v.LowBits(), 10)
	} else {
		digits = []byte(v.BigInt().String())
	}
	if neg {
		dst = append(dst, '-')
	}
	if scale <= 0 {
		dst = append(dst, digits...)
		for k := int32(0); k < -scale; k++ {
			dst = append(dst, '0')
		}
		return dst
	}
	if int32(len(digits)) <= scale { // 0.00ddd
		dst = append(dst, '0', '.')
		for k := int32(len(digits)); k < scale; k++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	cut := len(digits) - int(scale)
	dst = append(dst, digits[:cut]...)
	dst = append(dst, '.')
	return append(dst, digits[cut:]...)
}

// appendDateTime appends microseconds since the epoch (UTC) as
// "2006-01-02 15:04:05.999999" (fraction without trailing zeros).
func appendDateTime(dst []byte, us int64) []byte {
	t := time.UnixMicro(us).UTC()
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	pad := func(dst []byte, v, w int) []byte {
		var buf [8]byte
		b := strconv.AppendInt(buf[:0], int64(v), 10)
		for k := len(b); k < w; k++ {
			dst = append(dst, '0')
		}
		return append(dst, b...)
	}
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, "2006-01-02 15:04:05.999999")
	}
	dst = pad(dst, y, 4)
	dst = append(dst, '-')
	dst = pad(dst, int(mo), 2)
	dst = append(dst, '-')
	dst = pad(dst, d, 2)
	dst = append(dst, ' ')
	dst = pad(dst, h, 2)
	dst = append(dst, ':')
	dst = pad(dst, mi, 2)
	dst = append(dst, ':')
	dst = pad(dst, sec, 2)
	if frac := t.Nanosecond() / 1000; frac > 0 {
		dst = append(dst, '.')
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		dst = pad(dst, frac, n)
	}
	return dst
}

// appendJSONString appends s as a JSON string (encoding/json's escaping
// of control characters, quotes and backslashes; UTF-8 passes through).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendCSVRow appends one row as CSV: the columns of t.cols (cols gives
// each one's index in rec), then __op. Strings are enclosed in " with
// inner quotes doubled; NULL is \N. A delete carries the whole row: CSV
// is positional.
func appendCSVRow(dst []byte, rec arrow.Record, cols []int, i int, del bool) []byte {
	for _, j := range cols {
		a := rec.Column(j)
		switch {
		case a.IsNull(i):
			dst = append(dst, `\N`...)
		default:
			if str, ok := a.(*array.String); ok {
				dst = appendEnclosed(dst, str.Value(i))
			} else {
				dst, _ = appendText(dst, a, i)
			}
		}
		dst = append(dst, '\t')
	}
	if del {
		return append(dst, '1')
	}
	return append(dst, '0')
}

func appendEnclosed(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for k := 0; k < len(s); k++ {
		if s[k] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[k])
	}
	return append(dst, '"')
}
