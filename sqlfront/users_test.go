package sqlfront_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	gsql "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/mysql_db"

	"sluice/internal/testnode"
)

// capture is a persister that keeps what the engine writes.
type capture struct{ data []byte }

func (c *capture) Persist(_ *gsql.Context, data []byte) error { c.data = data; return nil }

// usersFile writes a users.db as an older single-node sluice did: the
// engine's serialised user tables, with one user granted SELECT.
func usersFile(t *testing.T, dir, user, password string) {
	t.Helper()
	db := mysql_db.CreateEmptyMySQLDb()
	c := &capture{}
	db.SetPersister(c)
	ed := db.Editor()
	db.AddSuperUser(ed, user, "%", password) // a superuser: enough to prove the login and a grant moved
	if err := db.Persist(gsql.NewEmptyContext(), ed); err != nil {
		t.Fatal(err)
	}
	ed.Close()
	if err := os.WriteFile(filepath.Join(dir, "users.db"), c.data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A users.db of an older single-node install moves into the catalog on
// first start (renamed .migrated), and its users log in, after a restart
// too; a user dropped is gone after the restart.
func TestUsersMigrateAndPersistInTheCatalog(t *testing.T) {
	dir := t.TempDir()
	usersFile(t, dir, "legacy", "old-pw")
	n := testnode.Start(t, registry(), dir, 0)
	if _, err := os.Stat(filepath.Join(dir, "users.db.migrated")); err != nil {
		t.Fatalf("users.db not moved aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users.db")); err == nil {
		t.Fatal("users.db still there")
	}
	legacy := open(t, fmt.Sprintf("legacy:old-pw@tcp(%s)/", n.Front.Addr()))
	run(t, legacy, step{sql: "SELECT COUNT(*) FROM sluice.jobs", want: []string{"0"}})
	root := open(t, n.DSN(""))
	run(t, root, step{sql: "CREATE USER keep@'%' IDENTIFIED BY 'k'"})
	run(t, root, step{sql: "CREATE USER gone@'%' IDENTIFIED BY 'g'"})
	run(t, root, step{sql: "GRANT SELECT ON sluice.* TO keep@'%'"})
	run(t, root, step{sql: "DROP USER gone@'%'"})
	_ = root.Close()
	_ = legacy.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = testnode.Start(t, registry(), dir, 0)
	for _, c := range []struct {
		cred string
		ok   bool
	}{{"legacy:old-pw", true}, {"keep:k", true}, {"gone:g", false}} {
		db := open(t, fmt.Sprintf("%s@tcp(%s)/", c.cred, n.Front.Addr()))
		err := db.Ping()
		if (err == nil) != c.ok {
			t.Fatalf("%s after a restart: %v", c.cred, err)
		}
	}
	keep := open(t, fmt.Sprintf("keep:k@tcp(%s)/", n.Front.Addr()))
	run(t, keep, step{sql: "SELECT COUNT(*) FROM sluice.jobs", want: []string{"0"}})
	run(t, keep, step{sql: "DROP SYNC JOB IF EXISTS x", code: 1227, msg: "DROP privilege"})
}
