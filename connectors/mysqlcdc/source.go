package mysqlcdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"

	"sluice/connectors"
)

// maxBatchRows caps the rows of one emitted batch.
const maxBatchRows = 4096

// position is what a checkpoint stores for the source (JSON).
type position struct {
	// The last committed transaction: GTID set (flavor syntax) and file:pos
	// of its end. A restart prefers the GTID set.
	GTID string `json:"gtid,omitempty"`
	File string `json:"file"`
	Pos  uint32 `json:"pos"`
	// Skip counts the row changes read after this point that were already
	// emitted (a batch ended inside a transaction, or inside a snapshot
	// chunk's window, which restarts from where the chunk began).
	Skip int64 `json:"skip,omitempty"`
	// Snapshot is the initial snapshot's progress; nil once it is done.
	Snapshot *snapState `json:"snapshot,omitempty"`
}

// snapState is the progress of the chunked snapshot.
type snapState struct {
	Pending []string `json:"pending"`         // tables still to snapshot; the first is in progress
	After   [][]byte `json:"after,omitempty"` // key (text) of the last row of the last finished chunk
	// The chunk in progress, if any: its upper key (none when Open), so
	// a restart re-reads the same key range and routes changes the same way.
	Active bool     `json:"active,omitempty"`
	Hi     [][]byte `json:"hi,omitempty"`
	Open   bool     `json:"open,omitempty"`
	// Rows and chunks of the first pending table emitted so far (for
	// sluice.job_tables: progress survives a restart).
	Rows   int64 `json:"rows,omitempty"`
	Chunks int64 `json:"chunks,omitempty"`
}

// binlogPos orders file:pos positions.
type binlogPos struct {
	File string
	Pos  uint32
}

func (p binlogPos) reached(h binlogPos) bool {
	if p.File == h.File {
		return p.Pos >= h.Pos
	}
	return fileSeq(p.File) > fileSeq(h.File)
}

func fileSeq(name string) int64 {
	i := strings.LastIndexByte(name, '.')
	n, _ := strconv.ParseInt(name[i+1:], 10, 64)
	return n
}

// Source is one mysql_cdc reader.
type Source struct {
	set       settings
	env       connectors.Env
	log       *slog.Logger
	batchRows int // maxBatchRows; tests lower it to cut inside transactions

	db     *sql.DB
	mon    *monitor // what the source reports (status.go)
	syncer *replication.BinlogSyncer
	stream *replication.BinlogStreamer
	maria  bool

	tables map[string]*table // captured tables by "db.table"
	// fde is the stream's format description (checksum, header sizes);
	// decoders the row decoder of each table for its table map layout.
	fde      *replication.FormatDescriptionEvent
	decoders map[string]*cachedDecoder

	// reader state
	evq      []*replication.BinlogEvent
	file     string
	lastPos  uint32 // end of the last event seen
	gset     mysql.GTIDSet
	txnMaria mysql.MariadbGTID
	txnMySQL struct {
		sid uuid.UUID
		gno int64
		ok  bool
	}
	boundary binlogPos
	inTxn    bool
	txnRows  bool // the current transaction changed a captured table
	// emitted counts the row changes read from the binlog since the restart
	// point (the last transaction boundary, or while a chunk is in
	// progress, the boundary where it began: chunkMark), emitted or routed
	// to the chunk alike. Invariant: the count does not depend on routing,
	// so a restart skips exactly the changes read before it — a restarted
	// run reads the same changes before its chunk starts again and emits
	// them; counting only emitted ones made it skip too few and deliver a
	// change twice (TestSnapshotUnderWritesWithRestarts, about 1 run in 10).
	emitted   int64
	skip      int64 // changes to drop after Open: emitted before the crash
	chunkMark *position
	notBefore uint32 // startup.timestamp: drop changes older than this

	snap  *snapState
	chunk *chunkWork
	pf    *prefetcher // chunks read ahead (snapshot.parallelism > 1)
	// chunkNotBefore: the next chunk waits until the reader is here (the
	// table changed ahead of the reader; see scan).
	chunkNotBefore binlogPos

	openedAt  time.Time // a new job's start: what SourceTime says before any event
	out       []connectors.Batch
	cur       *pendingBatch
	eventTime time.Time
}

type pendingBatch struct {
	t  *table
	rb *array.RecordBuilder
	n  int
}

