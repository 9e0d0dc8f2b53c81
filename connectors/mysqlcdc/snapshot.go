package mysqlcdc

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/decimal256"

	"sluice/connectors"
)

// chunkWork is one snapshot chunk between its SELECT and its high
// watermark: the rows read, patched by the binlog changes of their keys
// until the reader reaches the watermark.
type chunkWork struct {
	t      *table
	lo, hi []any // canonical key bounds: (lo, hi]; nil lo = from the start, nil hi = to the end
	hiText [][]byte
	list   []*bufRow          // the chunk's rows in order, then keys added in the window
	rows   map[string]*bufRow // index of list by key, built when a change first needs it
	h      binlogPos
	// recs: list already converted to Arrow (a chunk read ahead), valid
	// while no change has patched the chunk.
	recs    []arrow.Record
	patched bool
	read    int // rows the SELECT read
}

type bufRow struct {
	cells   [][]byte // the row as the snapshot read it (text; nil = NULL), until a change replaces it
	vals    []any    // a change's image: the row, or its last image when deleted
	deleted bool
}

// keyString is the row's key in encodeKey form.
func (r *bufRow) keyString(t *table) string {
	if r.vals != nil {
		return t.keyString(r.vals)
	}
	key := make([]any, len(t.PK))
	for i, k := range t.PK {
		key[i], _ = t.Cols[k].fromText(r.cells[k])
	}
	return encodeKey(key)
}

// owns says whether a change of key belongs to the chunk: a key the chunk
// holds (or held), or one inside its bounds.
func (w *chunkWork) owns(key []any, ks string) bool {
	if w.rows == nil { // most windows see no change of the chunk's keys
		w.rows = make(map[string]*bufRow, len(w.list))
		for _, r := range w.list {
			w.rows[r.keyString(w.t)] = r
		}
	}
	if _, ok := w.rows[ks]; ok {
		return true
	}
	if w.lo != nil && compareKeys(key, w.lo) <= 0 {
		return false
	}
	return w.hi == nil || compareKeys(key, w.hi) <= 0
}

// route applies a change to the chunk if the chunk owns its key. vals are
// in src's column layout, which differs from the chunk's when the table's
// schema changed during the chunk: the decision depends only on the key
// (so a restart decides the same), and the row is stored in the chunk's
// layout, by column name.
func (w *chunkWork) route(k connectors.RowKind, vals []any, src *table) bool {
	key := src.keyOf(vals)
	ks := encodeKey(key)
	if !w.owns(key, ks) {
		return false
	}
	if src != w.t {
		mapped := make([]any, len(w.t.Cols))
		for i, c := range w.t.Cols {
			j := src.index(c.Name)
			switch {
			case j >= 0 && sameKind(c, src.Cols[j]):
				mapped[i] = vals[j]
			case j < 0:
				// A column added since the change: the row has held its
				// default since (ADD COLUMN filled it in), NULL when that is
				// not a constant.
				mapped[i], _ = c.defaultValue()
			}
		}
		vals = mapped
	}
	r, ok := w.rows[ks]
	if !ok {
		r = &bufRow{}
		w.rows[ks] = r
		w.list = append(w.list, r)
	}
	r.vals, r.cells, r.deleted = vals, nil, k == connectors.Delete || k == connectors.UpdateBefore
	w.patched = true
	return true
}

// sameKind says whether a value of b can be stored as a value of a.
func sameKind(a, b column) bool { return a.kind == b.kind && arrow.TypeEqual(a.typ, b.typ) }

