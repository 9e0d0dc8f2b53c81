package mysqlsink

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"

	"sluice/connectors"
)

// ensure makes the target table match schema: created when missing (with
// the source's types, character sets, collations, defaults and comments);
// renamed, added, dropped and retyped columns when the source changed, by
// the shared rule connectors.DiffColumns.
func (s *Sink) ensure(ctx context.Context, id connectors.TableID, schema *arrow.Schema, ddl string, old *target) (*target, error) {
	t := &target{db: id.Database, name: id.Table, schema: schema, pending: map[string]*change{}}
	fields := schema.Fields()[1:]
	byName := map[string]int{}
	for i, f := range fields {
		t.cols = append(t.cols, f.Name)
		byName[strings.ToLower(f.Name)] = i
		t.geom = append(t.geom, isGeometry(sourceType(f)))
		t.zeroIfNull = append(t.zeroIfNull, zeroValue(f))
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
	if len(t.pk) == 0 && !s.set.appendKeyless && !s.set.exactlyOnce {
		return nil, connectors.RefuseKeyless([]connectors.TableInfo{{ID: id}}, keylessConsequence+" "+t.quoted())
	}
	existing, err := s.columns(ctx, t)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return t, s.create(ctx, t, fields, pkNames)
	}
	// A change the source announced may retype; first sight (a restart)
	// only adds what is missing: never drop or retype without a DDL.
	retype := func(f arrow.Field, have string) bool {
		return (ddl != "" || old != nil) && sourceType(f) != "" && !strings.EqualFold(have, sourceType(f))
	}
	var alters []string
	for _, c := range connectors.DiffColumns(existing, fields, ddl, retype) {
		switch c.Op {
		case connectors.RenameColumn:
			alters = append(alters, "RENAME COLUMN "+quote(c.From)+" TO "+quote(c.Name))
		case connectors.AddColumn:
			place := " FIRST"
			if c.After != "" {
				place = " AFTER " + quote(c.After)
			}
			alters = append(alters, "ADD COLUMN "+quote(c.Name)+" "+columnDef(c.Field, slices.Contains(t.pk, c.Index))+place)
		case connectors.ModifyColumn:
			alters = append(alters, "MODIFY COLUMN "+quote(c.Name)+" "+columnDef(c.Field, slices.Contains(t.pk, c.Index)))
		case connectors.DropColumn:
			alters = append(alters, "DROP COLUMN "+quote(c.Name))
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

// create makes a missing database and table. Text columns carry the
// source's character set and collation (utf8mb4 when unknown): a target
// server whose default is latin1 would otherwise turn every character
// outside it into '?'.
func (s *Sink) create(ctx context.Context, t *target, fields []arrow.Field, pkNames []string) error {
	var defs []string
	for i, f := range fields {
		defs = append(defs, quote(f.Name)+" "+columnDef(f, slices.Contains(t.pk, i)))
	}
	if len(pkNames) > 0 {
		q := make([]string, len(pkNames))
		for i, n := range pkNames {
			q[i] = quote(n)
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(q, ",")+")")
	}
	if _, err := s.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quote(t.db)+" CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create database %s: %w", quote(t.db), err)
	}
	stmt := "CREATE TABLE IF NOT EXISTS " + t.quoted() + " (" + strings.Join(defs, ", ") + ") DEFAULT CHARSET=utf8mb4"
	if _, err := s.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("create target table: %s: %w", stmt, err)
	}
	return nil
}

func (s *Sink) log(msg string, args ...any) {
	if s.env.Logger != nil {
		s.env.Logger.Info(msg, args...)
	}
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

func meta(f arrow.Field, key string) string {
	v, _ := f.Metadata.GetValue(key)
	return v
}

func sourceType(f arrow.Field) string { return meta(f, connectors.MetaSourceType) }

func isGeometry(typ string) bool {
	switch strings.ToLower(typ) {
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return true
	}
	return false
}

// isText says whether a column type takes a character set.
func isText(typ string) bool {
	t := strings.ToLower(typ)
	for _, p := range []string{"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"} {
		if t == p || strings.HasPrefix(t, p+"(") || strings.HasPrefix(t, p+" ") {
			return true
		}
	}
	return false
}

// columnDef is the target column definition of a field: the source's own
// type when the source said it, else one derived from the Arrow type;
// then character set and collation, nullability, default and comment.
func columnDef(f arrow.Field, key bool) string {
	typ := sourceType(f)
	if typ == "" {
		typ = fromArrow(f.Type, key)
	}
	var b strings.Builder
	b.WriteString(typ)
	if isText(typ) {
		cs := meta(f, connectors.MetaCharset)
		if cs == "" {
			cs = "utf8mb4"
		}
		b.WriteString(" CHARACTER SET " + cs)
		if co := meta(f, connectors.MetaCollation); co != "" && strings.HasPrefix(co, cs+"_") {
			b.WriteString(" COLLATE " + co)
		}
	}
	if f.Nullable && !key {
		b.WriteString(" NULL")
	} else {
		b.WriteString(" NOT NULL")
	}
	if d, ok := f.Metadata.GetValue(connectors.MetaDefault); ok && !(d == "NULL" && (key || !f.Nullable)) {
		b.WriteString(" DEFAULT " + d)
	}
	if c := meta(f, connectors.MetaComment); c != "" {
		b.WriteString(" COMMENT '" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(c) + "'")
	}
	return b.String()
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