// Open connects, resolves the start position and starts the binlog stream.
func (s *Source) Open(ctx context.Context, from connectors.Position) error {
	db, err := openDB(s.set)
	if err != nil {
		return err
	}
	s.db = db
	info, err := preflight(ctx, db, s.set)
	if err != nil {
		return err
	}
	s.maria = info.maria
	if s.tables, err = loadTables(ctx, db, info.tables, s.set.chunkKey); err != nil {
		return err
	}
	var start position
	if len(from) > 0 {
		if err := json.Unmarshal(from, &start); err != nil {
			return fmt.Errorf("stored position %q: %w", from, err)
		}
		s.skip = start.Skip
		// A restart inside a transaction that no chunk was reading: finish
		// it before a chunk starts, as the first run did.
		s.inTxn = start.Skip > 0 && (start.Snapshot == nil || !start.Snapshot.Active)
	} else if start, err = s.startPosition(ctx); err != nil {
		return err
	}
	s.snap = start.Snapshot
	if data, err := json.Marshal(start); err == nil {
		s.log.Info("mysql_cdc starts", "job", s.env.Job, "attempt", s.env.Attempt, "position", string(data))
	}
	s.boundary = binlogPos{start.File, start.Pos}
	s.file, s.lastPos = start.File, start.Pos
	flavor := mysql.MySQLFlavor
	if s.maria {
		flavor = mysql.MariaDBFlavor
	}
	if s.gset, err = mysql.ParseGTIDSet(flavor, start.GTID); err != nil {
		return fmt.Errorf("GTID set %q: %w", start.GTID, err)
	}
	cfg := replication.BinlogSyncerConfig{
		ServerID: s.set.serverID, Flavor: flavor, Host: s.set.host, Port: uint16(s.set.port),
		User: s.set.user, Password: s.set.password, Charset: "utf8mb4",
		ParseTime: true, UseDecimal: true, HeartbeatPeriod: s.set.heartbeat, ReadTimeout: 3*s.set.heartbeat + 5*time.Second,
		MaxReconnectAttempts: 10, EventCacheCount: 512, VerifyChecksum: true,
		RowsEventDecodeFunc: headerOnly, // rows are decoded by the reader: rowdecode.go
		Logger:              discardLogger,
	}
	s.syncer = replication.NewBinlogSyncer(cfg)
	if start.GTID != "" {
		s.stream, err = s.syncer.StartSyncGTID(s.gset.Clone())
	} else {
		s.stream, err = s.syncer.StartSync(mysql.Position{Name: start.File, Pos: start.Pos})
	}
	if err != nil {
		return fmt.Errorf("start binlog stream at %s:%d (gtid %q): %w", start.File, start.Pos, start.GTID, err)
	}
	if len(from) == 0 {
		s.openedAt = time.Now().UTC() // a new job's start position is the head as of now (or one it chose)
	}
	s.startMonitor(ctx)
	return nil
}