func compareKeys(a, b []any) int {
	for i := range a {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func (t *table) keyOf(vals []any) []any {
	k := make([]any, len(t.PK))
	for i, c := range t.PK {
		k[i] = vals[c]
	}
	return k
}

func (t *table) keyString(vals []any) string { return encodeKey(t.keyOf(vals)) }

// encodeKey is an injective string form of a canonical key.
func encodeKey(key []any) string {
	var b []byte
	for _, v := range key {
		switch x := v.(type) {
		case nil:
			b = append(b, 'n')
		case int64:
			b = binary.BigEndian.AppendUint64(append(b, 'i'), uint64(x))
		case uint64:
			b = binary.BigEndian.AppendUint64(append(b, 'u'), x)
		case int32:
			b = binary.BigEndian.AppendUint32(append(b, 'd'), uint32(x))
		case float64:
			b = binary.BigEndian.AppendUint64(append(b, 'f'), math.Float64bits(x))
		case decimal128.Num:
			b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(append(b, 'D'), uint64(x.HighBits())), x.LowBits())
		case decimal256.Num:
			for _, w := range x.Array() {
				b = binary.BigEndian.AppendUint64(b, w)
			}
		case string:
			b = binary.BigEndian.AppendUint32(append(b, 's'), uint32(len(x)))
			b = append(b, x...)
		case []byte:
			b = binary.BigEndian.AppendUint32(append(b, 'b'), uint32(len(x)))
			b = append(b, x...)
		}
	}
	return string(b)
}

// startChunk reads the next chunk of the table being snapshotted and takes
// its high watermark. The reader then runs to the watermark, patching the
// chunk (Read), and finishChunk emits it.
func (s *Source) startChunk(ctx context.Context) error {
	for len(s.snap.Pending) > 0 && s.tables[s.snap.Pending[0]] == nil {
		s.snap.Pending, s.snap.After = s.snap.Pending[1:], nil // dropped or renamed away
	}
	if len(s.snap.Pending) == 0 {
		s.snap = nil
		s.pf.stop()
		s.pf = nil
		return nil
	}
	t := s.tables[s.snap.Pending[0]]
	if len(t.pendingDDL) > 0 {
		// The reader passed an ALTER of this table and no rows event has
		// said what it did yet: the current definition is its result if the
		// reader is at the end of the binlog (as in ddl). Else the chunk
		// waits once for the reader to reach that end (a rows event may
		// settle it); then the current definition is taken (a later ALTER
		// arrives as a DDL of its own).
		end, err := masterStatus(ctx, s.db)
		if err != nil {
			return err
		}
		if !(binlogPos{s.file, s.lastPos}).reached(end) && s.chunkNotBefore.File == "" {
			s.chunkNotBefore = end
			return nil
		}
		nt, err := loadTable(ctx, s.db, t.ID, s.set.chunkKey)
		if err != nil {
			return err
		}
		s.tables[t.key()] = nt
		s.announce(nt, strings.Join(t.pendingDDL, ";\n"))
		t = nt
	}
	s.chunkNotBefore = binlogPos{}
	if len(t.PK) == 0 {
		return fmt.Errorf("%w: table %s has no primary key, so it cannot be snapshotted in chunks: add a primary key, "+
			"or name a unique, non-null column with snapshot.chunk.key", connectors.ErrPrecondition, t.key())
	}
	redo := s.snap.Active // a restart inside this chunk: same key range again
	r := chunkRange{lo: s.snap.After, hi: s.snap.Hi, open: s.snap.Open}
	limit := 0
	if !redo {
		r.hi, r.open, limit = nil, true, s.set.chunkSize
	}
	w := &chunkWork{t: t}
	for i, k := range t.PK {
		if r.lo == nil {
			break
		}
		lo, err := t.Cols[k].fromText(r.lo[i])
		if err != nil {
			return fmt.Errorf("snapshot position of %s: %w", t.key(), err)
		}
		w.lo = append(w.lo, lo)
	}
	// The reader may already hold a transaction that is in the binlog
	// but not yet visible to a new snapshot (group commit writes the
	// binlog first). Such a chunk would be older than changes already
	// emitted: read it again until its watermark is not behind the reader.
	reader := binlogPos{s.file, s.lastPos}
	var n int
	var last [][]byte
	var h binlogPos
	ahead := false // the chunk was read ahead (prefetch.go)
	if !redo && s.set.parallelism > 1 {
		sc, err := s.pf.take(ctx, t, r.lo)
		if err != nil {
			return err
		}
		if sc == nil { // none read ahead from here: start reading ahead
			s.pf.stop()
			s.startPrefetch(t, r.lo)
			if sc, err = s.pf.take(ctx, t, r.lo); err != nil {
				return err
			}
		}
		if sc != nil {
			r, limit = sc.r, 0
			if sc.h.reached(reader) {
				h, w.list, w.recs, ahead = sc.h, sc.list, sc.recs, true
			} else { // its watermark is behind the reader: read the range again, here
				sc.release()
			}
		}
	}
	for attempt := 0; !ahead; attempt++ {
		w.rows, w.list = nil, nil
		q, args := chunkQuery(t, selectList(t), r, limit)
		var err error
		if n, last, h, err = s.scan(ctx, t, q, args, w); errors.Is(err, errSchemaAhead) {
			w.rows, w.list = nil, nil
			s.pf.stop()
			s.pf = nil
			if s.chunkNotBefore.File != "" {
				// The reader waited once and still holds the old definition
				// (a DDL it does not parse): take the current one, as a rows
				// event of another layout would.
				nt, err := loadTable(ctx, s.db, t.ID, s.set.chunkKey)
				if err != nil {
					return err
				}
				s.tables[t.key()] = nt
				s.announce(nt, "-- schema changed")
			}
			s.chunkNotBefore = h // read the binlog up to here (past the ALTER) first
			return nil
		} else if err != nil {
			return fmt.Errorf("snapshot %s: %w", t.key(), err)
		}
		if h.reached(reader) {
			break
		}
		if attempt == 1000 {
			return fmt.Errorf("snapshot %s: the server's snapshot position %s:%d stays behind the binlog already read (%s:%d)",
				t.key(), h.File, h.Pos, reader.File, reader.Pos)
		}
		time.Sleep(time.Millisecond)
	}
	if s.snap.After == nil {
		s.announce(t, "") // a new table at the sink, even if it stays empty
	}
	w.h, w.read = h, len(w.list)
	if limit > 0 { // the SELECT's LIMIT fixed the range's end
		r = scannedRange(r.lo, n, limit, last)
	}
	if !r.open {
		w.hiText = r.hi
		for i, k := range t.PK {
			v, err := t.Cols[k].fromText(r.hi[i])
			if err != nil {
				return fmt.Errorf("snapshot position of %s: %w", t.key(), err)
			}
			w.hi = append(w.hi, v)
		}
	}
	mark := position{File: s.boundary.File, Pos: s.boundary.Pos}
	if s.gset != nil {
		mark.GTID = s.gset.String()
	}
	s.chunkMark = &mark
	s.snap.Active, s.snap.Hi, s.snap.Open = true, w.hiText, w.hiText == nil
	s.chunk = w
	if (binlogPos{s.file, s.lastPos}).reached(w.h) {
		return s.finishChunk()
	}
	return nil
}

// selectList is the column list of a chunk's SELECT.
func selectList(t *table) string {
	cols := make([]string, len(t.Cols))
	for i := range t.Cols {
		cols[i] = selectExpr(&t.Cols[i])
	}
	return strings.Join(cols, ",")
}

// selectExpr is how a column is read by a chunk's SELECT.
func selectExpr(c *column) string {
	switch {
	case c.kind == kFloat32: // the text protocol rounds FLOAT to 6 digits
		return "CAST(" + quoteIdent(c.Name) + " AS DOUBLE)"
	case c.kind == kUint && c.width == 32:
		// go-sql-driver at our pin parses INT UNSIGNED text as int32
		// and fails above 2147483647; a string passes through.
		return "CAST(" + quoteIdent(c.Name) + " AS CHAR)"
	}
	return quoteIdent(c.Name)
}

// chunkQuery is the SELECT of cols over the key range r in key order, at
// most limit rows when limit > 0.
func chunkQuery(t *table, cols string, r chunkRange, limit int) (string, []any) {
	keyCols := make([]string, len(t.PK))
	marks := make([]string, len(t.PK))
	for i, k := range t.PK {
		keyCols[i] = quoteIdent(t.Cols[k].Name)
		marks[i] = "?"
	}
	q := "SELECT " + cols + " FROM " + quoteIdent(t.ID.Database) + "." + quoteIdent(t.ID.Table)
	var args []any
	key := func(v [][]byte) {
		for i, k := range t.PK {
			if t.Cols[k].kind == kBinary {
				args = append(args, v[i])
			} else {
				args = append(args, string(v[i]))
			}
		}
	}
	var where []string
	if r.lo != nil {
		where = append(where, "("+strings.Join(keyCols, ",")+") > ("+strings.Join(marks, ",")+")")
		key(r.lo)
	}
	if !r.open {
		where = append(where, "("+strings.Join(keyCols, ",")+") <= ("+strings.Join(marks, ",")+")")
		key(r.hi)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + strings.Join(keyCols, ",")
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return q, args
}

// scan runs one chunk SELECT into w and returns the row count, the text
// key of the last row, and the chunk's watermark: the binlog position its
// rows are consistent with.
//
// On MariaDB the SELECT runs in a consistent-snapshot transaction and the
// watermark is Binlog_snapshot_file/position: exactly the transactions the
// snapshot sees, none missing, none extra. On MySQL, which has no such
// status, the watermark is the binlog end after the SELECT; a transaction
// already in the binlog but not yet visible to the SELECT (a
// microseconds-wide window of group commit) could be missed there.
func (s *Source) scan(ctx context.Context, t *table, q string, args []any, w *chunkWork) (int, [][]byte, binlogPos, error) {
	var h binlogPos
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, nil, h, err
	}
	defer conn.Close()
	if s.maria {
		if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return 0, nil, h, err
		}
		if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
			return 0, nil, h, err
		}
		defer conn.ExecContext(context.Background(), "COMMIT") //nolint:errcheck // read-only
		rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return 0, nil, h, err
		}
		for rows.Next() {
			var name, val string
			if err := rows.Scan(&name, &val); err != nil {
				rows.Close()
				return 0, nil, h, err
			}
			switch strings.ToLower(name) {
			case "binlog_snapshot_file":
				h.File = val
			case "binlog_snapshot_position":
				p, _ := strconv.ParseUint(val, 10, 32)
				h.Pos = uint32(p)
			}
		}
		rows.Close()
		if h.File == "" {
			return 0, nil, h, fmt.Errorf("SHOW STATUS LIKE 'binlog_snapshot_%%' gave no position")
		}
	}
	n := 0
	var last [][]byte
	err = conn.Raw(func(dc any) error {
		// Not cancelled midway: on the driver's own connection a cancel
		// races the driver's cleanup with the next statement (go test
		// -race showed it), so a cancelled Read ends after the chunk's
		// SELECT instead, which costs one chunk's read.
		var err error
		n, last, err = readChunk(context.WithoutCancel(ctx), dc, t, q, args, w)
		return err
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, nil, h, err
	}
	if !s.maria {
		if h, err = masterStatus(ctx, s.db); err != nil {
			return 0, nil, h, err
		}
	}
	// The SELECT names the columns the reader knows. If the table has
	// changed since (an ALTER the reader has not reached), the rows lack a
	// column or carry a stale layout, and emitting them under the old
	// schema would lose the new column's values: the chunk waits until the
	// reader is past this snapshot (and so past the ALTER). In the
	// snapshot transaction the table's metadata lock is held, so this is
	// the definition the SELECT read.
	// The column list of SELECT * (no rows: the server only opens the
	// table) is the table's, in order: about 0.1 ms against 0.7–0.8 ms for
	// information_schema.COLUMNS (an idle MariaDB here, 300 queries each).
	cols, err := conn.QueryContext(ctx, "SELECT * FROM "+quoteIdent(t.ID.Database)+"."+quoteIdent(t.ID.Table)+" LIMIT 0")
	if err != nil {
		return 0, nil, h, err
	}
	names, err := cols.Columns()
	cols.Close()
	if err != nil {
		return 0, nil, h, err
	}
	if !slices.EqualFunc(names, t.colNames(), strings.EqualFold) {
		return 0, nil, h, errSchemaAhead
	}
	return n, last, h, nil
}

