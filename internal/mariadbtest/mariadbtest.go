// Package mariadbtest starts throwaway MariaDB servers for tests: a fresh
// data directory, binlog on with ROW/FULL/FULL metadata, a free loopback
// port, and a superuser and a replication user with passwords. The server is
// a real mariadbd process from the Debian package; scripts/ensure-deps.sh
// installs it when missing.
package mariadbtest

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the database/sql driver for the admin connection
)

// Accounts every server has.
const (
	AdminUser = "admin"
	AdminPass = "adminpw"
	ReplUser  = "repl"
	ReplPass  = "replpw"
)

// Server is one running mariadbd.
type Server struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	args []string
}

// Binary finds mariadbd (Debian puts it in /usr/sbin, often not on PATH).
func Binary() (string, error) {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mariadbd not found: install mariadb-server (Debian: apt-get install mariadb-server; `make test` does it)")
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start creates and starts a server under tb's temp dir and stops it when the
// test ends. extra are additional mariadbd flags (e.g. "--binlog-format=MIXED").
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	s, err := StartDir(tb.TempDir(), extra...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() { // the server's own account: a crash, a killed connection
			if b, err := os.ReadFile(filepath.Join(s.Dir, "err.log")); err == nil {
				tb.Logf("mariadbd err.log (tail):\n%s", tail(string(b), 4000))
			}
		}
		s.Stop()
	})
	return s
}

// Main runs a package's tests against one server started for all of them
// (in a temporary directory, with mariadbd flags extra), which *srv points
// to while they run; it returns the exit code for os.Exit.
func Main(m *testing.M, srv **Server, extra ...string) int {
	dir, err := os.MkdirTemp("", "mariadbtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *srv, err = StartDir(dir, extra...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer (*srv).Stop()
	return m.Run()
}

// StartDir creates a server in dir (which must be empty or absent) and
// starts it. The caller stops it.
func StartDir(dir string, extra ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		return nil, fmt.Errorf("mariadb-install-db not found: install mariadb-server")
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(install, "--no-defaults", "--datadir="+data, "--tmpdir="+dir, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve")
	if os.Geteuid() == 0 {
		cmd.Args = append(cmd.Args, "--user=root")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Port: port}
	s.args = append([]string{bin, "--no-defaults", "--datadir=" + data, "--tmpdir=" + dir,
		"--socket=" + filepath.Join(dir, "sock"), fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1",
		"--log-bin=" + filepath.Join(dir, "binlog"), "--binlog-format=ROW", "--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL", "--server-id=1", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(dir, "pid"), "--log-error=" + filepath.Join(dir, "err.log"),
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M", "--max-connections=200",
		"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"}, extra...)
	if os.Geteuid() == 0 {
		s.args = append(s.args, "--user=root")
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	root, err := sql.Open("mysql", "root@unix("+filepath.Join(dir, "sock")+")/")
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for _, q := range []string{
		"CREATE USER " + AdminUser + "@'%' IDENTIFIED BY '" + AdminPass + "'",
		"GRANT ALL PRIVILEGES ON *.* TO " + AdminUser + "@'%' WITH GRANT OPTION",
		"CREATE USER " + ReplUser + "@'%' IDENTIFIED BY '" + ReplPass + "'",
		"GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO " + ReplUser + "@'%'",
	} {
		if _, err := root.Exec(q); err != nil {
			s.Stop()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	return s, nil
}

func (s *Server) start() error {
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "err.log"))
			return fmt.Errorf("mariadbd exited at start:\n%s", tail(string(log), 2000))
		default:
		}
		db, err := sql.Open("mysql", "root@unix("+filepath.Join(s.Dir, "sock")+")/")
		if err == nil {
			err = db.Ping()
			db.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("mariadbd did not accept connections within 60s (log: %s)", filepath.Join(s.Dir, "err.log"))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Addr is the server's TCP address.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// DSN is a go-sql-driver DSN for the admin user on database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?multiStatements=true&parseTime=false", AdminUser, AdminPass, s.Addr(), db)
}

// Open returns an admin connection pool on database db.
func (s *Server) Open(tb testing.TB, db string) *sql.DB {
	tb.Helper()
	c, err := sql.Open("mysql", s.DSN(db))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Exec runs statements as admin and fails the test on error.
func (s *Server) Exec(tb testing.TB, stmts ...string) {
	tb.Helper()
	db := s.Open(tb, "")
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", strings.TrimSpace(q), err)
		}
	}
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 30 s).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.Kill()
	}
}

