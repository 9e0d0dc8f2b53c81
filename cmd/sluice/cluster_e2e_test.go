package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// leaderOf asks a node's /healthz which node leads.
func leaderOf(n *node) string {
	resp, err := http.Get("http://" + n.httpAddr + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Leader string `json:"leader"`
		Node   string `json:"node"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h.Leader
}

func nodeIDOf(n *node) string {
	resp, err := http.Get("http://" + n.httpAddr + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Node string `json:"node"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h.Node
}

// Three real nodes on loopback (issue 11, membership): the second joins
// through the first, the third through the second (a follower passes the
// join to the leader), and a worker as a non-voter; every node lists all
// four with their Raft roles; the catalog reaches
// every node; a restarted member finds its cluster without --join and
// rejoining changes nothing; a node whose join address is dead exits
// saying why instead of starting a cluster of its own; kill -9 of the
// leader elects another, which takes writes.
func TestClusterJoin(t *testing.T) {
	a := newNode(t)
	a.start()
	b := newNode(t)
	b.args = []string{"--join", a.httpAddr}
	b.start()
	c := newNode(t)
	c.args = []string{"--join", b.httpAddr} // through a follower
	c.start()
	w := newNode(t)
	w.args = []string{"--join", a.httpAddr, "--role", "worker"} // a non-voter
	w.start()
	nodes := []*node{a, b, c}
	for _, n := range append(nodes, w) {
		n.waitFor("four nodes in sluice.nodes", func() bool { return n.int("SELECT COUNT(*) FROM sluice.nodes") == 4 })
	}
	// Every member's Raft role, as any node's configuration has it.
	c.waitFor("roles", func() bool {
		return c.sql("SELECT GROUP_CONCAT(raft_state ORDER BY raft_state) FROM sluice.nodes") == "Follower,Follower,Leader,Non-voter"
	})
	// A write on a follower is refused, naming where the leader is (writes
	// are not forwarded yet).
	if out, err := c.run("CREATE SYNC JOB g FROM datagen ('rows'='10') TO blackhole ()"); err == nil ||
		!strings.Contains(out, "the leader is") || !strings.Contains(out, a.mysqlAddr) {
		t.Fatalf("a write on a follower: %v %s", err, out)
	}
	a.sql("CREATE SYNC JOB g FROM datagen ('rows'='10') TO blackhole ()")
	for _, n := range nodes {
		n.waitFor("job g on every node", func() bool { return n.sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'g'") == "1" })
	}

	// b restarts without --join: it finds its cluster from its state.
	b.stop()
	b.args = nil
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

	// kill -9 of the leader: a survivor leads and takes writes.
	leader := leaderOf(a)
	var dead *node
	var alive []*node
	for _, n := range nodes {
		if nodeIDOf(n) == leader {
			dead = n
		} else {
			alive = append(alive, n)
		}
	}
	if dead == nil {
		t.Fatalf("no node is the leader %q", leader)
	}
	dead.kill9()
	var next *node
	deadline := time.Now().Add(15 * time.Second)
	for next == nil {
		if time.Now().After(deadline) {
			t.Fatal("no new leader 15 s after kill -9 of the leader")
		}
		for _, n := range alive {
			if l := leaderOf(n); l != "" && l != leader && l == nodeIDOf(n) {
				next = n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	next.sql("CREATE SYNC JOB h FROM datagen ('rows'='10') TO blackhole ()")
	for _, n := range alive {
		n.waitFor("job h on the survivors", func() bool { return n.sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'h'") == "1" })
	}
}