// startPosition resolves startup.mode for a job without a checkpoint.
func (s *Source) startPosition(ctx context.Context) (position, error) {
	var p position
	switch s.set.mode {
	case "initial", "latest":
		cur, err := masterStatus(ctx, s.db)
		if err != nil {
			return p, err
		}
		p.File, p.Pos = cur.File, cur.Pos
		if s.set.mode == "initial" {
			st := &snapState{}
			for k := range s.tables {
				st.Pending = append(st.Pending, k)
			}
			sort.Strings(st.Pending)
			if len(st.Pending) > 0 {
				p.Snapshot = st
			}
		}
	case "earliest", "timestamp":
		var name string
		var size any
		rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
		if err != nil {
			return p, fmt.Errorf("SHOW BINARY LOGS: %w", err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		vals[0] = &name
		for i := 1; i < len(cols); i++ {
			vals[i] = &size
		}
		if rows.Next() {
			err = rows.Scan(vals...)
		}
		rows.Close()
		if err != nil || name == "" {
			return p, fmt.Errorf("no binary log to start from: %v", err)
		}
		p.File, p.Pos = name, 4
		if s.set.mode == "timestamp" {
			s.notBefore = uint32(s.set.timestamp.Unix())
		}
	case "specific":
		if s.set.gtid != "" {
			p.GTID = s.set.gtid
			return p, nil
		}
		p.File, p.Pos = s.set.file, uint32(s.set.pos)
	}
	if s.maria && p.GTID == "" && p.File != "" {
		// The GTID state at that point, so the checkpoint can carry it.
		var g sql.NullString
		if err := s.db.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", p.File, p.Pos).Scan(&g); err == nil && g.Valid {
			p.GTID = g.String
		}
	}
	return p, nil
}

// Read returns the next batch. See DESIGN.md for the snapshot algorithm.
func (s *Source) Read(ctx context.Context) (connectors.Batch, error) {
	for {
		if len(s.out) > 0 {
			b := s.out[0]
			s.out[0] = connectors.Batch{}
			s.out = s.out[1:]
			return b, nil
		}
		if s.snap != nil && s.chunk == nil && !s.inTxn && (s.chunkNotBefore.File == "" || (binlogPos{s.file, s.lastPos}).reached(s.chunkNotBefore)) {
			if err := s.startChunk(ctx); err != nil {
				return connectors.Batch{}, err
			}
			continue
		}
		if len(s.evq) == 0 {
			s.evq = s.stream.DumpEvents()
		}
		if len(s.evq) == 0 {
			if s.cur != nil && s.cur.n > 0 {
				s.cut() // the stream is idle: hand over what we have
				continue
			}
			s.mon.waiting.Store(true)
			ev, err := s.stream.GetEvent(ctx)
			if err == nil {
				s.mon.waiting.Store(false)
			}
			if err != nil {
				if ctx.Err() != nil {
					return connectors.Batch{}, ctx.Err()
				}
				return connectors.Batch{}, s.streamError(err)
			}
			s.evq = append(s.evq, ev)
		}
		ev := s.evq[0]
		s.evq[0] = nil
		s.evq = s.evq[1:]
		if err := s.handle(ctx, ev); err != nil {
			return connectors.Batch{}, err
		}
		if s.chunk != nil && !s.inTxn && (binlogPos{s.file, s.lastPos}).reached(s.chunk.h) {
			if err := s.finishChunk(); err != nil {
				return connectors.Batch{}, err
			}
		}
	}
}

// streamError explains the binlog errors users can act on.
func (s *Source) streamError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "1236") || strings.Contains(msg, "purged") || strings.Contains(msg, "Could not find"):
		return fmt.Errorf("%w: the binlog needed to continue from %s:%d (gtid %q) is gone from the server (%v); "+
			"changes after it cannot be read, so the job stops rather than skip them: re-create the job to take a new snapshot, "+
			"and keep binlogs longer (binlog_expire_logs_seconds) than a job may be stopped", connectors.ErrPrecondition, s.boundary.File, s.boundary.Pos, s.gset.String(), err)
	}
	return fmt.Errorf("binlog stream from %s: %w", s.set.addr(), err)
}

// Position implements connectors.Positioner: when nothing is buffered, the
// position moves with every transaction read, captured or not.
func (s *Source) Position() connectors.Position {
	if len(s.out) > 0 || (s.cur != nil && s.cur.n > 0) {
		return nil
	}
	return s.encodePosition()
}

func (s *Source) encodePosition() connectors.Position {
	var p position
	if s.snap != nil && s.snap.Active && s.chunkMark != nil {
		p = *s.chunkMark
	} else {
		p = position{File: s.boundary.File, Pos: s.boundary.Pos}
		if s.gset != nil {
			p.GTID = s.gset.String()
		}
	}
	p.Snapshot, p.Skip = s.snap, s.emitted
	b, _ := json.Marshal(p)
	return b
}

// markHere makes the current boundary the restart point.
func (s *Source) markHere() {
	s.emitted, s.skip = 0, 0
}

// Close stops the stream and the connection pool.
func (s *Source) Close() error {
	s.pf.stop()
	if s.mon != nil {
		s.mon.stop()
	}
	if s.chunk != nil {
		s.chunk.recs = releaseAll(s.chunk.recs)
	}
	if s.syncer != nil {
		s.syncer.Close()
	}
	if s.cur != nil {
		s.cur.rb.Release()
		s.cur = nil
	}
	for _, b := range s.out {
		b.Release()
	}
	s.out = nil
	if s.db != nil {
		return s.db.Close()
	}
	return nil
}

// emit appends one row to the pending batch of t, unless the row was
// emitted before the restart (Position.Skip). The batch of another table
// is cut first, so its position counts only the rows it holds: counting
// this row before that cut made a restart skip a row it never delivered.
func (s *Source) emit(t *table, k connectors.RowKind, vals []any) {
	if !s.count(t) || (k == connectors.Insert || k == connectors.UpdateAfter) && s.unread(t, vals) {
		return
	}
	s.appendRow(t, k, vals)
}

// count counts one row change of t read from the binlog, after cutting
// another table's pending batch, and says whether it is to be emitted:
// false for the changes emitted before a restart (Position.Skip).
func (s *Source) count(t *table) bool {
	if s.cur != nil && s.cur.t != t {
		s.cut()
	}
	s.emitted++
	s.stat(t).lastEvent.Store(s.eventTime.Unix())
	return s.emitted > s.skip
}