// readChunk runs a chunk's SELECT on the driver's own connection and
// keeps each row's text in w. It reads driver values, not database/sql
// rows: these give the driver's values as they are, where Rows.Scan into
// RawBytes formats every number the driver parsed back into text through
// reflection (a third of the scan's time). Numbers are written back as
// the text the server sent, bar leading zeros (ZEROFILL), which the
// builders read the same.
func readChunk(ctx context.Context, dc any, t *table, q string, args []any, w *chunkWork) (int, [][]byte, error) {
	qc, ok := dc.(driver.QueryerContext)
	if !ok {
		return 0, nil, fmt.Errorf("the MySQL driver has no QueryerContext")
	}
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	rows, err := qc.QueryContext(ctx, q, named)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	if got := len(rows.Columns()); got != len(t.Cols) {
		return 0, nil, fmt.Errorf("chunk SELECT returned %d columns, want %d", got, len(t.Cols))
	}
	dest := make([]driver.Value, len(t.Cols))
	n := 0
	var last [][]byte
	// The rows' text is copied into blocks shared by many rows, their cells
	// and bufRows taken from slabs, rather than three allocations per row.
	var buf []byte
	var cellSlab [][]byte
	var rowSlab []bufRow
	var num [32]byte
	for {
		if err := rows.Next(dest); err == io.EOF {
			break
		} else if err != nil {
			return 0, nil, err
		}
		size := 0
		for _, v := range dest {
			if b, ok := v.([]byte); ok {
				size += len(b)
			} else if v != nil {
				size += 24
			}
		}
		if cap(buf)-len(buf) < size {
			buf = make([]byte, 0, max(size, 256<<10))
		}
		if cap(cellSlab)-len(cellSlab) < len(dest) {
			cellSlab = make([][]byte, 0, len(dest)*512)
		}
		if len(rowSlab) == cap(rowSlab) {
			rowSlab = make([]bufRow, 0, 512)
		}
		cells := cellSlab[len(cellSlab) : len(cellSlab)+len(dest) : len(cellSlab)+len(dest)]
		cellSlab = cellSlab[:len(cellSlab)+len(dest)]
		for i, v := range dest {
			var text []byte
			switch x := v.(type) {
			case nil:
				cells[i] = nil
				continue
			case []byte:
				text = x
			case int64:
				text = strconv.AppendInt(num[:0], x, 10)
			case uint64:
				text = strconv.AppendUint(num[:0], x, 10)
			case float64:
				text = strconv.AppendFloat(num[:0], x, 'g', -1, 64)
			case float32:
				text = strconv.AppendFloat(num[:0], float64(x), 'g', -1, 32)
			case string:
				text = []byte(x)
			default:
				return 0, nil, fmt.Errorf("column %s: unexpected driver value %T", t.Cols[i].Name, v)
			}
			start := len(buf)
			buf = append(buf, text...)
			cells[i] = buf[start:len(buf):len(buf)]
		}
		rowSlab = append(rowSlab, bufRow{cells: cells})
		w.list = append(w.list, &rowSlab[len(rowSlab)-1])
		n++
		last = last[:0]
		for _, k := range t.PK {
			last = append(last, cells[k])
		}
	}
	return n, last, nil
}

