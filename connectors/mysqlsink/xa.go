package mysqlsink

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	gomysql "github.com/go-sql-driver/mysql"

	"sluice/connectors"
)

// Exactly-once (semantic=exactly-once) through XA transactions.
//
// Between barriers the sink only buffers: the changes of a checkpoint
// interval stay in memory, deduplicated by key. At barrier N, PreCommit
// writes them in one XA transaction on the task's own connection — XA
// START, the writes, XA END, XA PREPARE — and the checkpoint stores its
// xid. Commit(N), sent once the catalog committed N, runs XA COMMIT. Recover
// commits the xid the recovered checkpoint names and rolls back every other
// prepared transaction of this task (XA RECOVER lists them; a crashed
// run's connections are gone, so they are detached and any session may end
// them).
//
// Between XA PREPARE and XA COMMIT the prepared transaction holds its row
// and metadata locks, and the connection can run nothing else. So batches
// that arrive then are held as they are (deferred) and written once Commit
// ends it: a schema change for a table the prepared transaction touched
// would otherwise wait on its metadata lock forever. A barrier that finds
// the previous transaction still prepared means that checkpoint failed: the
// task fails, and the restart rolls the transaction back and replays.
//
// Buffering until the barrier (not writing into an open XA transaction)
// keeps schema changes possible: an ALTER cannot run while the task's own
// transaction is active on the table. A schema change inside an interval
// keeps the rows buffered before it as an older generation of the table,
// written with their columns renamed or dropped as the change did.

// xaState is the checkpoint state of a task in exactly-once mode.
type xaState struct {
	// XID is the branch qualifier of the transaction prepared at this
	// checkpoint ("" when the interval had no changes).
	XID string `json:"xid,omitempty"`
}

// prepared is the transaction prepared at checkpoint id, waiting for
// Commit(id).
type prepared struct {
	id    uint64
	bqual string
}

var xidChars = regexp.MustCompile(`[^A-Za-z0-9_]`)

// gtrid is the global transaction id of this task: the same for every
// checkpoint of every run of the task, and distinct per job incarnation
// (job id), pipeline and subtask. XA allows 64 bytes; a longer or
// sanitised name ends with a hash of the full one.
func (s *Sink) gtrid() string {
	all := []string{s.set.xidPrefix, s.env.Job, "j" + strconv.FormatUint(s.env.JobID, 10),
		"p" + strconv.Itoa(s.env.Pipeline), "t" + strconv.Itoa(s.env.Subtask)}
	g := xidChars.ReplaceAllString(strings.Join(all, "_"), "_")
	if g != strings.Join(all, "_") || len(g) > 64 {
		h := sha1.Sum([]byte(strings.Join(all, "\x00")))
		g = g[:min(len(g), 39)] + "_" + hex.EncodeToString(h[:12])
	}
	return g
}

// bqual names the transaction prepared at checkpoint id by attempt:
// "<id>_a<attempt>".
func bqual(id uint64, attempt int) string {
	return strconv.FormatUint(id, 10) + "_a" + strconv.Itoa(attempt)
}

// attemptOf is the attempt a branch qualifier names (0 for one made
// before attempts were in it, or not ours).
func attemptOf(bq string) int {
	_, a, ok := strings.Cut(bq, "_a")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(a)
	return n
}

// rollbackOlder rolls back the transactions of this task that an older
// attempt left prepared. Safe at any time after Recover: this run started
// from the last checkpoint the catalog completed, whose transaction Recover
// committed, and the catalog refuses every later commit of an older
// attempt, so no transaction prepared by one will ever be committed. A
// zombie (a frozen run that thawed after its job moved) may prepare after
// Recover ran; this sweep, before each transaction of this run, ends those
// (and their locks).
func (s *Sink) rollbackOlder(ctx context.Context) error {
	left, err := s.leftovers(ctx)
	if err != nil {
		return err
	}
	for _, bq := range left {
		if attemptOf(bq) >= s.env.Attempt {
			continue
		}
		if err := s.xaExec(ctx, "XA ROLLBACK "+xid(s.gtrid(), bq)); err != nil && !isMySQLError(err, errXANotA) {
			return fmt.Errorf("XA ROLLBACK %s (prepared by attempt %d, fenced): %w", bq, attemptOf(bq), err)
		}
		s.log("rolled back a transaction an older attempt prepared", "xid", s.gtrid()+","+bq)
	}
	return nil
}

// xid renders an xid as hex literals, safe for any bytes.
func xid(gtrid, bqual string) string {
	return "X'" + hex.EncodeToString([]byte(gtrid)) + "',X'" + hex.EncodeToString([]byte(bqual)) + "'"
}

// Error numbers of the XA statements.
const (
	errXANotA  = 1397 // XAER_NOTA: unknown xid (already committed or rolled back)
	errXARMErr = 1399 // XAER_RMFAIL: the transaction is in the wrong state
)

func isMySQLError(err error, n uint16) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == n
}

