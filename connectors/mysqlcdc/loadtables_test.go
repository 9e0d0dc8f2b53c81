package mysqlcdc

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"sluice/connectors"
)

// TestLoadTablesMatchesLoadTable: the two-query loader of many tables
// gives every table exactly what the per-table loader gives (columns,
// types, defaults, keys, chunk keys, the Arrow schema), across schemas.
func TestLoadTablesMatchesLoadTable(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE bulk_a", "CREATE DATABASE bulk_b", fmt.Sprintf(allTypes, "bulk_a.every"),
		"CREATE TABLE bulk_a.meta (id INT PRIMARY KEY, color VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'red' COMMENT 'it''s', n INT DEFAULT 5, ts TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP)",
		"CREATE TABLE bulk_b.two (a INT, b VARCHAR(5), c DOUBLE, PRIMARY KEY (b, a))",
		"CREATE TABLE bulk_b.keyless (u INT NOT NULL UNIQUE, v TEXT)",
		"CREATE TABLE bulk_b.other_not_asked (x INT PRIMARY KEY)")
	db := srv.Open(t, "")
	defer func(n int) { perTableLoads = n }(perTableLoads)
	perTableLoads = 1 // the bulk path for these few tables
	ids := []connectors.TableID{{Database: "bulk_a", Table: "every"}, {Database: "bulk_a", Table: "meta"},
		{Database: "bulk_b", Table: "two"}, {Database: "bulk_b", Table: "keyless"}}
	for _, chunkKey := range [][]string{nil, {"u"}} {
		bulk, err := loadTables(context.Background(), db, ids, chunkKey)
		if err != nil {
			t.Fatal(err)
		}
		if len(bulk) != len(ids) {
			t.Fatalf("loaded %d tables, want %d", len(bulk), len(ids))
		}
		for _, id := range ids {
			if id.Table == "keyless" && chunkKey == nil {
				continue
			}
			one, err := loadTable(context.Background(), db, id, chunkKey)
			if id.Table != "keyless" && chunkKey != nil {
				continue // chunk.key u exists only in keyless
			}
			if err != nil {
				t.Fatal(err)
			}
			got := bulk[id.Database+"."+id.Table]
			if !reflect.DeepEqual(got.Cols, one.Cols) || !reflect.DeepEqual(got.PK, one.PK) || got.HasPK != one.HasPK || !got.schema.Equal(one.schema) {
				t.Errorf("%s: bulk %+v\nper table %+v", id, got, one)
			}
		}
	}
	if _, err := loadTables(context.Background(), db, append(ids, connectors.TableID{Database: "bulk_b", Table: "gone"}), nil); err == nil {
		t.Error("a missing table was not refused")
	}
	// Views are not captured, whichever way the types are asked.
	srv.Exec(t, "CREATE VIEW bulk_b.v AS SELECT * FROM bulk_b.two")
	withView := append(append([]connectors.TableID(nil), ids...), connectors.TableID{Database: "bulk_b", Table: "v"})
	for _, per := range []int{1, 64} {
		perTableLoads = per
		base, err := baseTables(context.Background(), db, withView)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(base, ids) {
			t.Errorf("perTableLoads %d: base tables %v, want %v", per, base, ids)
		}
	}
}
