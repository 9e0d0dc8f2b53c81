package mysqlcdc

import (
	"database/sql"
	"fmt"
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
	"sluice/internal/mariadbtest"
)

func TestConformance(t *testing.T) {
	srv.Exec(t, "CREATE DATABASE conf",
		"CREATE TABLE conf.t (id INT PRIMARY KEY, v VARCHAR(40) CHARACTER SET utf8mb4, n INT NULL)",
		"INSERT INTO conf.t SELECT seq, IF(seq % 4 = 0, NULL, CONCAT('v', seq, ' ✓ 日本 😀')), IF(seq % 3 = 0, NULL, seq) FROM conf.seq_1_to_700")
	conformance.RunSource(t, conformance.SourceDriver{
		New: func(t *testing.T, env connectors.Env) connectors.Source {
			cfg, err := Options.Validate("mysql_cdc", map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port),
				"user": mariadbtest.ReplUser, "password": mariadbtest.ReplPass, "server_id": "4242",
				"tables": `conf\.t`, "snapshot.chunk.size": "100", "heartbeat.interval": "200ms"})
			if err != nil {
				t.Fatal(err)
			}
			src, err := Spec().NewSource(cfg, env)
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Initial: 700,
		More: func(t *testing.T) int {
			db, err := sql.Open("mysql", srv.DSN("")) // closed here: the suite checks for goroutines left
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			n := 0
			for i := 1; i <= 40; i++ {
				for _, q := range []string{
					fmt.Sprintf("INSERT INTO conf.t VALUES (%d, 'new \\'%d\\' ü', NULL)", 1000+i, i),
					fmt.Sprintf("UPDATE conf.t SET v = CONCAT(IFNULL(v, ''), '+'), n = %d WHERE id = %d", i, i*7),
					fmt.Sprintf("DELETE FROM conf.t WHERE id = %d", i*7+1),
				} {
					if _, err := db.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
				n += 1 + 2 + 1
			}
			return n
		},
	})
}
