package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests build the real binary, start it as a process on free
// loopback ports, and drive it with the real mysql command-line client.

var binary, fpBinary string // fpBinary is built with -tags failpoints

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e")
	if err != nil {
		panic(err)
	}
	binary, fpBinary = filepath.Join(dir, "sluice"), filepath.Join(dir, "sluice-failpoints")
	for _, b := range [][]string{{"build", "-o", binary, "."}, {"build", "-tags", "failpoints", "-o", fpBinary, "."}} {
		if out, err := exec.Command("go", b...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func mysqlCLI(t *testing.T) string {
	for _, name := range []string{"mariadb", "mysql"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no mysql/mariadb client on PATH (CI installs mariadb-client)")
	}
	t.Skip("no mysql/mariadb client on PATH; install mariadb-client")
	return ""
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type node struct {
	t                          *testing.T
	dir                        string
	mysqlAddr, httpAddr, raftA string
	cmd                        *exec.Cmd
	bin                        string   // binary to start (default: binary)
	env                        []string // extra environment of the next start
	args                       []string // extra flags of the next start
	log                        *bytes.Buffer
	cli                        string
	tls                        *tls.Config // HTTPS to the node's HTTP address when set
	logFrom                    int         // where the log of the latest start begins
}

// get fetches a path of the node's HTTP address (HTTPS with tls).
func (n *node) get(path string) (*http.Response, error) {
	if n.tls == nil {
		return http.Get("http://" + n.httpAddr + path)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: n.tls}, Timeout: 5 * time.Second}
	return c.Get("https://" + n.httpAddr + path)
}

func newNode(t *testing.T) *node {
	n := &node{t: t, dir: t.TempDir(), mysqlAddr: freePort(t), httpAddr: freePort(t), raftA: freePort(t), cli: mysqlCLI(t)}
	t.Cleanup(func() {
		if n.cmd != nil && n.cmd.ProcessState == nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", n.log)
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	first := n.log == nil
	n.startAsync()
	// freePort closes its listener before the server binds the port, so
	// another process of a parallel test run may take it first: a new
	// node that exits for that starts again on fresh ports.
	for try := 0; first && try < 3 && n.exitedOnBusyPort(); try++ {
		_ = n.cmd.Wait()
		n.mysqlAddr, n.httpAddr, n.raftA = freePort(n.t), freePort(n.t), freePort(n.t)
		n.startAsync()
	}
	n.waitHealthy()
}

// exitedOnBusyPort waits until the process is healthy or has said that a
// port it was to bind is taken (it exits right after), and reports which.
func (n *node) exitedOnBusyPort() bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(n.log.String()[n.logFrom:], "address already in use") {
			return true
		}
		if resp, err := n.get("/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return false
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// startAsync starts the process without waiting for it to be healthy (a
// whole cluster restarting: no node is healthy before a quorum is back).
func (n *node) startAsync() {
	n.t.Helper()
	if n.log == nil {
		n.log = &bytes.Buffer{}
	}
	fmt.Fprintf(n.log, "---- start\n")
	n.logFrom = n.log.Len()
	bin := n.bin
	if bin == "" {
		bin = binary
	}
	n.cmd = exec.Command(bin, append([]string{"server", "--data-dir", n.dir, "--mysql-addr", n.mysqlAddr,
		"--http-addr", n.httpAddr, "--raft-addr", n.raftA}, n.args...)...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.Env = append(os.Environ(), n.env...)
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) waitHealthy() {
	n.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := n.get("/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("server did not become healthy:\n%s", n.log)
}

func (n *node) kill9() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.cmd.Wait()
}

func (n *node) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		n.t.Fatal("server did not stop on SIGTERM within 15s")
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		n.t.Fatalf("server exited %d on SIGTERM", code)
	}
}

// sql runs statements through the mysql CLI (batch mode, no headers) and
// returns stdout; it fails the test on a client error.
func (n *node) sql(q string) string {
	n.t.Helper()
	out, err := n.run(q)
	if err != nil {
		n.t.Fatalf("%s\n%v: %s", q, err, out)
	}
	return strings.TrimSpace(out)
}

func (n *node) run(q string) (string, error) {
	host, port, _ := net.SplitHostPort(n.mysqlAddr)
	cmd := exec.Command(n.cli, "-h", host, "-P", port, "-u", "root", "-N", "-B", "-e", q)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *node) int(q string) int64 {
	n.t.Helper()
	v, err := strconv.ParseInt(n.sql(q), 10, 64)
	if err != nil {
		n.t.Fatalf("%s: %v", q, err)
	}
	return v
}

func (n *node) waitFor(what string, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("timed out waiting for %s", what)
}

func (n *node) state(job string) string {
	return n.sql("SELECT state FROM sluice.jobs WHERE name = '" + job + "'")
}

func TestNewcomerPath(t *testing.T) {
	n := newNode(t)
	n.start()

	// Two statements in one -e: the client splits them; both run.
	n.sql("CREATE SYNC JOB live FROM datagen ('rate'='2000', 'tables'='t1,t2') TO blackhole () WITH ('parallelism'='2'); " +
		"CREATE SYNC JOB bounded FROM datagen ('rows'='25000', 'batch_size'='1000') TO blackhole ()")
	n.waitFor("live RUNNING", func() bool { return n.state("live") == "RUNNING" })
	n.waitFor("bounded FINISHED", func() bool { return n.state("bounded") == "FINISHED" })
	if got := n.int("SELECT sink_write_count FROM sluice.metrics WHERE job = 'bounded'"); got != 25000 {
		t.Fatalf("bounded job wrote %d rows, want 25000", got)
	}

	// Every job lists its tables; a bounded one is DONE, with no lag.
	if got := n.sql("SELECT GROUP_CONCAT(CONCAT(table_name, ':', phase, ':', lag_ms) ORDER BY table_name) FROM sluice.job_tables WHERE job = 'bounded'"); !strings.HasSuffix(got, ":DONE:0") || strings.Contains(got, ",") {
		t.Fatalf("sluice.job_tables of the finished job: %q", got)
	}
	n.waitFor("live's two tables in sluice.job_tables", func() bool {
		return n.sql("SELECT GROUP_CONCAT(CONCAT(table_name, ':', phase) ORDER BY table_name) FROM sluice.job_tables WHERE job = 'live'") ==
			"datagen.t1:STREAMING,datagen.t2:STREAMING"
	})

	// Counters grow, per table.
	sum := func() int64 {
		return n.int("SELECT COALESCE(SUM(sink_write_count), 0) FROM sluice.metrics WHERE job = 'live'")
	}
	a := sum()
	time.Sleep(1100 * time.Millisecond)
	if b := sum(); b <= a {
		t.Fatalf("live counters did not grow: %d then %d", a, b)
	}
	if got := n.sql("SELECT COUNT(*) FROM sluice.metrics WHERE job = 'live'"); got != "2" {
		t.Fatalf("metrics rows for live: %s", got)
	}
	if got := n.sql("SELECT COUNT(*) FROM sluice.tasks WHERE job = 'live' AND state = 'RUNNING'"); got != "2" {
		t.Fatalf("running tasks for live: %s", got)
	}

	// Pause stops the flow; resume continues it.
	n.sql("PAUSE SYNC JOB live")
	n.waitFor("live PAUSED with no tasks", func() bool {
		return n.state("live") == "PAUSED" && n.sql("SELECT COUNT(*) FROM sluice.tasks WHERE job='live'") == "0"
	})
	p1 := sum()
	time.Sleep(600 * time.Millisecond)
	if p2 := sum(); p2 != p1 {
		t.Fatalf("rows flowed while paused: %d then %d", p1, p2)
	}
	n.sql("RESUME SYNC JOB live")
	n.waitFor("live flowing again", func() bool { return n.state("live") == "RUNNING" && sum() > p1 })

	// Bad statements get clear errors and the server keeps serving.
	for q, want := range map[string]string{
		"CREATE SYNC JOB live FROM datagen () TO blackhole ()":                                  "ERROR 1050",
		"CREATE SYNC JOB x FROM datagen ('rate'='fast') TO blackhole ()":                        "ERROR 1231",
		"CREATE SYNC JOB x FROM nosuch () TO blackhole ()":                                      "ERROR 1286",
		"CREATE SYNC JOB x FROM datagen ('rowz'='1') TO blackhole ()":                           "ERROR 1911",
		"CREATE SYNC JOB x FROM datagen () TO blackhole () WITH ('parallelism'='-1')":           "ERROR 1231",
		"CREATE SYNC JOB x FROM datagen () TO blackhole () WITH ('checkpoint.interval'='soon')": "ERROR 1231",
		"CREATE SYNC JOB x FROM datagen () TOO blackhole ()":                                    "ERROR 1064",
		"DROP SYNC JOB ghost": "ERROR 1146",
	} {
		out, err := n.run(q)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("%s: got %q, want %s", q, out, want)
		}
	}
	if got := n.sql("SELECT COUNT(*) FROM sluice.jobs"); got != "2" {
		t.Fatalf("rejected statements changed the catalog: %s jobs", got)
	}

	n.sql("CREATE SYNC JOB paused_one FROM datagen ('rate'='100') TO blackhole (); PAUSE SYNC JOB paused_one")
	n.waitFor("paused_one PAUSED", func() bool { return n.state("paused_one") == "PAUSED" })
	before := n.sql("SELECT job_id, name, state, restarts, created_at FROM sluice.jobs ORDER BY job_id")

	// kill -9, restart: every job as it was; the running one runs again.
	n.kill9()
	n.start()
	if after := n.sql("SELECT job_id, name, state, restarts, created_at FROM sluice.jobs ORDER BY job_id"); after != before {
		t.Fatalf("catalog after kill -9:\n%s\nwant\n%s", after, before)
	}
	n.waitFor("live flowing after kill -9", func() bool { return sum() > 0 })

	// Clean restart too.
	n.sql("DROP SYNC JOB bounded")
	before = n.sql("SELECT name, state FROM sluice.jobs ORDER BY job_id")
	n.stop()
	n.start()
	if after := n.sql("SELECT name, state FROM sluice.jobs ORDER BY job_id"); after != before || strings.Contains(after, "bounded") {
		t.Fatalf("catalog after restart:\n%s\nwant\n%s", after, before)
	}
	n.sql("DROP SYNC JOB live")
	n.waitFor("live gone", func() bool { return n.sql("SELECT COUNT(*) FROM sluice.tasks") == "0" })

	// Finished and dropped jobs stay in sluice.job_history, spec included.
	hist := n.sql("SELECT name, final_state, `rows`, spec LIKE 'CREATE SYNC JOB%' FROM sluice.job_history ORDER BY ended_at")
	want := "bounded\tFINISHED\t25000\t1\nbounded\tDROPPED\t0\t1\nlive\tDROPPED\t"
	if !strings.HasPrefix(hist, want) {
		t.Fatalf("sluice.job_history:\n%s\nwant it to begin\n%s", hist, want)
	}
}

func TestRefusesEmptyRootPasswordOffLoopback(t *testing.T) {
	out, err := exec.Command(binary, "server", "--data-dir", t.TempDir(), "--mysql-addr", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--root-password") {
		t.Fatalf("started without a password on 0.0.0.0: %v %s", err, out)
	}
}

// committedRows counts each (table, id) in the committed files of a file sink.
func committedRows(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	seen := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line == "" {
				continue
			}
			var row struct {
				Table string `json:"_table"`
				ID    int64  `json:"id"`
			}
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("%s: bad line %q", f, line)
			}
			seen[fmt.Sprintf("%s/%d", row.Table, row.ID)]++
		}
	}
	return seen
}