// xaConn is the task's own connection, taken from the pool when there is
// none yet.
func (s *Sink) xaConn(ctx context.Context) (*sql.Conn, error) {
	if s.conn == nil {
		c, err := s.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect for XA: %w", err)
		}
		s.conn = c
	}
	return s.conn, nil
}

// xaExec runs one XA statement on the task's connection.
func (s *Sink) xaExec(ctx context.Context, stmt string) error {
	c, err := s.xaConn(ctx)
	if err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, stmt)
	return err
}

// dropConn gives up the task's connection: a transaction still active on
// it is rolled back by the server, a prepared one is detached and kept.
func (s *Sink) dropConn() {
	if s.conn != nil {
		s.conn.Raw(func(any) error { return driver.ErrBadConn }) //nolint:errcheck // the pool discards a bad connection
		s.conn.Close()
		s.conn = nil
	}
}

// commitXID commits a prepared transaction of this task. An unknown xid
// was committed already (a commit whose answer was lost, or a second
// Commit for the same checkpoint). A connection that broke is replaced
// once: the prepared transaction survives it.
func (s *Sink) commitXID(ctx context.Context, bqual string) error {
	stmt := "XA COMMIT " + xid(s.gtrid(), bqual)
	err := s.xaExec(ctx, stmt)
	if err != nil && !isMySQLError(err, errXANotA) && !isMySQLError(err, errXARMErr) {
		s.dropConn()
		err = s.xaExec(ctx, stmt)
	}
	if err != nil && !isMySQLError(err, errXANotA) {
		return fmt.Errorf("XA COMMIT %s: %w", bqual, err)
	}
	return nil
}

// leftovers lists the branch qualifiers of this task's prepared
// transactions at the target.
func (s *Sink) leftovers(ctx context.Context) ([]string, error) {
	c, err := s.xaConn(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.QueryContext(ctx, "XA RECOVER")
	if err != nil {
		return nil, fmt.Errorf("XA RECOVER: %w", err)
	}
	defer rows.Close()
	g := s.gtrid()
	var out []string
	for rows.Next() {
		var format, gl, bl int
		var data []byte
		if err := rows.Scan(&format, &gl, &bl, &data); err != nil {
			return nil, fmt.Errorf("XA RECOVER: %w", err)
		}
		if format == 1 && gl == len(g) && gl+bl <= len(data) && string(data[:gl]) == g {
			out = append(out, string(data[gl:gl+bl]))
		}
	}
	return out, rows.Err()
}

// recoverXA commits the transaction the recovered checkpoint prepared and
// rolls back every other one this task left prepared.
func (s *Sink) recoverXA(ctx context.Context, id uint64, data []byte) error {
	var st xaState
	if len(data) > 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("checkpoint state: %w", err)
		}
	}
	left, err := s.leftovers(ctx)
	if err != nil {
		return err
	}
	for _, bq := range left {
		if bq == st.XID && id > 0 {
			continue
		}
		if err := s.xaExec(ctx, "XA ROLLBACK "+xid(s.gtrid(), bq)); err != nil && !isMySQLError(err, errXANotA) {
			return fmt.Errorf("XA ROLLBACK %s (prepared after checkpoint %d): %w", bq, id, err)
		}
		s.log("rolled back a transaction of a crashed run", "xid", s.gtrid()+","+bq, "checkpoint", id)
	}
	if st.XID != "" && id > 0 {
		return s.commitRecovered(ctx, st.XID, slices.Contains(left, st.XID))
	}
	return nil
}

