package mysqlsink

import (
	"database/sql"
	"fmt"
	"sort"
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
	"sluice/internal/mariadbtest"
)

func TestConformance(t *testing.T) {
	for _, semantic := range []string{"at-least-once", "exactly-once"} {
		t.Run(semantic, func(t *testing.T) {
			db := "conf_" + map[string]string{"at-least-once": "alo", "exactly-once": "eo"}[semantic]
			conformance.RunSink(t, conformance.SinkDriver{
				New: func(t *testing.T, env connectors.Env) connectors.Sink {
					cfg, err := Options.Validate("mysql", map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port),
						"user": mariadbtest.AdminUser, "password": mariadbtest.AdminPass, "database": db,
						"batch.interval": "1h", "semantic": semantic})
					if err != nil {
						t.Fatal(err)
					}
					s, err := Spec().NewSink(cfg, env)
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Table:       func(check string) connectors.TableID { return connectors.TableID{Database: "src", Table: check} },
				Rows:        func(t *testing.T, id connectors.TableID) []string { return readBack(t, db, id.Table) },
				Reset:       func(t *testing.T, id connectors.TableID) { srv.Exec(t, "TRUNCATE TABLE "+db+"."+id.Table) },
				ExactlyOnce: semantic == "exactly-once",
				Schema:      true,
			})
		})
	}
}

// readBack renders a target table's rows with conformance.Line.
func readBack(t *testing.T, db, table string) []string {
	t.Helper()
	conn, err := sql.Open("mysql", srv.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(fmt.Sprintf("SELECT * FROM `%s`.`%s`", db, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, conformance.Line(m))
	}
	sort.Strings(out)
	return out
}
