package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// health is what a node's /healthz says of itself and the leader (zero
// when it does not answer).
func health(n *node) (h struct{ Node, Leader string }) {
	resp, err := n.get("/healthz")
	if err != nil {
		return h
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h
}

// leaderOf is the id of the node n names as the leader.
func leaderOf(n *node) string { return health(n).Leader }

// nodeIDOf is n's own id.
func nodeIDOf(n *node) string { return health(n).Node }

// splitLeader finds the leader's id and node among nodes, and the others.
func splitLeader(t *testing.T, nodes []*node) (id string, leader *node, others []*node) {
	t.Helper()
	id = leaderOf(nodes[0])
	for _, n := range nodes {
		if nodeIDOf(n) == id {
			leader = n
		} else {
			others = append(others, n)
		}
	}
	if leader == nil {
		t.Fatalf("no node is the leader %q", id)
	}
	return id, leader, others
}

// runner finds the node that runs job (from sluice.tasks as n shows it)
// among nodes, and the others.
func runner(t *testing.T, n *node, job string, nodes []*node) (*node, []*node) {
	t.Helper()
	var id string
	n.waitFor("job "+job+" running", func() bool {
		id = n.sql("SELECT MIN(node_id) FROM sluice.tasks WHERE job = '" + job + "' AND state = 'RUNNING'")
		return id != "" && id != "NULL"
	})
	var run *node
	var others []*node
	for _, x := range nodes {
		if nodeIDOf(x) == id {
			run = x
		} else {
			others = append(others, x)
		}
	}
	if run == nil {
		t.Fatalf("job %s runs on %s, which is none of the nodes", job, id)
	}
	return run, others
}

// startCluster starts n nodes with the fast liveness settings, each after
// the first joining it; extra gives a node more flags. It waits until every
// node lists all of them.
func startCluster(t *testing.T, n int, extra func(i int) []string) []*node {
	t.Helper()
	var nodes []*node
	for i := 0; i < n; i++ {
		nd := newNode(t)
		nd.args = clusterArgs
		if i > 0 {
			nd.args = append([]string{"--join", nodes[0].httpAddr}, clusterArgs...)
		}
		if extra != nil {
			nd.args = append(nd.args, extra(i)...)
		}
		nd.start()
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.waitFor(fmt.Sprintf("%d nodes", n), func() bool { return nd.int("SELECT COUNT(*) FROM sluice.nodes") == int64(n) })
	}
	return nodes
}

// runAs runs statements as another user (password on the command line:
// a test-only user).
func (n *node) runAs(user, password, q string) (string, error) {
	host, port, _ := net.SplitHostPort(n.mysqlAddr)
	out, err := exec.Command(n.cli, "-h", host, "-P", port, "-u", user, "-p"+password, "-N", "-B", "-e", q).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// fast liveness for the cluster tests.
var clusterArgs = []string{"--heartbeat-interval", "200ms", "--node-session-timeout", "2s"}

// grepDirs counts the files under dirs that contain needle.
func grepDirs(t *testing.T, needle string, dirs ...string) []string {
	t.Helper()
	var hits []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(needle)) {
				hits = append(hits, path)
			}
			return nil
		})
	}
	return hits
}

