// Package sremu is a StarRocks emulator for tests and the demo: NOT
// StarRocks. It serves the HTTP surface a loading client sees — an FE that
// answers Stream Load with 307 to a BE, the BE's Stream Load, the Stream
// Load transaction API and get_load_state — over in-memory tables, so the
// starrocks sink can be tested end to end on machines where StarRocks
// cannot run. README.md lists what it reproduces (with the StarRocks doc
// pages) and what it does not. The sink must never depend on behaviour
// found only here.
package sremu

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Table is one emulated table. Primary-key tables upsert and delete by
// key (the `__op` field: 0 upsert, 1 delete); duplicate-key tables append.
type Table struct {
	Key      []string // primary key columns; empty: a duplicate-key table
	Cols     []Column // as created and altered over the query port; empty when created by CreateTable
	rows     map[string]map[string]any
	order    []string
	versions int // committed loads: StarRocks refuses a tablet past 1000 unmerged versions
}

// Column is one column of a table: its name and type as declared, and
// its default when ADD COLUMN gave one.
type Column struct {
	Name, Type string
	Default    any
}

// Faults makes the emulator misbehave on purpose.
type Faults struct {
	// FailEvery makes every n-th load request answer 500 before reading
	// the body (0: never).
	FailEvery int
	// LoseCommitResponse makes the next commit apply and then drop the
	// connection without an answer.
	LoseCommitResponse bool
	// CommitLatency delays every commit and every plain Stream Load.
	CommitLatency time.Duration
	// ResetEvery makes every n-th load request read part of its body and
	// then drop the connection (0: never).
	ResetEvery int
	// PublishTimeoutEvery makes every n-th plain Stream Load answer
	// "Publish Timeout": committed, visible PublishDelay later (0: never).
	PublishTimeoutEvery int
	PublishDelay        time.Duration
	// RejectValue makes a load whose rows hold this value (as text) fail
	// as a quality error: Status Fail with an ErrorURL naming the row.
	RejectValue string
}

type txn struct {
	db, table, label string
	state            string // PREPARE, PREPARED, COMMITTED, VISIBLE, ABORTED
	rows             []map[string]any
	id               int64
}

// Emulator is one FE + one BE.
type Emulator struct {
	User, Password string
	FE, BE         string // host:port of each listener
	Query          string // host:port of the query port, once served

	mu       sync.Mutex
	dbs      map[string]map[string]*Table
	labels   map[string]*txn // db/label → load or transaction
	nextTxn  int64
	requests int
	faults   Faults
	loads    []LoadRecord
	fe, be   *http.Server
	lfe, lbe net.Listener
	lq       net.Listener
	maxVer   int
	alters   []string
	loadsN   int               // plain Stream Loads so far (PublishTimeoutEvery)
	errLogs  map[string]string // error log file → content (ErrorURL)
	// MaxRunningTxns is the running transactions allowed per database
	// (StarRocks' max_running_txn_num_per_db, 100 by default).
	MaxRunningTxns int
	maxRunning     int // the most transactions seen running in one database
	// TrackVisibility stamps each applied row with "__visible_at" (a
	// time.Time), for latency benchmarks. Set before loads arrive.
	TrackVisibility bool
}

// Alters returns the ALTER TABLE statements received on the query port.
func (e *Emulator) Alters() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.alters...)
}

// LoadRecord is one committed load, for invariant checks (I3, I7).
type LoadRecord struct {
	DB, Table, Label string
	Rows             int
}

// Start listens on two loopback ports (FE, BE).
func Start(user, password string) (*Emulator, error) { return StartOn(user, password, "127.0.0.1:0") }