// errSchemaAhead: the table changed after the schema the reader knows.
var errSchemaAhead = errors.New("table definition is ahead of the binlog reader")

// finishChunk emits the chunk at its watermark and records the progress.
func (s *Source) finishChunk() error {
	w := s.chunk
	s.chunk = nil
	s.cut()
	if w.patched {
		w.recs = releaseAll(w.recs)
	}
	for i, rec := range w.recs {
		if i == len(w.recs)-1 {
			s.chunkDone(w)
		}
		s.out = append(s.out, connectors.Batch{Table: w.t.ID, Record: rec, Position: s.encodePosition(), EventTime: s.eventTime})
	}
	if w.recs != nil {
		return nil
	}
	for _, r := range w.list {
		// A key deleted in the window may have reached the sink before
		// the chunk started (a change of a not-yet-snapshotted key), so
		// its delete is emitted too; for other keys it is a no-op.
		switch {
		case r.deleted:
			s.appendRow(w.t, connectors.Delete, r.vals)
		case r.cells != nil:
			if err := s.appendCells(w.t, r.cells); err != nil {
				return fmt.Errorf("snapshot %s: %w", w.t.key(), err)
			}
		default:
			s.appendRow(w.t, connectors.Insert, r.vals)
		}
	}
	s.chunkDone(w)
	s.cut()
	return nil
}

