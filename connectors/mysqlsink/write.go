package mysqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"sluice/connectors/failpoint"
)

// execer is a transaction (at-least-once) or the task's XA connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writeAll writes a table's buffered changes: the generations buffered
// before a schema change first, then the current one.
func writeAll(ctx context.Context, ex execer, t *target, maxRows int) error {
	if len(t.order) > 0 {
		if err := failpoint.Hit(failpoint.MidBatch); err != nil { // tables before this one are written
			return err
		}
	}
	for _, g := range t.older {
		if err := writeGen(ctx, ex, g, maxRows); err != nil {
			return err
		}
	}
	return writeGen(ctx, ex, t, maxRows)
}

// writeGen writes one generation. With a key, changes are deduplicated
// per key, so deletes then upserts is the same as their order; without a
// key (exactly-once or keyless=append) they are written in order.
func writeGen(ctx context.Context, ex execer, t *target, maxRows int) error {
	if len(t.order) == 0 {
		return nil
	}
	perStmt := min(60000/(len(t.cols)+1), maxRows)
	var run [][]any
	upsert := func() error {
		for len(run) > 0 {
			n := min(len(run), perStmt)
			if err := execUpsert(ctx, ex, t, run[:n]); err != nil {
				return err
			}
			run = run[n:]
		}
		return nil
	}
	if len(t.pk) == 0 {
		for _, k := range t.order {
			c := t.pending[k]
			if !c.del {
				run = append(run, c.vals)
				continue
			}
			if err := upsert(); err != nil {
				return err
			}
			if err := execDeleteRow(ctx, ex, t, c.vals); err != nil {
				return err
			}
		}
		return upsert()
	}
	var dels [][]any
	for _, k := range t.order {
		if c := t.pending[k]; c.del {
			dels = append(dels, c.vals)
		} else {
			run = append(run, c.vals)
		}
	}
	for len(dels) > 0 {
		n := min(len(dels), perStmt)
		if err := execDelete(ctx, ex, t, dels[:n]); err != nil {
			return err
		}
		dels = dels[n:]
	}
	return upsert()
}

// written is the indexes of the columns a generation writes: all, or for
// an older generation those still at the target.
func (t *target) written() []int {
	if t.keep != nil {
		return t.keep
	}
	all := make([]int, len(t.cols))
	for i := range all {
		all[i] = i
	}
	return all
}

func execDelete(ctx context.Context, ex execer, t *target, rows [][]any) error {
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
	if _, err := ex.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("delete from %s: %w", t.quoted(), err)
	}
	return nil
}

// execDeleteRow deletes one row of a table without a key: the first row
// equal to the image in every column, as MySQL's own replication does.
func execDeleteRow(ctx context.Context, ex execer, t *target, row []any) error {
	var conds []string
	var args []any
	for _, i := range t.written() {
		conds = append(conds, quote(t.cols[i])+" <=> ?")
		args = append(args, row[i])
	}
	stmt := "DELETE FROM " + t.quoted() + " WHERE " + strings.Join(conds, " AND ") + " LIMIT 1"
	if _, err := ex.ExecContext(ctx, stmt, args...); err != nil {
		return fmt.Errorf("delete from %s: %w", t.quoted(), err)
	}
	return nil
}

func execUpsert(ctx context.Context, ex execer, t *target, rows [][]any) error {
	idx := t.written()
	cols := make([]string, len(idx))
	upd := make([]string, len(idx))
	for i, j := range idx {
		cols[i] = quote(t.cols[j])
		upd[i] = cols[i] + "=VALUES(" + cols[i] + ")"
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(idx)), ",") + ")"
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.quoted() + " (" + strings.Join(cols, ",") + ") VALUES ")
	args := make([]any, 0, len(rows)*len(idx))
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
		for _, j := range idx {
			args = append(args, r[j])
		}
	}
	if len(t.pk) > 0 {
		b.WriteString(" ON DUPLICATE KEY UPDATE " + strings.Join(upd, ","))
	}
	if _, err := ex.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("upsert into %s: %w", t.quoted(), err)
	}
	return nil
}
