package mysqlcdc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"sluice/connectors"
	"sluice/internal/mariadbtest"
)

// coveredTypes are the column types rowdecode.go decodes itself.
const coveredTypes = `CREATE TABLE rd.t (
 id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
 i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 d DECIMAL(10,2), d18 DECIMAL(18,6), d0 DECIMAL(9,0), dn DECIMAL(5,5), f FLOAT, dbl DOUBLE, b BIT(12), b1 BIT(1), b64 BIT(64),
 dt DATE, dtm DATETIME(6), dtm0 DATETIME, dtm3 DATETIME(3), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, y YEAR,
 c CHAR(5), vc VARCHAR(50), vcl VARCHAR(300), l1 VARCHAR(20) CHARACTER SET latin1, cl1 CHAR(3) CHARACTER SET latin1,
 tx TEXT, mt MEDIUMTEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB, lb LONGBLOB,
 e ENUM('a','b','it''s'), st SET('x','y','z'), j JSON)`

var coveredRows = []string{
	`(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	  -99999999.99, -999999999999.999999, -999999999, -0.99999, -1.5, -1.7976931348623157e308, b'0', b'0', b'0',
	  '1000-01-01', '1000-01-01 00:00:00.000000', '1969-12-31 23:59:59', '1969-07-20 20:17:40.123', '1970-01-01 00:00:01.000000', '1970-01-01 00:00:01', 1901,
	  '', '', '', 'café', 'é', '', '', x'00000000', x'', x'', x'', 'a', '', '{}')`,
	`(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	  99999999.99, 999999999999.999999, 999999999, 0.99999, 0.1, 2.2250738585072014e-308, b'111111111111', b'1', x'FFFFFFFFFFFFFFFF',
	  '9999-12-31', '9999-12-31 23:59:59.999999', '2024-02-29 12:34:56', '2038-01-19 03:14:07.999', '2038-01-19 03:14:07.999999', '2038-01-19 03:14:07', 2155,
	  'abcde', 'héllo 世界 🎉 '' " \\ tab	x', REPEAT('ü', 300), 'Ñandú €', 'Ñ€x', REPEAT('long ', 1000), REPEAT('m', 70000), x'FFFFFFFF', x'00FF00', x'DEADBEEF', REPEAT(x'AB', 300),
	  'it''s', 'x,z', '{"k": [1, 2, {"a": null}], "s": "é"}')`,
	`(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	`(4, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0.00, 0.000001, 0, 0.00001, 3.25e10, 0, b'101', b'1', b'1',
	  '2024-02-29', '2024-02-29 12:34:56.000001', '2024-02-29 00:00:00', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56', 2024,
	  'a', 'NULL', 'x', 'N', 'N', 'NULL', '', x'61626364', x'00', x'', x'00', 'b', 'x,y,z', '[]')`,
}

// TestRowDecoderMatchesLibrary reads the binlog of inserts, updates and
// deletes of every covered type twice: go-mysql's decoder and fromBinlog,
// and rowdecode.go. Every value must be the same.
func TestRowDecoderMatchesLibrary(t *testing.T) {
	srv.Exec(t, "DROP DATABASE IF EXISTS rd", "CREATE DATABASE rd", coveredTypes)
	db := srv.Open(t, "rd")
	var file string
	var pos uint32
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	for _, r := range coveredRows {
		if _, err := db.Exec("INSERT INTO t VALUES " + r); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(7))
	for id := 10; id < 400; id++ {
		q := fmt.Sprintf(`INSERT INTO t (id, ti, tiu, si, mi, miu, i, iu, bi, biu, d, d18, d0, dn, f, dbl, b, dt, dtm, dtm3, ts, y, vc, l1, tx, bn, e, st)
			VALUES (%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d.%02d, %d.%06d, %d, 0.%05d, %g, %g, %d,
			'1970-01-01' + INTERVAL %d DAY, '1900-01-01' + INTERVAL %d SECOND, '1960-01-01' + INTERVAL %d MICROSECOND,
			FROM_UNIXTIME(%d.%06d), %d, REPEAT('v', %d), 'l%c', REPEAT('t', %d), x'%08x', %d, %d)`,
			id, rng.Intn(256)-128, rng.Intn(256), rng.Intn(65536)-32768, rng.Intn(1<<24)-(1<<23), rng.Intn(1<<24),
			rng.Int31()-rng.Int31(), rng.Uint32(), rng.Int63()-rng.Int63(), rng.Uint64(),
			rng.Intn(99999999)-rng.Intn(99999999), rng.Intn(100), rng.Int63n(1e12)-rng.Int63n(1e12), rng.Intn(1e6), rng.Intn(1e9)-rng.Intn(1e9), rng.Intn(1e5),
			rng.Float32()*1e6-5e5, rng.NormFloat64()*1e100, rng.Intn(4096),
			rng.Intn(2_900_000)-700_000, rng.Int63n(5e9), rng.Int63n(3e15),
			1+rng.Int63n(2_000_000_000), rng.Intn(1e6), 1901+rng.Intn(255), rng.Intn(50), 'a'+rune(rng.Intn(26)), rng.Intn(3000),
			rng.Uint32(), 1+rng.Intn(3), rng.Intn(8))
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, q := range []string{"UPDATE t SET vc = CONCAT(vc, 'u'), d = -d, dtm = dtm + INTERVAL 1 SECOND WHERE id % 3 = 0",
		"UPDATE t SET id = id + 1000 WHERE id % 7 = 0", "DELETE FROM t WHERE id % 5 = 0", "UPDATE t SET tx = NULL, bl = x'01', e = 'it''s'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var endPos uint32
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(new(string), &endPos, new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	tab, err := loadTable(context.Background(), db, connectors.TableID{Database: "rd", Table: "t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{ServerID: 9101, Flavor: mysql.MariaDBFlavor,
		Host: "127.0.0.1", Port: uint16(srv.Port), User: mariadbtest.ReplUser, Password: mariadbtest.ReplPass,
		ParseTime: true, UseDecimal: true, VerifyChecksum: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer syncer.Close()
	st, err := syncer.StartSync(mysql.Position{Name: file, Pos: pos})
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{file: file}
	images := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ev, err := st.GetEvent(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if fde, ok := ev.Event.(*replication.FormatDescriptionEvent); ok {
			src.fde = fde
		}
		if e, ok := ev.Event.(*replication.RowsEvent); ok && string(e.Table.Table) == "t" {
			images += compareDecoders(t, src, ev, e, tab)
		}
		if ev.Header.LogPos >= endPos {
			break
		}
	}
	if images < 1000 {
		t.Fatalf("compared %d row images, want more than 1000", images)
	}
	t.Logf("%d row images decoded alike", images)
}

// compareDecoders decodes one rows event (already decoded by go-mysql)
// with rowdecode.go and compares every value; it returns the images.
func compareDecoders(t *testing.T, src *Source, ev *replication.BinlogEvent, e *replication.RowsEvent, tab *table) int {
	t.Helper()
	dec := src.decoder(ev, e, tab)
	if dec == nil {
		t.Fatalf("table map %v / %v not covered by rowdecode.go", e.Table.ColumnType, e.Table.ColumnMeta)
	}
	data, pos, err := src.rowsData(ev, e)
	if err != nil {
		t.Fatal(err)
	}
	data = data[pos:]
	bitmaps := [][]byte{e.ColumnBitmap1}
	if e.ColumnBitmap2 != nil {
		bitmaps = append(bitmaps, e.ColumnBitmap2)
	}
	got := make([]any, len(tab.Cols))
	for r, row := range e.Rows {
		n, err := dec.image(data, bitmaps[r%len(bitmaps)], func(i int, v value) (err error) {
			got[i], err = canonical(&tab.Cols[i], v)
			return err
		})
		if err != nil {
			t.Fatalf("row %d: %v", r, err)
		}
		data = data[n:]
		for i, lib := range row {
			want, err := tab.Cols[i].fromBinlog(lib)
			if err != nil {
				t.Fatalf("row %d column %s: fromBinlog: %v", r, tab.Cols[i].Name, err)
			}
			if gb, ok := got[i].([]byte); ok && len(gb) == 0 {
				// fromBinlog gives nil for an empty BLOB and []byte{} for
				// an empty VARBINARY; both build the same (empty, not NULL)
				// Arrow value.
				if wb, ok := want.([]byte); ok && len(wb) == 0 {
					continue
				}
			}
			if !reflect.DeepEqual(got[i], want) {
				t.Fatalf("row %d column %s (%s): rowdecode %#v, go-mysql %#v (%#v)", r, tab.Cols[i].Name, tab.Cols[i].ColType, got[i], want, lib)
			}
		}
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes left after the event's rows", len(data))
	}
	return len(e.Rows)
}

// fuzzTable is a table map layout of every covered binlog type, for
// FuzzRowDecoder (no server needed).
func fuzzTable(t testing.TB) (*table, *rowDecoder) {
	cols := []column{
		{Name: "i", DataType: "int", ColType: "int(11)"},
		{Name: "bu", DataType: "bigint", ColType: "bigint(20) unsigned"},
		{Name: "d", DataType: "decimal", ColType: "decimal(10,2)", Prec: 10, Scale: 2},
		{Name: "dbl", DataType: "double", ColType: "double"},
		{Name: "dtm", DataType: "datetime", ColType: "datetime(6)"},
		{Name: "ts", DataType: "timestamp", ColType: "timestamp(3)"},
		{Name: "dt", DataType: "date", ColType: "date"},
		{Name: "vc", DataType: "varchar", ColType: "varchar(300)", Charset: "utf8mb4"},
		{Name: "e", DataType: "enum", ColType: "enum('a','b')"},
		{Name: "st", DataType: "set", ColType: "set('x','y')"},
		{Name: "tx", DataType: "text", ColType: "text", Charset: "latin1"},
		{Name: "b", DataType: "bit", ColType: "bit(12)"},
		{Name: "y", DataType: "year", ColType: "year(4)"},
		{Name: "c", DataType: "char", ColType: "char(5)", Charset: "utf8mb4"},
		{Name: "mi", DataType: "mediumint", ColType: "mediumint(9)"},
		{Name: "f", DataType: "float", ColType: "float"},
	}
	tab := &table{ID: connectors.TableID{Database: "f", Table: "t"}}
	for _, c := range cols {
		if err := c.resolve(); err != nil {
			t.Fatal(err)
		}
		tab.Cols = append(tab.Cols, c)
	}
	tm := &replication.TableMapEvent{
		ColumnType: []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DOUBLE,
			mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_VARCHAR,
			mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_BIT, mysql.MYSQL_TYPE_YEAR,
			mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_FLOAT},
		ColumnMeta: []uint16{0, 0, 10<<8 | 2, 8, 6, 3, 0, 1200, uint16(mysql.MYSQL_TYPE_ENUM)<<8 | 1, uint16(mysql.MYSQL_TYPE_SET)<<8 | 1, 2,
			1<<8 | 4, 0, uint16(mysql.MYSQL_TYPE_STRING)<<8 | 20, 0, 4},
	}
	dec := planDecoder(tm, tab)
	if dec == nil {
		t.Fatal("fuzz layout not covered")
	}
	return tab, dec
}

// FuzzRowDecoder: truncated and corrupted row images end in an error or
// in values, never in a panic or a hang, and allocate at most in
// proportion to their length.
func FuzzRowDecoder(f *testing.F) {
	f.Add([]byte{0x00, 0x00, 1, 0, 0, 0}, byte(0xff), byte(0xff))
	f.Add([]byte{0xff, 0xff}, byte(0x01), byte(0x00))
	f.Add(make([]byte, 200), byte(0xff), byte(0xff))
	f.Add([]byte("\x00\x00\x2a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x80\x00\x00\x30\x39\x00\x00\x00\x00\x00\x00\xf0\x3f"), byte(0x0f), byte(0x00))
	tab, dec := fuzzTable(f)
	f.Fuzz(func(t *testing.T, data []byte, bm0, bm1 byte) {
		bitmap := []byte{bm0, bm1}
		for pos, rows := 0, 0; pos < len(data); rows++ {
			if rows > len(data) {
				t.Fatal("no progress")
			}
			n, err := dec.image(data[pos:], bitmap, func(i int, v value) error {
				if len(v.b) > len(data) {
					t.Fatalf("value of %d bytes from %d bytes of data", len(v.b), len(data))
				}
				_, err := canonical(&tab.Cols[i], v)
				return err
			})
			if err != nil {
				return
			}
			if n <= 0 {
				t.Fatal("image consumed nothing")
			}
			pos += n
		}
	})
}