// commitRecovered commits the transaction the recovered checkpoint
// prepared. While the crashed run's session is still being torn down the
// server answers XA COMMIT with "unknown xid" although XA RECOVER lists the
// transaction (it is still attached there): taking that answer for
// "committed already" lost the checkpoint's rows (the conformance suite's
// ExactlyOnce check, once in a CI run). So a transaction that was listed
// is committed until it is no longer listed.
func (s *Sink) commitRecovered(ctx context.Context, bq string, listed bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := s.commitXID(ctx, bq); err != nil || !listed {
			return err
		}
		left, err := s.leftovers(ctx)
		if err != nil {
			return err
		}
		if !slices.Contains(left, bq) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("XA COMMIT %s: still prepared and held by another session after 30 s", bq)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// preCommitXA writes the interval's changes in one XA transaction and
// prepares it.
func (s *Sink) preCommitXA(ctx context.Context, id uint64) ([]byte, error) {
	if s.prepared != nil {
		return nil, s.notCommitted(id)
	}
	if s.rows == 0 {
		return nil, nil
	}
	// Invariant (fencing): a transaction is named by its checkpoint and the
	// attempt that prepared it, so two runs never share one, and a run
	// knows which prepared transactions are an older (fenced) run's.
	if err := s.rollbackOlder(ctx); err != nil {
		return nil, err
	}
	bq := bqual(id, s.env.Attempt)
	x := xid(s.gtrid(), bq)
	if err := s.xaExec(ctx, "XA START "+x); err != nil {
		s.dropConn()
		return nil, fmt.Errorf("XA START %s: %w", bq, err)
	}
	fail := func(err error) ([]byte, error) {
		s.dropConn() // the server rolls the active transaction back
		return nil, err
	}
	for _, t := range s.tables {
		if err := writeAll(ctx, s.conn, t, s.set.maxRows); err != nil {
			return fail(err)
		}
	}
	if err := s.xaExec(ctx, "XA END "+x); err != nil {
		return fail(fmt.Errorf("XA END %s: %w", bq, err))
	}
	if err := s.xaExec(ctx, "XA PREPARE "+x); err != nil {
		return fail(fmt.Errorf("XA PREPARE %s: %w", bq, err))
	}
	for _, t := range s.tables {
		t.clear()
	}
	s.rows = 0
	s.prepared = &prepared{id: id, bqual: bq}
	return json.Marshal(xaState{XID: bq})
}

func (s *Sink) notCommitted(id uint64) error {
	return fmt.Errorf("the transaction prepared at checkpoint %d is still uncommitted at checkpoint %d, so that checkpoint failed; "+
		"restarting from the last committed checkpoint rolls it back", s.prepared.id, id)
}

// commitXA commits the prepared transaction once its checkpoint is
// committed, then writes the batches held back meanwhile.
func (s *Sink) commitXA(ctx context.Context, id uint64) error {
	if s.prepared == nil || s.prepared.id > id {
		return nil
	}
	if err := s.commitXID(ctx, s.prepared.bqual); err != nil {
		return err
	}
	s.prepared = nil
	held := s.deferred
	s.deferred = nil
	defer func() {
		for _, b := range held {
			b.Release()
		}
	}()
	for len(held) > 0 {
		b := held[0]
		held = held[1:]
		err := s.writeLocked(ctx, b)
		b.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// holdBatch keeps a batch that arrived while a transaction is prepared.
func (s *Sink) holdBatch(b connectors.Batch) {
	if b.Record != nil {
		b.Record.Retain()
	}
	s.deferred = append(s.deferred, b)
}

// generations turns t, buffered under its schema before a schema change,
// and its older generations into the older generations of the table under
// the new schema: columns the change renamed carry their new names,
// columns it dropped are not written.
func (t *target) generations(schema *arrow.Schema, ddl string) []*target {
	renamed := map[string]string{}
	for _, r := range connectors.RenamedColumns(ddl) {
		renamed[strings.ToLower(r[0])] = r[1]
	}
	present := map[string]bool{}
	for _, f := range schema.Fields()[1:] {
		present[strings.ToLower(f.Name)] = true
	}
	project := func(g *target) *target {
		p := *g
		p.older, p.keep = nil, nil
		p.cols = slices.Clone(g.cols)
		for _, i := range g.written() {
			c := g.cols[i]
			if to, ok := renamed[strings.ToLower(c)]; ok {
				p.cols[i] = to
			}
			if present[strings.ToLower(p.cols[i])] || !connectors.DropsColumn(ddl, c) {
				p.keep = append(p.keep, i)
			}
		}
		return &p
	}
	var out []*target
	for _, g := range t.older {
		out = append(out, project(g))
	}
	if len(t.order) > 0 {
		out = append(out, project(t))
	}
	return out
}

// checkXA verifies that the target keeps prepared XA transactions when
// the connection that prepared them ends (MariaDB 10.5+, MySQL 5.7.7+),
// and that the user may list them.
func checkXA(ctx context.Context, db *sql.DB) error {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return fmt.Errorf("%w: %v", connectors.ErrUnreachable, err)
	}
	major, minor, patch := versionOf(version)
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")
	if (mariadb && (major < 10 || major == 10 && minor < 5)) || (!mariadb && (major < 5 || major == 5 && (minor < 7 || minor == 7 && patch < 7))) {
		return fmt.Errorf("%w: 'semantic'='exactly-once' needs a server that keeps prepared XA transactions across a disconnect "+
			"(MariaDB 10.5 or later, MySQL 5.7.7 or later); the target is %s", connectors.ErrPrecondition, version)
	}
	rows, err := db.QueryContext(ctx, "XA RECOVER")
	if err != nil {
		return fmt.Errorf("%w: 'semantic'='exactly-once' runs XA RECOVER after a crash, and the target refused it: %v "+
			"(MySQL 8 needs GRANT XA_RECOVER_ADMIN ON *.*)", connectors.ErrPrecondition, err)
	}
	return rows.Close()
}

func versionOf(v string) (major, minor, patch int) {
	parts := strings.SplitN(v, ".", 3)
	num := func(i int) int {
		if i >= len(parts) {
			return 0
		}
		d := parts[i]
		for j, r := range d {
			if r < '0' || r > '9' {
				d = d[:j]
				break
			}
		}
		n, _ := strconv.Atoi(d)
		return n
	}
	return num(0), num(1), num(2)
}
