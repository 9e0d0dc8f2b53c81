package starrocks

import (
	"sort"
	"strings"
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
)

func TestConformance(t *testing.T) {
	for _, semantic := range []string{"at-least-once", "exactly-once"} {
		t.Run(semantic, func(t *testing.T) {
			e := newEmu(t)
			_, port, _ := strings.Cut(e.Query, ":")
			conformance.RunSink(t, conformance.SinkDriver{
				New: func(t *testing.T, env connectors.Env) connectors.Sink {
					cfg, err := Options.Validate("starrocks", map[string]string{"fe": e.FE, "query_port": port, "user": "loader", "password": "pw",
						"database": "conf", "table": "${table}", "save_mode": "create_if_missing", "semantic": semantic,
						"retry.backoff": "1ms", "batch.interval": "1h",
						"batch.carry_bytes": "0"}) // load at every checkpoint: the suite reads back after each
					if err != nil {
						t.Fatal(err)
					}
					return newSink(cfg, env)
				},
				Table: func(check string) connectors.TableID { return connectors.TableID{Database: "src", Table: check} },
				Rows: func(t *testing.T, id connectors.TableID) []string {
					rows := e.Rows("conf", id.Table)
					cols := map[string]bool{} // a column no row names reads as NULL
					for _, r := range rows {
						for c := range r {
							cols[c] = true
						}
					}
					var out []string
					for _, r := range rows {
						m := map[string]any{}
						for c := range cols {
							m[c] = r[c]
						}
						out = append(out, conformance.Line(m))
					}
					sort.Strings(out)
					return out
				},
				Reset:       func(t *testing.T, id connectors.TableID) { e.Truncate("conf", id.Table) },
				ExactlyOnce: semantic == "exactly-once",
				Schema:      true,
			})
		})
	}
}
