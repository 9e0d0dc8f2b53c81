package starrocks

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"

	"sluice/connectors"
	"sluice/connectors/mysqlconn"
)

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
	if err := s.set.keylessRefused([]connectors.TableInfo{{ID: id, Key: pk}}); err != nil {
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
		if err := s.ensureTable(ctx, t, schema); err != nil {
			return t, err
		}
		if b.DDL == "" {
			return t, s.readColumns(ctx, t)
		}
	}
	if err := s.evolve(ctx, t, schema.Fields()[1:], old, oldTypes, b.DDL); err != nil {
		return t, err
	}
	return t, s.readColumns(ctx, t)
}

// keylessRefused refuses, at-least-once, source tables without a key
// unless keyless=append accepts the duplicates a replay loads (at CREATE
// through Spec.CheckTables, and for a table first seen at run time).
func (set settings) keylessRefused(tables []connectors.TableInfo) error {
	if set.exactlyOnce || set.appendKeyless {
		return nil
	}
	return connectors.RefuseKeyless(tables, "it loads into a DUPLICATE KEY table, and an at-least-once replay after a crash would load its rows twice")
}

// readColumns learns the table's columns at StarRocks (target.have).
func (s *Sink) readColumns(ctx context.Context, t *target) error {
	db, addr, err := s.queryDB()
	if err != nil {
		return err
	}
	defer db.Close()
	t.have, err = tableColumns(ctx, db, addr, t)
	return err
}

// tableColumns lists a table's columns (lower-case) over the query port:
// the one query of them, for readColumns and evolve.
func tableColumns(ctx context.Context, db *sql.DB, addr string, t *target) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?", t.db, t.table)
	if err != nil {
		return nil, fmt.Errorf("StarRocks query port %s: columns of %s.%s: %w", addr, t.db, t.table, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		have[strings.ToLower(name)] = true
	}
	return have, rows.Err()
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
	cols, err := tableColumns(ctx, db, addr, t)
	if err != nil {
		return err
	}
	for c := range cols {
		had[c] = oldTypes[c]
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