// StartOn is Start with the FE's address given (the BE's port is free).
func StartOn(user, password, feAddr string) (*Emulator, error) {
	e := &Emulator{User: user, Password: password, dbs: map[string]map[string]*Table{}, labels: map[string]*txn{}, maxVer: 1000,
		errLogs: map[string]string{}, MaxRunningTxns: 100}
	var err error
	if e.lfe, err = net.Listen("tcp", feAddr); err != nil {
		return nil, err
	}
	// The BE on another loopback address, as a real BE is another host:
	// a client that drops credentials on the FE's redirect gets 401 here.
	if e.lbe, err = net.Listen("tcp", "127.0.0.2:0"); err != nil {
		if e.lbe, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			e.lfe.Close()
			return nil, err
		}
	}
	e.FE, e.BE = e.lfe.Addr().String(), e.lbe.Addr().String()
	e.fe = &http.Server{Handler: http.HandlerFunc(e.serveFE), ReadHeaderTimeout: 10 * time.Second}
	e.be = &http.Server{Handler: http.HandlerFunc(e.serveBE), ReadHeaderTimeout: 10 * time.Second}
	go e.fe.Serve(e.lfe) //nolint:errcheck // ends at Close
	go e.be.Serve(e.lbe) //nolint:errcheck
	return e, nil
}

// Close stops both listeners.
func (e *Emulator) Close() {
	e.fe.Close()
	e.be.Close()
	e.mu.Lock()
	if e.lq != nil {
		e.lq.Close()
	}
	e.mu.Unlock()
}

// SetFaults replaces the fault settings.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	e.faults = f
	e.mu.Unlock()
}

// CreateTable creates a table (what the query port's CREATE TABLE does in
// StarRocks). key empty: a duplicate-key table.
func (e *Emulator) CreateTable(db, table string, key ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dbs[db] == nil {
		e.dbs[db] = map[string]*Table{}
	}
	if e.dbs[db][table] == nil {
		e.dbs[db][table] = &Table{Key: key, rows: map[string]map[string]any{}}
	}
}

// Truncate empties a table (TRUNCATE TABLE); its loads' labels stay known,
// as StarRocks keeps them for label_keep_max_second.
func (e *Emulator) Truncate(db, table string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.dbs[db][table]; t != nil {
		t.rows, t.order = map[string]map[string]any{}, nil
	}
}

// Rows returns a copy of a table's rows, ordered by key (or arrival).
func (e *Emulator) Rows(db, table string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.dbs[db][table]
	if t == nil {
		return nil
	}
	keys := append([]string(nil), t.order...)
	if len(t.Key) > 0 {
		keys = keys[:0]
		for k := range t.rows {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	var out []map[string]any
	for _, k := range keys {
		if r, ok := t.rows[k]; ok {
			c := make(map[string]any, len(r)) // a copy: ALTERs change stored rows in place
			for col, v := range r {
				c[col] = v
			}
			out = append(out, c)
		}
	}
	return out
}

// Loads returns the committed loads so far.
func (e *Emulator) Loads() []LoadRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]LoadRecord(nil), e.loads...)
}

// Dangling lists transactions left PREPARE or PREPARED (I7).
func (e *Emulator) Dangling() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for k, t := range e.labels {
		if t.state == "PREPARE" || t.state == "PREPARED" {
			out = append(out, k+" "+t.state)
		}
	}
	sort.Strings(out)
	return out
}

func (e *Emulator) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	return ok && u == e.User && p == e.Password
}