func assertExactlyOnce(t *testing.T, dir string, tables []string, rows int) {
	t.Helper()
	seen := committedRows(t, dir)
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("%s delivered %d times", k, c)
		}
	}
	for _, tbl := range tables {
		for id := 1; id <= rows; id++ {
			if seen[fmt.Sprintf("datagen.%s/%d", tbl, id)] != 1 {
				t.Fatalf("datagen.%s id %d missing", tbl, id)
			}
		}
	}
	if len(seen) != rows*len(tables) {
		t.Fatalf("%d rows delivered, want %d", len(seen), rows*len(tables))
	}
}

func TestCheckpointsSurviveKill9(t *testing.T) {
	n := newNode(t)
	n.start()
	out := t.TempDir()
	n.sql(fmt.Sprintf("CREATE SYNC JOB b FROM datagen ('rows'='40000', 'rate'='16000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='2', 'retry.interval'='100ms')", out))
	maxID := func() int64 {
		return n.int("SELECT COALESCE(MAX(checkpoint_id), 0) FROM sluice.checkpoints WHERE job = 'b' AND state = 'COMPLETED'")
	}
	for kill := 1; kill <= 2; kill++ {
		n.waitFor("completed checkpoints", func() bool { return maxID() >= int64(3*kill) })
		before := maxID()
		if n.state("b") == "FINISHED" {
			t.Fatal("the job finished before it could be killed; slow it down")
		}
		n.kill9()
		n.start()
		n.waitFor("RUNNING again with a new attempt", func() bool {
			return n.state("b") != "SCHEDULED" && n.int("SELECT attempt FROM sluice.jobs WHERE name='b'") == int64(kill+1)
		})
		n.waitFor("checkpoint ids continue", func() bool { return maxID() > before })
	}
	n.waitFor("FINISHED", func() bool { return n.state("b") == "FINISHED" })
	if got := n.sql("SELECT COUNT(*) FROM sluice.checkpoints WHERE job='b' AND state='COMPLETED' AND position IS NOT NULL"); got == "0" {
		t.Fatal("no completed checkpoint with positions")
	}
	assertExactlyOnce(t, out, []string{"a", "b"}, 40000)
}

// The process dies between the catalog commit and the sink commit of a
// checkpoint: on restart the sink must commit what the catalog committed.
func TestCrashBetweenCatalogAndSinkCommit(t *testing.T) {
	for _, fp := range []string{"before-sink-commit", "after-sink-precommit", "mid-batch"} {
		t.Run(fp, func(t *testing.T) {
			n := newNode(t)
			n.bin, n.env = fpBinary, []string{"SLUICE_FAILPOINTS=" + fp + "=exit@6"}
			n.start()
			out := t.TempDir()
			n.sql(fmt.Sprintf("CREATE SYNC JOB c FROM datagen ('rows'='20000', 'rate'='20000', 'batch_size'='100') "+
				"TO file ('path'='%s') WITH ('checkpoint.interval'='100ms')", out))
			done := make(chan struct{})
			go func() { _ = n.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the failpoint never fired")
			}
			if code := n.cmd.ProcessState.ExitCode(); code != 86 {
				t.Fatalf("exit code %d, want the failpoint's 86", code)
			}
			n.env = nil
			n.start()
			n.waitFor("FINISHED", func() bool { return n.state("c") == "FINISHED" })
			assertExactlyOnce(t, out, []string{"t1"}, 20000)
		})
	}
}