// Three real nodes on loopback (issue 11): the second joins through the
// first, the third through the second (a follower passes the join to the
// leader), and a worker as a non-voter; every node lists all four with
// their Raft roles and liveness; every dialect statement works on a
// follower and reads its own write there; a user created on one node logs
// in on another and a drop reaches every node; a job's password is in no
// file of any data dir; a restarted member finds its cluster without
// --join; a node whose join address is dead exits saying why instead of
// starting a cluster of its own; kill -9 of the leader elects another,
// which takes writes, and the dead node turns DOWN; the whole cluster
// restarts and finds everything; without a quorum a write fails within a
// bound while reads answer.
func TestClusterJoin(t *testing.T) {
	emu, queryPort := startEmulatorAs(t, "loader", canary)
	a := newNode(t)
	a.args = clusterArgs
	a.start()
	b := newNode(t)
	b.args = append([]string{"--join", a.httpAddr}, clusterArgs...)
	b.start()
	c := newNode(t)
	c.args = append([]string{"--join", b.httpAddr}, clusterArgs...) // through a follower
	c.start()
	w := newNode(t)
	w.args = append([]string{"--join", a.httpAddr, "--role", "worker"}, clusterArgs...) // a non-voter
	w.start()
	nodes := []*node{a, b, c}
	all := append(append([]*node(nil), nodes...), w)
	for _, n := range all {
		n.waitFor("four nodes in sluice.nodes", func() bool { return n.int("SELECT COUNT(*) FROM sluice.nodes") == 4 })
	}
	// Every member's Raft role, as any node's configuration has it, and
	// every node alive by the leader's heartbeat records.
	c.waitFor("roles and liveness", func() bool {
		return c.sql("SELECT GROUP_CONCAT(raft_state ORDER BY raft_state) FROM sluice.nodes") == "Follower,Follower,Leader,Non-voter" &&
			c.sql("SELECT SUM(alive), COUNT(last_heartbeat) FROM sluice.nodes") == "4\t4"
	})

	// Every dialect statement on a follower: forwarded to the leader, and
	// visible on the follower when the statement returns.
	for _, q := range []string{
		"CREATE SYNC JOB g FROM datagen ('rate'='50') TO blackhole ()",
		"ALTER SYNC JOB g SET ('checkpoint.interval'='2s')",
		"PAUSE SYNC JOB g",
		"RESUME SYNC JOB g",
		"DROP SYNC JOB g",
		"CREATE SYNC JOB g FROM datagen ('rate'='50') TO blackhole ()",
	} {
		c.sql(q)
		if q[:4] == "DROP" {
			if got := c.int("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'g'"); got != 0 {
				t.Fatalf("after %q on a follower it still has the job", q)
			}
		} else if got := c.int("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'g'"); got != 1 {
			t.Fatalf("after %q on a follower it reads %d jobs g", q, got)
		}
	}
	if out := c.sql("SHOW CREATE SYNC JOB g"); !strings.Contains(out, "datagen") {
		t.Fatalf("SHOW CREATE on a follower: %s", out)
	}
	if out := c.sql("EXPLAIN SYNC JOB g"); out == "" {
		t.Fatal("EXPLAIN on a follower says nothing")
	}
	if out := c.sql("SET sluice_read_consistency = 'linearizable'; SELECT COUNT(*) FROM sluice.jobs WHERE name = 'g'; SHOW SYNC JOBS"); !strings.HasPrefix(out, "1") {
		t.Fatalf("a linearizable read on a follower: %s", out)
	}
	if out, err := c.run("SET sluice_read_consistency = 'sometimes'"); err == nil {
		t.Fatalf("a bad read consistency was accepted: %s", out)
	}
	if out := c.sql("SHOW SYNC JOBS"); !strings.HasPrefix(out, "g\t") {
		t.Fatalf("SHOW SYNC JOBS on a follower: %s", out)
	}
	if out, err := c.run("CREATE SYNC JOB g FROM datagen ('rows'='10') TO blackhole ()"); err == nil || !strings.Contains(out, "1050") {
		t.Fatalf("a duplicate CREATE on a follower: %v %s", err, out)
	}
	for _, n := range all {
		n.waitFor("job g on every node", func() bool { return n.sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'g'") == "1" })
	}
	// The job runs on the leader; its task and metrics show on every node
	// (from the heartbeats).
	for _, n := range all {
		n.waitFor("g's task and metrics on every node", func() bool {
			return n.int("SELECT COUNT(*) FROM sluice.tasks WHERE job = 'g'") == 1 &&
				n.int("SELECT COUNT(*) FROM sluice.metrics WHERE job = 'g' AND sink_write_count > 0") >= 1
		})
	}

	// A secret never lands anywhere in clear: not in the Raft log, the
	// snapshots, the catalog's text of the job, nor any log.
	c.sql(fmt.Sprintf(`CREATE SYNC JOB s FROM datagen ('rows'='100', 'tables'='t') TO starrocks ('fe'='%s', 'query_port'='%s',
		'user'='loader', 'password'='%s', 'database'='ods', 'table'='ods_t')`, emu.FE, queryPort, canary))
	for _, n := range nodes {
		n.waitFor("job s finished (the sealed password opened on the leader)", func() bool { return n.state("s") == "FINISHED" })
	}
	if out := b.sql("SHOW CREATE SYNC JOB s"); strings.Contains(out, canary) {
		t.Fatalf("SHOW CREATE shows the password: %s", out)
	}
	for _, n := range all {
		if strings.Contains(n.log.String(), canary) {
			t.Fatalf("the password is in a node's log:\n%s", n.log)
		}
	}
	for _, n := range nodes {
		n.stop() // flush, and a snapshot-free restart below
		n.start()
	}
	if hits := grepDirs(t, canary, a.dir, b.dir, c.dir, w.dir); len(hits) > 0 {
		t.Fatalf("the password in clear in %v", hits)
	}

	// Users and grants are replicated: created on b, used on c.
	b.sql("CREATE USER viewer@'%' IDENTIFIED BY 'v-pass'; GRANT SELECT ON sluice.* TO viewer@'%'")
	c.waitFor("viewer logs in on c", func() bool {
		out, err := c.runAs("viewer", "v-pass", "SELECT COUNT(*) FROM sluice.jobs")
		return err == nil && out == "2"
	})
	if out, err := c.runAs("viewer", "v-pass", "DROP SYNC JOB g"); err == nil || !strings.Contains(out, "1227") {
		t.Fatalf("a SELECT-only user dropped a job on c: %v %s", err, out)
	}
	if hits := grepDirs(t, "v-pass", a.dir, b.dir, c.dir, w.dir); len(hits) > 0 {
		t.Fatalf("a user's password in clear in %v", hits)
	}

	// b restarts without --join: it finds its cluster from its state.
	b.stop()
	b.args = clusterArgs
	b.start()
	b.waitFor("b back with job g", func() bool { return b.sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'g'") == "1" })
	if got := a.int("SELECT COUNT(*) FROM sluice.nodes"); got != 4 {
		t.Fatalf("after b's restart: %d nodes", got)
	}

	// A dead join address: the new node exits, saying why.
	d := newNode(t)
	cmd := exec.Command(binary, "server", "--data-dir", d.dir, "--mysql-addr", d.mysqlAddr, "--http-addr", d.httpAddr,
		"--raft-addr", d.raftA, "--join", "127.0.0.1:1", "--join-timeout", "2s")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "could not join the cluster through 127.0.0.1:1") ||
		!strings.Contains(string(out), "not starting a cluster of its own") {
		t.Fatalf("joining through a dead address: %v\n%s", err, out)
	}

	// A new worker without --join cannot start a cluster (it never votes).
	out, err = exec.Command(binary, "server", "--data-dir", d.dir, "--mysql-addr", d.mysqlAddr, "--http-addr", d.httpAddr,
		"--raft-addr", d.raftA, "--role", "worker").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--role worker joins a cluster") {
		t.Fatalf("a new worker without --join: %v\n%s", err, out)
	}

	// The whole cluster killed and restarted (without --join): every job,
	// user and node is back.
	for _, n := range all {
		n.kill9()
	}
	for _, n := range all {
		n.args = clusterArgs
		if n == w {
			n.args = append([]string{"--role", "worker"}, clusterArgs...) // a restart keeps its role only if asked to
		}
		n.startAsync()
	}
	for _, n := range all {
		n.waitHealthy()
	}
	for _, n := range all {
		n.waitFor("everything back after a whole-cluster restart", func() bool {
			out, err := n.runAs("viewer", "v-pass", "SELECT COUNT(*) FROM sluice.jobs")
			return err == nil && out == "2" && n.int("SELECT COUNT(*) FROM sluice.nodes") == 4
		})
	}

	// kill -9 of the leader: a survivor leads and takes writes, and every
	// survivor sees the dead node go DOWN.
	leader, dead, alive := splitLeader(t, nodes)
	dead.kill9()
	killed := time.Now()
	alive[0].waitFor("a write accepted after kill -9 of the leader", func() bool {
		_, err := alive[0].run("CREATE SYNC JOB h FROM datagen ('rows'='10') TO blackhole ()")
		return err == nil
	})
	t.Logf("first write accepted %s after kill -9 of the leader", time.Since(killed).Round(time.Millisecond))
	for _, n := range append(alive, w) {
		n.waitFor("job h on the survivors", func() bool { return n.sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'h'") == "1" })
		n.waitFor("the dead leader DOWN", func() bool {
			return n.sql("SELECT alive FROM sluice.nodes WHERE node_id = '"+leader+"'") == "0"
		})
	}
	alive[1].waitFor("a NODE_DOWN event for the dead leader", func() bool {
		return alive[1].sql("SELECT COUNT(*) FROM sluice.events WHERE kind = 'NODE_DOWN' AND message LIKE '%"+leader+"%'") != "0"
	})

	// REMOVE NODE decommissions the dead node for good, from a node that
	// does not lead; an unknown id and the leader itself are refused.
	follower := alive[0]
	if leaderOf(follower) == nodeIDOf(follower) {
		follower = alive[1]
	}
	if out, err := follower.run("REMOVE NODE 'no-such-node'"); err == nil || !strings.Contains(out, "1210") {
		t.Fatalf("REMOVE NODE of an unknown node: %v %s", err, out)
	}
	if out, err := follower.run("REMOVE NODE '" + leaderOf(follower) + "'"); err == nil || !strings.Contains(out, "leader") {
		t.Fatalf("REMOVE NODE of the leader: %v %s", err, out)
	}
	follower.sql("REMOVE NODE '" + leader + "'")
	for _, n := range append(alive, w) {
		n.waitFor("three members after REMOVE NODE", func() bool {
			return n.int("SELECT COUNT(*) FROM sluice.nodes") == 3 &&
				n.int("SELECT COUNT(*) FROM sluice.nodes WHERE node_id = '"+leader+"'") == 0
		})
	}

	// Quorum lost (one voter of three left): a write fails within the
	// bound, naming the quorum — refused (1290), or, when the survivor
	// led and had appended it, with its outcome unknown; reads answer.
	if got := alive[1].sql("SELECT GROUP_CONCAT(raft_state ORDER BY raft_state) FROM sluice.nodes"); got != "Follower,Leader,Non-voter" {
		t.Fatalf("before the quorum loss: %s", got)
	}
	alive[0].kill9()
	began := time.Now()
	out2, err := alive[1].run("DROP SYNC JOB h")
	if err == nil || !strings.Contains(out2, "quorum") || !(strings.Contains(out2, "1290") || strings.Contains(out2, "unknown")) {
		t.Fatalf("a write without a quorum: %v %s", err, out2)
	}
	t.Logf("a write without a quorum failed after %s: %s", time.Since(began).Round(time.Millisecond), out2)
	if took := time.Since(began); took > 15*time.Second {
		t.Fatalf("a write without a quorum took %s to fail", took)
	}
	if out, err := alive[1].run("SET sluice_read_consistency = 'linearizable'; SELECT COUNT(*) FROM sluice.jobs"); err == nil || !strings.Contains(out, "linearizable read needs the leader") {
		t.Fatalf("a linearizable read without a quorum: %v %s", err, out)
	}
	if got := alive[1].int("SELECT COUNT(*) FROM sluice.jobs WHERE name IN ('g', 's')"); got != 2 {
		t.Fatalf("reads without a quorum: %d jobs", got)
	}
}

// canary is a password that must never be found in clear at rest.
const canary = "Canary-Pw-7f3b9e"
