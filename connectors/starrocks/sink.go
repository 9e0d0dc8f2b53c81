package starrocks

import (
	"context"
	"crypto/sha1"
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

	"sluice/connectors"
)

// Spec declares the starrocks sink.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "starrocks",
		Kind:        connectors.KindSink,
		Description: "StarRocks Stream Load (JSON, __op upserts/deletes); exactly-once through the Stream Load transaction API",
		Options:     Options,
		Target: func(cfg connectors.Config) (connectors.SQLTarget, error) {
			set := parse(cfg)
			host, _, err := net.SplitHostPort(set.fes[0])
			if err != nil {
				return connectors.SQLTarget{}, err
			}
			return connectors.SQLTarget{Addr: net.JoinHostPort(host, strconv.Itoa(set.queryPort)), User: set.user, Password: set.password,
				Table: func(id connectors.TableID) connectors.TableID {
					return connectors.TableID{Database: placeholder(set.database, id), Table: placeholder(set.table, id)}
				}}, nil
		},
		NewSink: func(cfg connectors.Config, env connectors.Env) (connectors.Sink, error) {
			return newSink(cfg, env), nil
		},
		CheckTables: func(_ context.Context, cfg connectors.Config, tables []connectors.TableInfo) error {
			return parse(cfg).keylessRefused(tables)
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
	{Name: "keyless", Type: connectors.TypeEnum, Enum: []string{"refuse", "append"}, Default: "refuse",
		Description: "at-least-once, a source table without a primary key (loaded into a DUPLICATE KEY table): refuse it (a replay after a crash would load its rows twice), or append and accept those duplicates"},
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
	appendKeyless        bool
}

func parse(cfg connectors.Config) settings {
	return settings{fes: cfg.List("fe"), queryPort: int(cfg.Int("query_port")), user: cfg.String("user"), password: cfg.String("password"),
		database: cfg.String("database"), table: cfg.String("table"), maxRows: int(cfg.Int("batch.max_rows")),
		maxBytes: int(cfg.Int("batch.max_bytes")), interval: cfg.Duration("batch.interval"),
		exactlyOnce: cfg.String("semantic") == "exactly-once", partial: cfg.Bool("partial_update"),
		retries: int(cfg.Int("max_retries")), backoff: cfg.Duration("retry.backoff"), timeout: cfg.Duration("http.timeout"),
		prefix: cfg.String("label.prefix"), saveMode: cfg.String("save_mode"), csv: cfg.String("format") == "csv",
		carryBytes: int(cfg.Int("batch.carry_bytes")), maxOpen: int(cfg.Int("txn.max_open")),
		appendKeyless: cfg.String("keyless") == "append"}
}

// target is one StarRocks table and the rows waiting for it.
type target struct {
	db, table string
	pk        []string
	cols      []string
	types     map[string]string // lower-case column → StarRocks type
	rows      map[string]int    // key → index in buf (the last change of a key wins)
	buf       [][]byte          // encoded rows: JSON objects or CSV lines
	arena     []byte            // the current block buf's rows are copied into (keep)
	bytes     int
	since     time.Time
	txn       string // exactly-once: the open transaction's label
	loaded    bool   // exactly-once: rows were loaded into txn
	// have is the table's columns at StarRocks (lower-case; nil unknown).
	// A batch without some of them — rows from before an ADD COLUMN, read
	// or replayed after it — is loaded as a partial update of its own
	// columns (partial, loadCols describe buf), as the mysql sink's upsert
	// of the batch's columns does: a full-row upsert would null them.
	have     map[string]bool
	partial  bool
	loadCols []string
}