// keylessSnapshot says whether the snapshot's rule for tables without a
// primary key (unread) can apply to t's changes.
func (s *Source) keylessSnapshot(t *table) bool {
	return s.snap != nil && len(t.PK) > 0 && !t.HasPK
}

// unread says, for a table without a primary key (chunked by
// snapshot.chunk.key), whether the snapshot has yet to read this row's
// key, so a new image of the row (an insert, an update's after image) must
// not be emitted: the chunk that reads the key runs its SELECT later, and sees
// the change. Emitting it as well applies it twice — which an upsert by
// key hides, but a table without a key (chunked by snapshot.chunk.key)
// keeps as a duplicate row. Deletes and before images are still emitted:
// an at-least-once target may hold the row from an earlier attempt's
// chunk that no checkpoint covers, and only the delete removes it. A table still waiting
// drops every change; the table in progress those beyond the chunk (key
// compared in Go only for numeric keys, whose order is the server's; other
// keys are emitted, which is safe for keyed tables). The decision is made
// after the change is counted (emitted), so a restart's skip count does not
// depend on it.
func (s *Source) unread(t *table, vals []any) bool {
	if !s.keylessSnapshot(t) {
		// A table with a primary key keeps the plain stream: its sinks
		// upsert by key, and every change keeps its before image in
		// order (TestSnapshotUnderWritesWithRestarts checks that history;
		// dropping after images broke it).
		return false
	}
	i := slices.Index(s.snap.Pending, t.key())
	switch {
	case i < 0:
		return false
	case i > 0:
		return true
	}
	for _, k := range t.PK {
		if c := t.Cols[k].kind; c != kInt && c != kUint {
			return false
		}
	}
	var bound []any
	switch {
	case s.chunk != nil && s.chunk.t.ID == t.ID:
		bound = s.chunk.hi // changes inside it were routed to the chunk
	case s.snap.Active:
		return false // a chunk to re-read after a restart: not started yet
	case s.snap.After == nil:
		return true // nothing of the table read yet
	default:
		for j, k := range t.PK {
			v, err := t.Cols[k].fromText(s.snap.After[j])
			if err != nil {
				return false
			}
			bound = append(bound, v)
		}
	}
	return bound != nil && compareKeys(t.keyOf(vals), bound) > 0
}

// appendRow adds a row to the pending batch of t without counting it (a
// snapshot chunk's rows are not counted: a restart recomputes them).
func (s *Source) appendRow(t *table, k connectors.RowKind, vals []any) {
	rb := s.builder(t, k)
	for i, v := range vals {
		appendValue(rb.Field(i+1), v)
	}
	s.rowAdded()
}

// appendCells adds a snapshot row, converting its text straight into the
// builders (an INSERT; not counted, like appendRow).
func (s *Source) appendCells(t *table, cells [][]byte) error {
	if err := appendTextCells(s.builder(t, connectors.Insert), t, cells); err != nil {
		return err
	}
	s.rowAdded()
	return nil
}

// appendTextCells appends a snapshot row's text to the columns of rb (the
// row kind is the caller's).
func appendTextCells(rb *array.RecordBuilder, t *table, cells [][]byte) error {
	for i, c := range cells {
		if err := appendText(rb.Field(i+1), &t.Cols[i], c); err != nil {
			return fmt.Errorf("column %s: %w", t.Cols[i].Name, err)
		}
	}
	return nil
}

// builder returns the pending batch of t with the row kind appended.
func (s *Source) builder(t *table, k connectors.RowKind) *array.RecordBuilder {
	if s.cur != nil && s.cur.t != t {
		s.cut()
	}
	if s.cur == nil {
		s.cur = &pendingBatch{t: t, rb: array.NewRecordBuilder(s.env.Alloc, t.schema)}
	}
	s.cur.rb.Field(0).(*array.Int8Builder).Append(int8(k))
	return s.cur.rb
}

func (s *Source) rowAdded() {
	s.cur.n++
	if s.cur.n >= s.batchRows {
		s.cut()
	}
}

// cut turns the pending rows into a batch carrying the current position.
func (s *Source) cut() {
	if s.cur == nil {
		return
	}
	p := s.cur
	s.cur = nil
	if p.n == 0 {
		p.rb.Release()
		return
	}
	rec := p.rb.NewRecord()
	p.rb.Release()
	s.out = append(s.out, connectors.Batch{Table: p.t.ID, Record: rec, Position: s.encodePosition(), EventTime: s.eventTime})
}

// announce queues a batch without rows that carries t's schema.
func (s *Source) announce(t *table, ddl string) {
	s.cut()
	rb := array.NewRecordBuilder(s.env.Alloc, t.schema)
	rec := rb.NewRecord()
	rb.Release()
	s.out = append(s.out, connectors.Batch{Table: t.ID, Record: rec, Position: s.encodePosition(), EventTime: s.eventTime, DDL: ddl})
}

