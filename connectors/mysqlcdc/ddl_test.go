package mysqlcdc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/internal/mariadbtest"
)

// TestSchemaChangesAndNewTables: ADD, MODIFY, RENAME and DROP COLUMN on a
// captured table travel in-band and the mysql sink follows them; a table
// created later and one renamed into the pattern are captured (the renamed
// one with a snapshot). The target equals the source at the end (I1, I2).
func TestSchemaChangesAndNewTables(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE dd", "CREATE TABLE dd.a (id INT PRIMARY KEY, v VARCHAR(10), w INT)",
		"INSERT INTO dd.a VALUES (1, 'x', 1), (2, 'y', 2)",
		"CREATE DATABASE ddtmp", "CREATE TABLE ddtmp.staging (id INT PRIMARY KEY, s VARCHAR(10))",
		"INSERT INTO ddtmp.staging VALUES (10, 'ten'), (11, 'eleven')")
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	src := newSource(t, alloc, map[string]string{"tables": `dd\..*`, "heartbeat.interval": "200ms"})
	if err := src.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sk := newMySQLSink(t, alloc, "dd_dst", "batch.interval", "50ms")
	var ddls []string
	pump := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			b, err := src.Read(ctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.DDL != "" {
				ddls = append(ddls, b.Table.String()+": "+b.DDL)
			}
			if err := sk.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b.Release()
		}
		if err := sk.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	pump(500 * time.Millisecond)
	srv.Exec(t,
		"ALTER TABLE dd.a ADD COLUMN extra DECIMAL(8,2) NULL AFTER v",
		"INSERT INTO dd.a VALUES (3, 'z', 9.5, 3)",
		"ALTER TABLE dd.a MODIFY COLUMN v VARCHAR(40)",
		"UPDATE dd.a SET v = 'a longer value than before' WHERE id = 1",
		"ALTER TABLE dd.a RENAME COLUMN w TO weight",
		"UPDATE dd.a SET weight = 42 WHERE id = 2",
		"ALTER TABLE dd.a DROP COLUMN extra",
		"INSERT INTO dd.a VALUES (4, 'four', 4)",
		"CREATE TABLE dd.b (id BIGINT PRIMARY KEY, note TEXT)",
		"INSERT INTO dd.b VALUES (1, 'new table')",
		"RENAME TABLE ddtmp.staging TO dd.staged",
		"INSERT INTO dd.staged VALUES (12, 'twelve')")
	pump(2 * time.Second)
	db := srv.Open(t, "")
	for _, tb := range []string{"a", "b", "staged"} {
		want, err := mariadbtest.Checksum(db, "dd", tb)
		if err != nil {
			t.Fatal(err)
		}
		got, err := mariadbtest.Checksum(db, "dd_dst", tb)
		if err != nil {
			t.Fatalf("%s: %v (schema changes seen: %v)", tb, err, ddls)
		}
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("table %s: target %v, source %v (schema changes seen: %v)", tb, got, want, ddls)
		}
	}
	var cols string
	if err := db.QueryRow("SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='dd_dst' AND TABLE_NAME='a'").Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if cols != "id int(11),v varchar(40),weight int(11)" {
		t.Errorf("target columns %q", cols)
	}
}