// Kill ends the server with SIGKILL.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Checksum is invariant I2's order-independent content digest of a table,
// per bucket of 1000 values of the first key column (so a mismatch can be
// located): bucket → "count:xor-of-crc32". Text columns are rendered with
// QUOTE in utf8mb4 (NULL, the string 'NULL' and ” stay distinct, character
// sets may differ), binary ones in hex; run it on the
// source and the target and compare.
func Checksum(db *sql.DB, database, table string) (map[string]string, error) {
	rows, err := db.Query(`SELECT COLUMN_NAME, COLUMN_KEY, DATA_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA=? AND TABLE_NAME=? ORDER BY COLUMN_NAME`, database, table)
	if err != nil {
		return nil, err
	}
	var cols []string // by name: column order may differ, content may not
	bucket := "0"
	for rows.Next() {
		var name, key, typ string
		if err := rows.Scan(&name, &key, &typ); err != nil {
			rows.Close()
			return nil, err
		}
		q := "`" + strings.ReplaceAll(name, "`", "``") + "`"
		if strings.Contains(typ, "binary") || strings.Contains(typ, "blob") || strings.Contains(typ, "geom") ||
			strings.Contains(typ, "point") || strings.Contains(typ, "line") || strings.Contains(typ, "polygon") {
			cols = append(cols, "IFNULL(HEX("+q+"),'NULL')")
		} else { // character sets may differ between source and target; content may not
			cols = append(cols, "CONVERT(QUOTE("+q+") USING utf8mb4)")
		}
		if key == "PRI" && bucket == "0" {
			bucket = "FLOOR(" + q + "/1000)"
		}
	}
	rows.Close()
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s.%s not found", database, table)
	}
	q := fmt.Sprintf("SELECT CAST(%s AS CHAR), COUNT(*), BIT_XOR(CRC32(CONCAT_WS('|', %s))) FROM `%s`.`%s` GROUP BY 1",
		bucket, strings.Join(cols, ","), database, table)
	res, err := db.Query(q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer res.Close()
	out := map[string]string{}
	for res.Next() {
		var b sql.NullString
		var n, x int64
		if err := res.Scan(&b, &n, &x); err != nil {
			return nil, err
		}
		out[b.String] = fmt.Sprintf("%d:%d", n, x)
	}
	return out, res.Err()
}

// RotateAndPurge starts a new binlog file and purges every older one, so a
// position in them is gone. The server keeps a file a (closing) binlog dump
// thread still reads, so it retries until the purge took.
func (s *Server) RotateAndPurge(tb testing.TB) {
	tb.Helper()
	db := s.Open(tb, "")
	s.Exec(tb, "FLUSH BINARY LOGS")
	var last string
	rows, err := db.Query("SHOW BINARY LOGS")
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var size any
		if err := rows.Scan(&last, &size); err != nil {
			tb.Fatal(err)
		}
	}
	rows.Close()
	for i := 0; ; i++ {
		s.Exec(tb, "PURGE BINARY LOGS TO '"+last+"'")
		var first string
		if err := db.QueryRow("SHOW BINARY LOGS").Scan(&first, new(any)); err != nil {
			tb.Fatal(err)
		}
		if first == last {
			return
		}
		if i == 100 {
			tb.Fatalf("PURGE kept %s", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