// chunkDone records that chunk w is emitted: the restart point moves past it.
func (s *Source) chunkDone(w *chunkWork) {
	s.chunkCounted(w.t, w.read, w.hi == nil)
	s.snap.Active, s.snap.Hi, s.snap.Open = false, nil, false
	s.chunkMark = nil
	s.markHere()
	if w.hi == nil {
		s.snap.Pending, s.snap.After = s.snap.Pending[1:], nil
		if len(s.snap.Pending) == 0 {
			s.snap = nil
			s.pf.stop()
			s.pf = nil
			s.log.Info("snapshot finished", "job", s.env.Job)
		}
	} else {
		s.snap.After = w.hiText
	}
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// masterStatus is the server's current binlog file and position.
func masterStatus(ctx context.Context, db *sql.DB) (binlogPos, error) {
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return binlogPos{}, fmt.Errorf("SHOW MASTER STATUS (needs BINLOG MONITOR / REPLICATION CLIENT): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return binlogPos{}, fmt.Errorf("%w: SHOW MASTER STATUS returned nothing: binary logging is off; start the server with log_bin", connectors.ErrPrecondition)
	}
	var p binlogPos
	vals := make([]any, len(cols))
	var skip sql.RawBytes
	for i := range vals {
		vals[i] = &skip
	}
	vals[0], vals[1] = &p.File, &p.Pos
	if err := rows.Scan(vals...); err != nil {
		return binlogPos{}, err
	}
	return p, rows.Err()
}