// lacks says whether the table has a column the batch does not carry.
func (t *target) lacks(cols []string) bool {
	if len(t.have) == 0 || len(t.pk) == 0 {
		return false
	}
	in := make(map[string]bool, len(cols))
	for _, c := range cols {
		in[strings.ToLower(c)] = true
	}
	for c := range t.have {
		if !in[c] {
			return true
		}
	}
	return false
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

	// at-least-once: a flusher sends tables whose rows waited
	// batch.interval when no batch arrives; mu serialises it with the
	// engine's calls.
	mu      sync.Mutex
	flusher *connectors.Flusher

	// exactly-once
	base     uint64          // checkpoint this run recovered from
	k        int             // barriers so far in this run
	prepared []preparedBatch // prepared, not yet committed
	known    map[string][2]string
	open     map[string]int // database → our transactions begun and not yet committed
	// labels crashed runs may have left prepared: <base>_<from…to>_a<attempt>
	probes []probe
	warned bool // the carry budget was exceeded (logged once)
}

// probe is a series of labels to look for after a restart.
type probe struct {
	base     uint64
	attempt  int
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
	Attempt  int             `json:"attempt,omitempty"` // the attempt whose labels these are (0: before labels had one)
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

// Open prepares the run; at-least-once starts the interval flusher.
func (s *Sink) Open(ctx context.Context) error {
	s.run = fmt.Sprintf("a%d", s.env.Attempt)
	if !s.set.exactlyOnce {
		s.flusher = connectors.StartFlusher(&s.mu, max(s.set.interval/4, 10*time.Millisecond),
			s.set.timeout*time.Duration(s.set.retries+2), s.flushDue)
	}
	return nil
}

// flushDue sends the tables whose rows waited batch.interval (the
// flusher calls it with mu held).
func (s *Sink) flushDue(ctx context.Context) error {
	for _, t := range s.targets {
		if s.due(t) {
			if err := s.flushTarget(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
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
	if err := s.flusher.Err(); err != nil {
		return err
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
	batchCols := make([]string, 0, len(fields)-1)
	for _, f := range fields[1:] {
		batchCols = append(batchCols, f.Name)
	}
	partial := len(t.pk) > 0 && (s.set.partial || t.lacks(batchCols))
	if len(t.buf) > 0 && (partial != t.partial || partial && !slices.Equal(batchCols, t.loadCols)) {
		if err := s.flushTarget(ctx, t); err != nil { // one column list per load
			return err
		}
	}
	t.partial, t.loadCols = partial, nil
	if partial {
		t.loadCols = batchCols
	}
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
		cols := t.cols
		if partial {
			cols = batchCols
		}
		for _, c := range cols {
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
		data := t.keep(row)
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

// keep copies an encoded row into t's arena: blocks shared by many rows,
// 4 KiB at first and doubling to 1 MiB, so a trickle into many tables
// holds little and a flood allocates once per thousands of rows. Rows
// alias their block, which is never reallocated.
func (t *target) keep(row []byte) []byte {
	if cap(t.arena)-len(t.arena) < len(row) {
		size := min(max(2*cap(t.arena), 4<<10), 1<<20)
		t.arena = make([]byte, 0, max(size, len(row)))
	}
	start := len(t.arena)
	t.arena = append(t.arena, row...)
	return t.arena[start:len(t.arena):len(t.arena)]
}

// due reports whether t's oldest buffered row waited batch.interval.
func (s *Sink) due(t *target) bool {
	return len(t.buf) > 0 && time.Since(t.since) >= s.set.interval
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
	if t.partial {
		h["partial_update"] = "true"
		h["columns"] = "`" + strings.Join(t.loadCols, "`,`") + "`,__op"
	}
	return h
}

func (t *target) reset() {
	t.rows, t.buf, t.bytes, t.arena = nil, nil, 0, nil
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
	if err := s.flusher.Err(); err != nil {
		return err
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

// Close stops the flusher (cancelling a load in flight) and drops unflushed rows: the engine flushes at
// every checkpoint.
func (s *Sink) Close() error {
	s.flusher.Stop()
	s.flusher = nil
	if s.c != nil {
		s.c.http.CloseIdleConnections() // keep-alive connections would outlive the task
	}
	return nil
}

// ---- exactly-once -------------------------------------------------------
