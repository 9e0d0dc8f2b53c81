package verify

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"sluice/catalog"
	"sluice/connectors"
)

// chunk is one key range of a table as the source's first read cut it.
type chunk struct {
	loText, hiText   string // last key of the previous chunk, last of this one ("": open)
	srcRows, dstRows int64
	srcSum, dstSum   uint64
	differ           int // keys whose rows differ (or are on one side only)
	rechecks         int
	checkedAt        time.Time
}

// extraChunk holds the target rows whose key the source's first read did
// not have.
const extraChunk = -1

type column struct {
	name string
	kind kind
}

// comparison is one table's verification. Row hashes are kept per key
// (about 50 bytes a row), so rows that differ can be read again alone.
type comparison struct {
	v          *Verifier
	job        catalog.Job
	src, dst   *sql.DB
	id, target connectors.TableID
	key        []string
	where      string
	chunkRows  int

	cols    []column
	keyIdx  []int
	chunks  []*chunk
	extra   chunk
	srcHash map[string]uint64
	dstHash map[string]uint64
	chunkOf map[string]int
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func quoted(id connectors.TableID) string {
	return quoteIdent(id.Database) + "." + quoteIdent(id.Table)
}

// run compares the whole table, then reads the rows that differ again
// until they agree or Rechecks rounds have passed: a change on its way
// to the target makes its row differ for a moment, a row changed behind
// the job's back stays different.
func (c *comparison) run(ctx context.Context) (TableResult, error) {
	if err := c.columns(ctx); err != nil {
		return TableResult{}, err
	}
	c.srcHash, c.dstHash, c.chunkOf = map[string]uint64{}, map[string]uint64{}, map[string]int{}
	readAt, err := c.readSourceAll(ctx)
	if err != nil {
		return TableResult{}, err
	}
	c.v.caughtUp(ctx, c.job.Name, readAt)
	if err := c.readTarget(ctx, nil); err != nil {
		return TableResult{}, err
	}
	for round := 1; round <= c.v.cfg.Rechecks; round++ {
		differ := c.differing()
		if len(differ) == 0 {
			break
		}
		seen := map[int]bool{}
		for _, k := range differ {
			if i := c.chunkOf[k]; !seen[i] {
				seen[i] = true
				c.chunkAt(i).rechecks++
			}
		}
		if readAt, err = c.readSourceKeys(ctx, differ); err != nil {
			return TableResult{}, err
		}
		c.v.caughtUp(ctx, c.job.Name, readAt)
		if err := c.readTarget(ctx, differ); err != nil {
			return TableResult{}, err
		}
	}
	c.tally()
	res := TableResult{Table: c.id.String(), Chunks: len(c.chunks)}
	for _, ch := range append(c.chunks, &c.extra) {
		res.SourceRows += ch.srcRows
		res.TargetRows += ch.dstRows
		if ch.differ > 0 {
			res.Different++
		}
	}
	return res, nil
}

func (c *comparison) chunkAt(i int) *chunk {
	if i == extraChunk {
		return &c.extra
	}
	return c.chunks[i]
}

// differing lists the keys whose rows differ, in order.
func (c *comparison) differing() []string {
	var out []string
	for k, h := range c.srcHash {
		if d, ok := c.dstHash[k]; !ok || d != h {
			out = append(out, k)
		}
	}
	for k := range c.dstHash {
		if _, ok := c.srcHash[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// tally sums each chunk's rows and hashes (order-independent checksums).
func (c *comparison) tally() {
	now := time.Now().UTC()
	for _, ch := range append(c.chunks, &c.extra) {
		ch.srcRows, ch.dstRows, ch.srcSum, ch.dstSum, ch.differ, ch.checkedAt = 0, 0, 0, 0, 0, now
	}
	for k, h := range c.srcHash {
		ch := c.chunkAt(c.chunkOf[k])
		ch.srcRows++
		ch.srcSum += h
		if d, ok := c.dstHash[k]; !ok || d != h {
			ch.differ++
		}
	}
	for k, h := range c.dstHash {
		ch := c.chunkAt(c.chunkOf[k])
		ch.dstRows++
		ch.dstSum += h
		if _, ok := c.srcHash[k]; !ok {
			ch.differ++
		}
	}
}

// columns reads the source table's columns and key positions.
func (c *comparison) columns(ctx context.Context) error {
	rows, err := c.src.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
		c.id.Database, c.id.Table)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var col column
		var dt string
		if err := rows.Scan(&col.name, &dt); err != nil {
			return err
		}
		col.kind = kindOf(dt)
		c.cols = append(c.cols, col)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, k := range c.key {
		at := -1
		for i, col := range c.cols {
			if strings.EqualFold(col.name, k) {
				at = i
			}
		}
		if at < 0 {
			return fmt.Errorf("key column %s not found", k)
		}
		c.keyIdx = append(c.keyIdx, at)
	}
	return nil
}

func (c *comparison) selectList() string {
	names := make([]string, len(c.cols))
	for i, col := range c.cols {
		names[i] = quoteIdent(col.name)
	}
	return strings.Join(names, ",")
}

// keysMatch is a condition matching the keys listed, and its arguments
// (OR of ANDs: StarRocks and MySQL both take it).
func (c *comparison) keysMatch(keys []string) (string, []any) {
	var ors []string
	var args []any
	for _, k := range keys {
		vals := splitKey(k)
		ands := make([]string, len(c.key))
		for i, name := range c.key {
			ands[i] = quoteIdent(name) + " = ?"
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		args = append(args, vals...)
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

func (c *comparison) cond(extra string) string {
	var parts []string
	if extra != "" {
		parts = append(parts, extra)
	}
	if c.where != "" {
		parts = append(parts, "("+c.where+")")
	}
	if len(parts) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(parts, " AND ")
}

// snapshot runs f in one consistent-snapshot transaction of the source
// and returns when the snapshot was taken.
func (c *comparison) snapshot(ctx context.Context, f func(conn *sql.Conn) error) (time.Time, error) {
	conn, err := c.src.Conn(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	readAt := time.Now()
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return time.Time{}, err
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "COMMIT") }()
	return readAt, f(conn)
}

// readSourceAll reads the whole table in key order, cutting it into
// chunks of chunkRows keys.
func (c *comparison) readSourceAll(ctx context.Context) (time.Time, error) {
	keyCols := make([]string, len(c.key))
	for i, k := range c.key {
		keyCols[i] = quoteIdent(k)
	}
	q := "SELECT " + c.selectList() + " FROM " + quoted(c.id) + c.cond("") + " ORDER BY " + strings.Join(keyCols, ",")
	var cur *chunk
	at, err := c.snapshot(ctx, func(conn *sql.Conn) error {
		return c.scan(ctx, conn, q, nil, nil, func(vals [][]byte, key string) {
			if cur == nil || cur.srcRows == int64(c.chunkRows) {
				next := &chunk{}
				if cur != nil {
					next.loText = cur.hiText
				}
				c.chunks = append(c.chunks, next)
				cur = next
			}
			cur.srcRows++
			cur.hiText = c.keyText(vals)
			c.srcHash[key] = rowHash(vals)
			c.chunkOf[key] = len(c.chunks) - 1
		})
	})
	if len(c.chunks) == 0 {
		c.chunks = append(c.chunks, &chunk{}) // an empty table is one empty chunk
	}
	c.chunks[len(c.chunks)-1].hiText = "" // the last chunk is open-ended
	return at, err
}

// readSourceKeys reads the rows of the keys listed again.
func (c *comparison) readSourceKeys(ctx context.Context, keys []string) (time.Time, error) {
	for _, k := range keys {
		delete(c.srcHash, k)
	}
	return c.snapshot(ctx, func(conn *sql.Conn) error {
		for start := 0; start < len(keys); start += 500 {
			batch := keys[start:min(start+500, len(keys))]
			match, args := c.keysMatch(batch)
			q := "SELECT " + c.selectList() + " FROM " + quoted(c.id) + c.cond(match)
			if err := c.scan(ctx, conn, q, args, nil, func(vals [][]byte, key string) {
				c.srcHash[key] = rowHash(vals)
				if _, ok := c.chunkOf[key]; !ok {
					c.chunkOf[key] = extraChunk
				}
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// readTarget reads the target's rows: all (keys nil) or those of keys.
// A target that cannot filter by key (the StarRocks emulator) is read
// whole and the keys picked out.
func (c *comparison) readTarget(ctx context.Context, keys []string) error {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		delete(c.dstHash, k)
	}
	keep := func(vals [][]byte, key string) {
		if keys != nil && !want[key] {
			return
		}
		c.dstHash[key] = rowHash(vals)
		if _, ok := c.chunkOf[key]; !ok {
			c.chunkOf[key] = extraChunk
		}
	}
	conn, err := c.dst.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	whole := "SELECT * FROM " + quoted(c.target) + c.cond("")
	if keys == nil {
		return c.scanTarget(ctx, conn, whole, nil, keep)
	}
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		match, args := c.keysMatch(batch)
		if err := c.scanTarget(ctx, conn, "SELECT * FROM "+quoted(c.target)+c.cond(match), args, keep); err != nil {
			return c.scanTarget(ctx, conn, whole, nil, keep)
		}
	}
	return nil
}

// scanTarget maps the target's columns to the source's by name.
func (c *comparison) scanTarget(ctx context.Context, conn *sql.Conn, q string, args []any, f func(vals [][]byte, key string)) error {
	byName := func(names []string) ([]int, error) {
		if len(names) == 1 && names[0] == "(empty)" { // the emulator's empty table
			return make([]int, len(c.cols)), nil
		}
		at := make([]int, len(c.cols))
		for i, col := range c.cols {
			at[i] = -1
			for k, n := range names {
				if strings.EqualFold(n, col.name) {
					at[i] = k
				}
			}
			if at[i] < 0 {
				return nil, fmt.Errorf("target %s has no column %s", c.target, col.name)
			}
		}
		return at, nil
	}
	if err := c.scan(ctx, conn, q, args, byName, f); err != nil {
		return fmt.Errorf("target %s: %w", c.target, err)
	}
	return nil
}

// scan runs q and hands each row's canonical values (in the source's
// column order; mapCols maps the result's columns to them, nil: the same
// order) and canonical key to f.
func (c *comparison) scan(ctx context.Context, conn *sql.Conn, q string, args []any, mapCols func([]string) ([]int, error), f func(vals [][]byte, key string)) error {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return err
	}
	var at []int
	if mapCols != nil {
		if at, err = mapCols(names); err != nil {
			return err
		}
	}
	cells := make([]sql.RawBytes, len(names))
	ptrs := make([]any, len(cells))
	for i := range cells {
		ptrs[i] = &cells[i]
	}
	keyVals := make([][]byte, len(c.keyIdx))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		vals := make([][]byte, len(c.cols))
		for i := range c.cols {
			k := i
			if at != nil {
				k = at[i]
			}
			if k >= 0 && k < len(cells) && cells[k] != nil {
				vals[i] = canon(c.cols[i].kind, append([]byte{}, cells[k]...))
			}
		}
		for i, k := range c.keyIdx {
			keyVals[i] = vals[k]
		}
		f(vals, keyString(keyVals))
	}
	return rows.Err()
}

func (c *comparison) keyText(vals [][]byte) string {
	parts := make([]string, len(c.keyIdx))
	for i, k := range c.keyIdx {
		parts[i] = string(vals[k])
	}
	return strings.Join(parts, ",")
}

// records are the table's chunks as sluice.verifications keeps them.
func (c *comparison) records() []catalog.Verification {
	var out []catalog.Verification
	add := func(i int, ch *chunk) {
		out = append(out, catalog.Verification{JobID: c.job.ID, Job: c.job.Name, Table: c.id.String(), Chunk: i,
			LowerKey: ch.loText, UpperKey: ch.hiText, SourceRows: ch.srcRows, TargetRows: ch.dstRows,
			SourceChecksum: ch.srcSum, TargetChecksum: ch.dstSum, Equal: ch.differ == 0, Rechecks: ch.rechecks, CheckedAt: ch.checkedAt})
	}
	for i, ch := range c.chunks {
		add(i, ch)
	}
	if c.extra.srcRows > 0 || c.extra.dstRows > 0 {
		add(extraChunk, &c.extra)
	}
	return out
}
