package mysqlcdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/connectors/mysqlsink"
	"sluice/internal/mariadbtest"
)

const allTypes = `CREATE TABLE %s (
 id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
 i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 d DECIMAL(10,2), dbig DECIMAL(65,30), f FLOAT, dbl DOUBLE, b BIT(12),
 dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP(6) NULL, y YEAR,
 c CHAR(5), vc VARCHAR(50), l1 VARCHAR(20) CHARACTER SET latin1, tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB,
 e ENUM('a','b','it''s'), st SET('x','y','z'), j JSON, g GEOMETRY)`

var typeRows = []string{
	`(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	  -99999999.99, -99999999999999999999999999999999999.999999999999999999999999999999, -1.5, -1.7976931348623157e308, b'0',
	  '1000-01-01', '-838:59:59.000', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', 1901,
	  '', '', 'café', '', x'00000000', x'', x'', 'a', '', '{}', ST_GeomFromText('POINT(0 0)'))`,
	`(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	  99999999.99, 99999999999999999999999999999999999.999999999999999999999999999999, 0.1, 2.2250738585072014e-308, b'111111111111',
	  '9999-12-31', '838:59:59.999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', 2155,
	  'abcde', 'héllo 世界 🎉 '' " \\ tab	x', 'Ñandú €', REPEAT('long ', 1000), x'FFFFFFFF', x'00FF00', x'DEADBEEF', 'it''s', 'x,z',
	  '{"k": [1, 2, {"a": null}], "s": "é"}', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'))`,
	`(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`(4, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0.00, 0.000000000000000000000000000001, 3.25e10, 0, b'101',
	  '2024-02-29', '00:00:00.001', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.5', 2024,
	  'a', 'NULL', 'N', 'NULL', x'61626364', x'00', x'', 'b', 'x,y,z', '[]', ST_GeomFromText('LINESTRING(0 0,1 1)'))`,
}

// newMySQLSink opens a mysql sink into database on the test server; it is
// closed when the test ends. extra are more options, as key, value pairs.
func newMySQLSink(t *testing.T, alloc memory.Allocator, database string, extra ...string) connectors.Sink {
	t.Helper()
	raw := map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port),
		"user": mariadbtest.AdminUser, "password": mariadbtest.AdminPass, "database": database}
	for i := 0; i+1 < len(extra); i += 2 {
		raw[extra[i]] = extra[i+1]
	}
	cfg, err := mysqlsink.Options.Validate("mysql", raw)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := mysqlsink.Spec().NewSink(cfg, connectors.Env{Job: t.Name(), Alloc: alloc})
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sk.Close() })
	return sk
}

// TestEveryTypeSnapshotBinlogAndSink reads a table holding every type
// twice, once by the snapshot (text protocol) and once from the binlog,
// requires identical Arrow values, then writes both through the mysql sink
// and requires the target to equal the source (invariant I2).
func TestEveryTypeSnapshotBinlogAndSink(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE ty", fmt.Sprintf(allTypes, "ty.t"),
		"INSERT INTO ty.t VALUES "+strings.Join(typeRows, ","))
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	src := newSource(t, alloc, map[string]string{"tables": "ty\\.t", "heartbeat.interval": "200ms"})
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sk := newMySQLSink(t, alloc, "ty_dst")

	rows := map[string][]string{} // id → column values as Arrow renders them
	read := func(want int) {
		deadline := 200
		for len(rows) < want {
			if deadline--; deadline == 0 {
				t.Fatalf("got %d rows, want %d", len(rows), want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100e6)
			b, err := src.Read(ctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := sk.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < int(b.Record.NumRows()); i++ {
				var vals []string
				for j := 2; j < int(b.Record.NumCols()); j++ {
					vals = append(vals, b.Record.ColumnName(j)+"="+b.Record.Column(j).ValueStr(i))
				}
				rows[b.Record.Column(1).ValueStr(i)] = vals
			}
			b.Release()
		}
	}
	read(len(typeRows))
	srv.Exec(t, "INSERT INTO ty.t SELECT id+100, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d, dbig, f, dbl, b, dt, tm, dtm, ts, y, c, vc, l1, tx, bn, vb, bl, e, st, j, g FROM ty.t")
	read(2 * len(typeRows))
	for id := 1; id <= len(typeRows); id++ {
		snap, bin := rows[fmt.Sprint(id)], rows[fmt.Sprint(id+100)]
		for c := range snap {
			if snap[c] != bin[c] {
				t.Errorf("row %d: snapshot %s, binlog %s", id, snap[c], bin[c])
			}
		}
	}
	t.Logf("row 2 as Arrow: %v", rows["2"])
	if err := sk.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := srv.Open(t, "")
	want, err := mariadbtest.Checksum(db, "ty", "t")
	if err != nil {
		t.Fatal(err)
	}
	got, err := mariadbtest.Checksum(db, "ty_dst", "t")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("target differs from source: %v vs %v", got, want)
		diffRows(t, db)
	}
	src.Close()
	sk.Close()
	alloc.AssertSize(t, 0)
}

// diffRows names each (row, column) that differs between ty.t and ty_dst.t.
func diffRows(t *testing.T, db *sql.DB) {
	for _, c := range strings.Fields("ti tiu si siu mi miu i iu bi biu d dbig f dbl b dt tm dtm ts y c vc l1 tx bn vb bl e st j g") {
		rows, err := db.Query(fmt.Sprintf("SELECT a.id, QUOTE(a.%[1]s), QUOTE(b.%[1]s) FROM ty.t a LEFT JOIN ty_dst.t b USING (id) WHERE NOT (QUOTE(a.%[1]s) <=> QUOTE(b.%[1]s))", c))
		if err != nil {
			t.Error(err)
			continue
		}
		for rows.Next() {
			var id int
			var a, b sql.NullString
			_ = rows.Scan(&id, &a, &b)
			t.Errorf("id %d column %s: source %s, target %s", id, c, a.String, b.String)
		}
		rows.Close()
	}
}

// Each column carries what a sink needs to create or add it faithfully:
// character set, collation, default (as an expression) and comment.
func TestColumnMetadataForSinks(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE IF NOT EXISTS meta",
		"CREATE TABLE meta.t (id INT PRIMARY KEY, color VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'red' COMMENT 'it''s', "+
			"n INT DEFAULT 5, ts TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP, plain INT)")
	db := srv.Open(t, "")
	tb, err := loadTable(context.Background(), db, connectors.TableID{Database: "meta", Table: "t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range tb.schema.Fields()[1:] {
		var parts []string
		for _, k := range []string{connectors.MetaCharset, connectors.MetaCollation, connectors.MetaDefault, connectors.MetaComment} {
			v, ok := f.Metadata.GetValue(k)
			if !ok {
				v = "-"
			}
			parts = append(parts, v)
		}
		got = append(got, f.Name+":"+strings.Join(parts, ","))
	}
	want := "id:-,-,-,- color:utf8mb4,utf8mb4_unicode_ci,'red',it's n:-,-,5,- ts:-,-,current_timestamp(),- plain:-,-,NULL,-"
	if strings.Join(got, " ") != want {
		t.Fatalf("metadata\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if pk, _ := connectors.PrimaryKey(tb.schema); len(pk) != 1 || pk[0] != "id" {
		t.Fatalf("key %v", pk)
	}
}