func reply(w http.ResponseWriter, v map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// serveFE answers loads with a 307 to the BE (as an FE does) and serves
// get_load_state itself.
func (e *Emulator) serveFE(w http.ResponseWriter, r *http.Request) {
	if !e.authorized(r) {
		http.Error(w, `{"Status":"Fail","Message":"Access denied"}`, http.StatusUnauthorized)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/get_load_state") {
		e.loadState(w, r)
		return
	}
	u := *r.URL
	u.Scheme, u.Host = "http", e.BE
	http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
}

func (e *Emulator) loadState(w http.ResponseWriter, r *http.Request) {
	db := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[1]
	label := r.URL.Query().Get("label")
	e.mu.Lock()
	t := e.labels[db+"/"+label]
	state := "UNKNOWN"
	if t != nil {
		state = t.state
	}
	e.mu.Unlock()
	reply(w, map[string]any{"state": state, "status": "OK", "msg": "Success"})
}

func (e *Emulator) serveBE(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/_load_error_log" {
		e.mu.Lock()
		txt, ok := e.errLogs[r.URL.Query().Get("file")]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, txt)
		return
	}
	if !e.authorized(r) {
		w.WriteHeader(http.StatusUnauthorized)
		reply(w, map[string]any{"Status": "Fail", "Message": "no valid Basic authorization"})
		return
	}
	e.mu.Lock()
	e.requests++
	fail := e.faults.FailEvery > 0 && e.requests%e.faults.FailEvery == 0
	reset := e.faults.ResetEvery > 0 && e.requests%e.faults.ResetEvery == 0
	e.mu.Unlock()
	if fail {
		http.Error(w, "emulated internal error", http.StatusInternalServerError)
		return
	}
	if reset {
		_, _ = io.CopyN(io.Discard, r.Body, 16) // part of the body, then the connection goes
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
	}
	path := strings.Trim(r.URL.Path, "/")
	switch {
	case strings.HasSuffix(path, "/_stream_load"):
		parts := strings.Split(path, "/") // api/<db>/<table>/_stream_load
		if len(parts) != 4 {
			http.NotFound(w, r)
			return
		}
		e.streamLoad(w, r, parts[1], parts[2])
	case strings.HasPrefix(path, "api/transaction/"):
		e.transaction(w, r, strings.TrimPrefix(path, "api/transaction/"))
	default:
		http.NotFound(w, r)
	}
}