var (
	identRe  = "(?:`((?:[^`]|``)+)`|([\\p{L}\\p{N}_$]+))"
	nameRe   = identRe + "(?:\\s*\\.\\s*" + identRe + ")?"
	alterRe  = regexp.MustCompile("(?is)^ALTER\\s+(?:ONLINE\\s+|IGNORE\\s+)*TABLE\\s+(?:IF\\s+EXISTS\\s+)?" + nameRe)
	createRe = regexp.MustCompile("(?is)^CREATE\\s+(?:OR\\s+REPLACE\\s+)?(?:TEMPORARY\\s+)?TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?" + nameRe)
	renameRe = regexp.MustCompile("(?is)^RENAME\\s+TABLES?\\s+(.*)$")
	pairRe   = regexp.MustCompile("(?is)^\\s*" + nameRe + "\\s+TO\\s+" + nameRe + "\\s*$")
	dropRe   = regexp.MustCompile("(?is)^DROP\\s+(?:TEMPORARY\\s+)?TABLE")
)

// tableName resolves a parsed "[db.]table" against the event's schema.
func tableName(m []string, i int, schema string) connectors.TableID {
	first := unquote(m[i], m[i+1])
	second := unquote(m[i+2], m[i+3])
	if second == "" {
		return connectors.TableID{Database: schema, Table: first}
	}
	return connectors.TableID{Database: first, Table: second}
}

func unquote(quoted, bare string) string {
	if quoted != "" {
		return strings.ReplaceAll(quoted, "``", "`")
	}
	return bare
}

// ddl reacts to a schema change in the binlog: captured tables that
// changed announce their new schema; new or renamed tables that match
// `tables` are captured (a renamed-in table is snapshotted first).
func (s *Source) ddl(ctx context.Context, schema, q string) error {
	q = stripComments(q)
	switch {
	case alterRe.MatchString(q):
		id := tableName(alterRe.FindStringSubmatch(q), 1, schema)
		old := s.tables[id.String()]
		if old == nil {
			return nil
		}
		// The current schema is this DDL's result only if nothing follows
		// it in the binlog yet; otherwise the next rows event describes
		// the table as of its position (see rows).
		old.pendingDDL = append(old.pendingDDL, q)
		if end, err := masterStatus(ctx, s.db); err != nil || !(binlogPos{s.file, s.lastPos}).reached(end) {
			return nil
		}
		t, err := loadTable(ctx, s.db, id, s.set.chunkKey)
		if err != nil {
			if errors.Is(err, connectors.ErrPrecondition) && strings.Contains(err.Error(), "does not exist") {
				return nil // renamed away or dropped since; a later event says which
			}
			return err
		}
		s.tables[id.String()] = t
		s.announce(t, strings.Join(old.pendingDDL, ";\n"))
	case createRe.MatchString(q):
		id := tableName(createRe.FindStringSubmatch(q), 1, schema)
		if !s.set.matches(id) || s.tables[id.String()] != nil {
			return nil
		}
		t, err := loadTable(ctx, s.db, id, s.set.chunkKey)
		if err != nil {
			return err
		}
		s.tables[id.String()] = t
		s.stat(t)
		s.announce(t, q)
	case renameRe.MatchString(q):
		for _, pair := range strings.Split(renameRe.FindStringSubmatch(q)[1], ",") {
			m := pairRe.FindStringSubmatch(pair)
			if m == nil {
				continue
			}
			from, to := tableName(m, 1, schema), tableName(m, 5, schema)
			delete(s.tables, from.String())
			s.mon.forget(from.String())
			if !s.set.matches(to) {
				continue
			}
			t, err := loadTable(ctx, s.db, to, s.set.chunkKey)
			if err != nil {
				return err
			}
			s.tables[to.String()] = t
			s.announce(t, q)
			if s.snap == nil {
				s.snap = &snapState{}
			}
			s.snap.Pending = append(s.snap.Pending, to.String())
			s.stat(t).restart()
		}
	case dropRe.MatchString(q):
		// The target keeps its table: a sync job does not delete data.
	}
	return nil
}

func stripComments(q string) string {
	for {
		i := strings.Index(q, "/*")
		if i < 0 {
			return strings.TrimSpace(q)
		}
		j := strings.Index(q[i:], "*/")
		if j < 0 {
			return strings.TrimSpace(q[:i])
		}
		q = q[:i] + " " + q[i+j+2:]
	}
}