// parseRows reads a JSON body (an array with strip_outer_array, or one
// object) or a CSV body.
func parseRows(r *http.Request) ([]map[string]any, error) {
	f := strings.ToLower(r.Header.Get("format"))
	if f != "json" && f != "csv" && f != "" {
		return nil, fmt.Errorf("the emulator reads format json or csv, got %q", f)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if f != "json" {
		rows, err := parseCSV(r.Header, body)
		return markPartial(r, rows), err
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if strings.EqualFold(r.Header.Get("strip_outer_array"), "true") {
		var rows []map[string]any
		err := dec.Decode(&rows)
		return markPartial(r, rows), err
	}
	var row map[string]any
	if err := dec.Decode(&row); err != nil {
		return nil, err
	}
	return markPartial(r, []map[string]any{row}), nil
}

// partialKey marks a row of a partial_update load: it changes only the
// columns it names (apply).
const partialKey = "\x00partial"

func markPartial(r *http.Request, rows []map[string]any) []map[string]any {
	if strings.EqualFold(r.Header.Get("partial_update"), "true") {
		for _, row := range rows {
			row[partialKey] = true
		}
	}
	return rows
}

func (e *Emulator) streamLoad(w http.ResponseWriter, r *http.Request, db, table string) {
	label := r.Header.Get("label")
	rows, err := parseRows(r)
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev := e.labels[db+"/"+label]; label != "" && prev != nil {
		status := "FINISHED"
		if prev.state == "PREPARE" || prev.state == "PREPARED" {
			status = "RUNNING"
		} else if prev.state == "ABORTED" {
			status = "CANCELLED"
		}
		reply(w, map[string]any{"Status": "Label Already Exists", "ExistingJobStatus": status, "Label": label,
			"Message": fmt.Sprintf("Label [%s] has already been used.", label)})
		return
	}
	if err != nil {
		reply(w, map[string]any{"Status": "Fail", "Message": err.Error(), "Label": label})
		return
	}
	t := e.dbs[db][table]
	if t == nil {
		reply(w, map[string]any{"Status": "Fail", "Message": fmt.Sprintf("Unknown table '%s.%s'", db, table), "Label": label})
		return
	}
	if t.versions >= e.maxVer {
		reply(w, map[string]any{"Status": "Fail", "Message": "Too many versions. tablet_id: 1, version_count: 1001, limit: 1000", "Label": label})
		return
	}
	if bad := e.rejected(rows); bad != "" {
		file := fmt.Sprintf("error_log_%d", len(e.errLogs)+1)
		e.errLogs[file] = "Error: Value count does not match column count or the value is invalid. Row: " + bad
		e.labels[db+"/"+label] = &txn{db: db, table: table, label: label, state: "ABORTED"}
		reply(w, map[string]any{"Status": "Fail", "Label": label, "Message": "too many filtered rows",
			"NumberFilteredRows": 1, "ErrorURL": "http://" + e.BE + "/api/_load_error_log?file=" + file})
		return
	}
	time.Sleep(e.faults.CommitLatency)
	e.nextTxn++
	e.loadsN++
	status := "Success"
	tx := &txn{db: db, table: table, label: label, state: "VISIBLE", id: e.nextTxn}
	if n := e.faults.PublishTimeoutEvery; n > 0 && e.loadsN%n == 0 {
		// Committed; the publish (visibility) comes later.
		status, tx.state = "Publish Timeout", "COMMITTED"
		t.versions++ // the version is taken at commit
		delay := e.faults.PublishDelay
		go func() {
			time.Sleep(delay)
			e.mu.Lock()
			defer e.mu.Unlock()
			t.versions--
			e.apply(t, rows)
			tx.state = "VISIBLE"
		}()
	} else {
		e.apply(t, rows)
	}
	e.labels[db+"/"+label] = tx
	e.loads = append(e.loads, LoadRecord{DB: db, Table: table, Label: label, Rows: len(rows)})
	reply(w, map[string]any{"TxnId": e.nextTxn, "Label": label, "Status": status, "Message": "OK",
		"NumberTotalRows": len(rows), "NumberLoadedRows": len(rows)})
}

// rejected returns a row holding Faults.RejectValue, as text ("" if none).
func (e *Emulator) rejected(rows []map[string]any) string {
	if e.faults.RejectValue == "" {
		return ""
	}
	for _, row := range rows {
		for _, v := range row {
			if v != nil && fmt.Sprint(v) == e.faults.RejectValue {
				data, _ := json.Marshal(row)
				return string(data)
			}
		}
	}
	return ""
}

// running counts the transactions of db in PREPARE or PREPARED.
func (e *Emulator) running(db string) int {
	n := 0
	for _, t := range e.labels {
		if t.db == db && (t.state == "PREPARE" || t.state == "PREPARED") {
			n++
		}
	}
	return n
}

// apply upserts/deletes rows into t (caller holds mu).
func (e *Emulator) apply(t *Table, rows []map[string]any) {
	t.versions++
	now := time.Now()
	for _, row := range rows {
		op := fmt.Sprint(row["__op"])
		delete(row, "__op")
		_, partial := row[partialKey]
		delete(row, partialKey)
		if e.TrackVisibility {
			row["__visible_at"] = now.UTC().Format("2006-01-02 15:04:05.000000")
		}
		if len(t.Key) == 0 {
			k := fmt.Sprint(len(t.order))
			t.rows[k] = row
			t.order = append(t.order, k)
			continue
		}
		var kb strings.Builder
		for _, c := range t.Key {
			fmt.Fprintf(&kb, "%v\x00", row[c])
		}
		k := kb.String()
		switch old, ok := t.rows[k]; {
		case op == "1":
			delete(t.rows, k)
		case partial && ok: // the columns the load names change; the others stay
			merged := make(map[string]any, len(old))
			for c, v := range old {
				merged[c] = v
			}
			for c, v := range row {
				merged[c] = v
			}
			t.rows[k] = merged
		case partial: // a new row: the columns it lacks take their defaults
			for _, c := range t.Cols {
				if _, has := row[c.Name]; !has && c.Default != nil {
					row[c.Name] = c.Default
				}
			}
			t.rows[k] = row
		default: // a full row: a column it lacks is NULL
			t.rows[k] = row
		}
	}
}

func (e *Emulator) transaction(w http.ResponseWriter, r *http.Request, verb string) {
	db, table, label := r.Header.Get("db"), r.Header.Get("table"), r.Header.Get("label")
	key := db + "/" + label
	if verb == "load" {
		rows, err := parseRows(r)
		e.mu.Lock()
		defer e.mu.Unlock()
		t := e.labels[key]
		switch {
		case t == nil:
			reply(w, map[string]any{"Status": "FAILED", "Message": "TXN_NOT_EXISTS"})
		case t.state != "PREPARE":
			reply(w, map[string]any{"Status": "FAILED", "Message": "Transcation State Invalid"})
		case err != nil:
			t.state = "ABORTED" // an error in load rolls the transaction back
			reply(w, map[string]any{"Status": "FAILED", "Message": err.Error()})
		default:
			t.rows = append(t.rows, rows...)
			reply(w, map[string]any{"Status": "OK", "NumberLoadedRows": len(rows)})
		}
		return
	}
	e.mu.Lock()
	t := e.labels[key]
	switch verb {
	case "begin":
		if t != nil && t.state != "PREPARE" && t.state != "ABORTED" { // a failed label may be used again
			e.mu.Unlock()
			status := "FINISHED"
			if t.state == "PREPARED" {
				status = "PREPARED"
			} else if t.state == "ABORTED" {
				status = "CANCELLED"
			}
			reply(w, map[string]any{"Status": "LABEL_ALREADY_EXISTS", "ExistingJobStatus": status, "Label": label})
			return
		}
		if e.dbs[db][table] == nil {
			e.mu.Unlock()
			reply(w, map[string]any{"Status": "FAILED", "Message": fmt.Sprintf("Unknown table '%s.%s'", db, table)})
			return
		}
		if n := e.running(db); t == nil && n >= e.MaxRunningTxns {
			e.mu.Unlock()
			reply(w, map[string]any{"Status": "FAILED", "Message": fmt.Sprintf(
				"current running txns on db %s is %d, larger than limit %d", db, n, e.MaxRunningTxns)})
			return
		}
		e.maxRunning = max(e.maxRunning, e.running(db)+1)
		e.nextTxn++
		e.labels[key] = &txn{db: db, table: table, label: label, state: "PREPARE", id: e.nextTxn} // reusing an unfinished label restarts it
		e.mu.Unlock()
		reply(w, map[string]any{"Status": "OK", "Label": label, "TxnId": e.nextTxn})
	case "prepare":
		defer e.mu.Unlock()
		if t == nil || t.state == "ABORTED" {
			reply(w, map[string]any{"Status": "FAILED", "Message": "Transcation Not Exist"})
			return
		}
		if t.state == "PREPARE" {
			t.state = "PREPARED"
		}
		reply(w, map[string]any{"Status": "OK", "Label": label})
	case "commit":
		if t == nil || (t.state != "PREPARED" && t.state != "VISIBLE") {
			e.mu.Unlock()
			reply(w, map[string]any{"Status": "FAILED", "Message": "Transcation Not Exist or not prepared"})
			return
		}
		if t.state == "VISIBLE" {
			e.mu.Unlock()
			reply(w, map[string]any{"Status": "OK", "Message": "Transaction already commited"})
			return
		}
		tb := e.dbs[t.db][t.table]
		if tb.versions >= e.maxVer {
			e.mu.Unlock()
			reply(w, map[string]any{"Status": "FAILED", "Message": "Too many versions"})
			return
		}
		time.Sleep(e.faults.CommitLatency)
		e.apply(tb, t.rows)
		t.state, t.rows = "VISIBLE", nil
		e.loads = append(e.loads, LoadRecord{DB: t.db, Table: t.table, Label: label})
		lose := e.faults.LoseCommitResponse
		e.faults.LoseCommitResponse = false
		e.mu.Unlock()
		if lose {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		reply(w, map[string]any{"Status": "OK", "Label": label})
	case "rollback":
		defer e.mu.Unlock()
		if t == nil || t.state == "VISIBLE" {
			reply(w, map[string]any{"Status": "FAILED", "Message": "Transcation Not Exist"})
			return
		}
		t.state, t.rows = "ABORTED", nil
		reply(w, map[string]any{"Status": "OK"})
	default:
		e.mu.Unlock()
		http.NotFound(w, r)
	}
}

// MaxRunning is the most transactions that were running at once in one
// database.
func (e *Emulator) MaxRunning() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maxRunning
}

// parseCSV reads a CSV body as StarRocks' documented CSV parameters
// describe it: column_separator and row_delimiter (literal, or hex as
// \xNN…), enclose (one byte; inside it separators are data and the
// enclose byte is doubled), \N for NULL. The emulator keeps no column
// list per table, so it needs the columns header to name the fields.
func parseCSV(h http.Header, body []byte) ([]map[string]any, error) {
	cols := strings.Split(h.Get("columns"), ",")
	if h.Get("columns") == "" {
		return nil, fmt.Errorf("the emulator needs a columns header for CSV (it keeps no column list per table)")
	}
	for i, c := range cols {
		cols[i] = strings.Trim(strings.TrimSpace(c), "`")
	}
	colSep, rowSep := unhex(h.Get("column_separator"), "\t"), unhex(h.Get("row_delimiter"), "\n")
	var enclose byte
	if e := h.Get("enclose"); len(e) == 1 {
		enclose = e[0]
	}
	var rows []map[string]any
	var fields []any
	var cur []byte
	quoted, inQuote := false, false
	endField := func() {
		if !quoted && string(cur) == `\N` {
			fields = append(fields, nil)
		} else {
			fields = append(fields, string(cur))
		}
		cur, quoted = cur[:0], false
	}
	endRow := func() error {
		endField()
		if len(fields) != len(cols) {
			return fmt.Errorf("CSV row %d has %d columns, the columns header %d", len(rows)+1, len(fields), len(cols))
		}
		row := map[string]any{}
		for i, c := range cols {
			row[c] = fields[i]
		}
		rows = append(rows, row)
		fields = nil
		return nil
	}
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case inQuote && c == enclose && i+1 < len(body) && body[i+1] == enclose:
			cur = append(cur, enclose)
			i += 2
		case inQuote && c == enclose:
			inQuote = false
			i++
		case inQuote:
			cur = append(cur, c)
			i++
		case enclose != 0 && c == enclose && len(cur) == 0:
			inQuote, quoted = true, true
			i++
		case bytes.HasPrefix(body[i:], []byte(colSep)):
			endField()
			i += len(colSep)
		case bytes.HasPrefix(body[i:], []byte(rowSep)):
			if err := endRow(); err != nil {
				return nil, err
			}
			i += len(rowSep)
		default:
			cur = append(cur, c)
			i++
		}
	}
	if inQuote {
		return nil, fmt.Errorf("CSV: unterminated enclosed field")
	}
	if len(cur) > 0 || quoted || len(fields) > 0 {
		if err := endRow(); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// unhex decodes a separator: \xNN… is hex, anything else is literal.
func unhex(s, def string) string {
	if s == "" {
		s = def
	}
	if s == "\\t" {
		return "\t"
	}
	if s == "\\n" {
		return "\n"
	}
	if strings.HasPrefix(strings.ToLower(s), "\\x") {
		if b, err := hex.DecodeString(s[2:]); err == nil {
			return string(b)
		}
	}
	return s
}
