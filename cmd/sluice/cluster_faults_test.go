package main

import (
	"fmt"
	"sluice/internal/mariadbtest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The leader frozen (SIGSTOP) for longer than an election: the others
// elect a new leader and take writes; thawed (SIGCONT), the old leader
// steps down and follows, and a statement a client sent it while it was
// frozen takes effect at most once, through the new leader.
func TestClusterLeaderPaused(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leader, old, others := splitLeader(t, nodes)
	if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := make(chan string, 1)
	go func() { // a client's statement that reaches the frozen leader
		out, err := old.run("CREATE SYNC JOB frozen FROM datagen ('rows'='1') TO blackhole ()")
		frozen <- fmt.Sprintf("%v %s", err, out)
	}()
	others[0].waitFor("a new leader taking writes", func() bool {
		l := leaderOf(others[0])
		return l != "" && l != leader && others[0].sql("SELECT 1") == "1"
	})
	others[0].sql("CREATE SYNC JOB during FROM datagen ('rows'='1') TO blackhole ()")
	time.Sleep(time.Second)
	if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	old.waitFor("the thawed leader follows", func() bool {
		l := leaderOf(old)
		return l != "" && l != leader
	})
	select {
	case res := <-frozen:
		// The old leader's entry is discarded by the higher term and the
		// client's statement retried through the new leader: it must
		// never answer "already exists" for a job it created itself (the
		// request id dedupe is what makes a retry of an entry that did
		// commit safe; catalog/requests_test.go covers that case).
		t.Logf("the statement sent to the frozen leader: %s", res)
		if strings.Contains(res, "1050") {
			t.Fatalf("a retried statement was applied twice: %s", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the statement sent to the frozen leader never returned")
	}
	// Every node agrees, and nothing was applied twice.
	want := others[0].sql("SELECT GROUP_CONCAT(name ORDER BY name) FROM sluice.jobs")
	for _, n := range nodes {
		n.waitFor("the same jobs everywhere", func() bool {
			return n.sql("SELECT GROUP_CONCAT(name ORDER BY name) FROM sluice.jobs") == want
		})
	}
	if !strings.Contains(want, "during") {
		t.Fatalf("jobs %q", want)
	}
	if n := others[0].int("SELECT COUNT(*) FROM sluice.events WHERE kind = 'CREATED' AND job = 'frozen'"); n > 1 {
		t.Fatalf("the frozen leader's statement applied %d times", n)
	}
	// The old leader takes writes again, as a follower forwarding them.
	old.sql("CREATE SYNC JOB after FROM datagen ('rows'='1') TO blackhole ()")
	others[1].waitFor("job after everywhere", func() bool {
		return others[1].sql("SELECT COUNT(*) FROM sluice.jobs WHERE name = 'after'") == "1"
	})
}

// kill -9 of the node running a bounded exactly-once job, twice (the first
// victim restarted in between, so a quorum remains; a victim that leads
// exercises a leader change too): the coordinator moves the job to a live
// node from its last checkpoint with a higher attempt, and the output
// holds every row exactly once.
func TestClusterLeaderKillExactlyOnce(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	out := t.TempDir()
	_, _, followers := splitLeader(t, nodes)
	followers[0].sql(fmt.Sprintf("CREATE SYNC JOB b FROM datagen ('rows'='40000', 'rate'='12000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='2', 'retry.interval'='100ms')", out))
	var restarted, watch *node
	for kill := 1; kill <= 2; kill++ {
		victim, others := runner(t, followers[0], "b", nodes)
		watch = others[0]
		maxID := func() int64 {
			return watch.int("SELECT COALESCE(MAX(checkpoint_id), 0) FROM sluice.checkpoints WHERE job = 'b' AND state = 'COMPLETED'")
		}
		watch.waitFor("completed checkpoints", func() bool { return maxID() >= int64(3*kill) })
		if watch.state("b") == "FINISHED" {
			t.Fatal("the job finished before its node could be killed; slow it down")
		}
		attempt := watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'b'")
		before := maxID()
		t.Logf("kill %d: the job's node leads: %v", kill, leaderOf(watch) == nodeIDOf(victim))
		victim.kill9()
		watch.waitFor("the job running again elsewhere, with a new attempt", func() bool {
			return watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'b'") > attempt && watch.state("b") != "SCHEDULED"
		})
		watch.waitFor("checkpoint ids continue", func() bool { return maxID() > before })
		if restarted == nil { // bring the first victim back before the second kill: a quorum must remain
			victim.args = clusterArgs
			victim.start()
			restarted = victim
		}
	}
	watch.waitFor("FINISHED", func() bool { return watch.state("b") == "FINISHED" })
	assertExactlyOnce(t, out, []string{"a", "b"}, 40000)
}

// A bounded datagen → mysql job, exactly-once through XA, spread over three
// nodes, lives through kill -9 of a node holding one of its subtasks (not
// the leader), that node's return, then kill -9 of the leader: each time
// the job moves with a higher attempt, the new run recovers the prepared
// transactions, and the target ends with exactly N rows per table (COUNT =
// COUNT DISTINCT = N) and no prepared transaction left.
func TestClusterLeaderKillIntoMariaDB(t *testing.T) {
	db := mariadbtest.Start(t)
	admin := db.Open(t, "")
	nodes := startCluster(t, 3, nil)
	const rows = 40000
	nodes[1].sql(fmt.Sprintf(`CREATE SYNC JOB m FROM datagen ('rows'='%d', 'rate'='6000', 'batch_size'='250', 'tables'='a,b')
		TO mysql ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'database'='dst', 'semantic'='exactly-once')
		WITH ('checkpoint.interval'='300ms', 'retry.interval'='100ms', 'parallelism'='3')`, rows, db.Port, mariadbtest.AdminUser, mariadbtest.AdminPass))
	spreadOver(t, nodes[1], "m", 3, 3)
	leaderID, leader, followers := splitLeader(t, nodes)
	worker, watch := followers[0], followers[1]
	maxID := func() int64 {
		return watch.int("SELECT COALESCE(MAX(checkpoint_id), 0) FROM sluice.checkpoints WHERE job = 'm' AND state = 'COMPLETED'")
	}
	attempt := func() int64 { return watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'm'") }
	for _, victim := range []*node{worker, leader} {
		watch.waitFor("completed checkpoints", func() bool { return maxID() >= 3 })
		if watch.state("m") == "FINISHED" {
			t.Fatal("the job finished before its nodes could be killed; slow it down")
		}
		id, before, a := nodeIDOf(victim), maxID(), attempt()
		victim.kill9()
		watch.waitFor("the job off "+id+" with a higher attempt, checkpoints continuing", func() bool {
			if watch.state("m") == "FINISHED" {
				return true
			}
			for _, r := range tasksOf(watch, "m") {
				if r.node == id {
					return false
				}
			}
			return attempt() > a && maxID() > before
		})
		if victim == worker { // back, so a quorum survives the leader's kill
			worker.args = clusterArgs
			worker.start()
			watch.waitFor("three live nodes", func() bool { return watch.sql("SELECT SUM(alive) FROM sluice.nodes") == "3" })
		}
	}
	t.Logf("killed %s (a worker), then %s (the leader)", nodeIDOf(worker), leaderID)
	watch.waitFor("FINISHED", func() bool { return watch.state("m") == "FINISHED" })
	for _, tbl := range []string{"a", "b"} {
		var n, distinct int
		if err := admin.QueryRow("SELECT COUNT(*), COUNT(DISTINCT id) FROM dst."+tbl).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != rows || distinct != rows {
			t.Fatalf("dst.%s: %d rows, %d distinct ids, want %d", tbl, n, distinct, rows)
		}
	}
	rs, err := admin.Query("XA RECOVER")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if rs.Next() {
		t.Fatal("a prepared XA transaction is left behind")
	}
}

// Jobs spread over the nodes by free slots (issue 12, placement): three
// voters and a worker, four jobs, one on each. kill -9 of the worker moves
// only its job (a higher attempt, once the leader judges it DOWN); the
// others keep their attempt. kill -9 of the leader then moves only the
// leader's job: the new leader adopts the rest without restarting them.
func TestClusterPlacementAndFailover(t *testing.T) {
	nodes := startCluster(t, 4, func(i int) []string {
		if i == 3 {
			return []string{"--role", "worker"}
		}
		return nil
	})
	w := nodes[3]
	for _, n := range nodes {
		n.waitFor("four live nodes", func() bool { return n.sql("SELECT SUM(alive) FROM sluice.nodes") == "4" })
	}
	for _, j := range []string{"p1", "p2", "p3", "p4"} {
		nodes[1].sql("CREATE SYNC JOB " + j + " FROM datagen ('rate'='50') TO blackhole () WITH ('checkpoint.interval'='200ms')")
	}
	type at struct {
		node    string
		attempt int64
	}
	// Where each job runs and at which attempt, as sluice.tasks shows it.
	placed := func(n *node) map[string]at {
		out := map[string]at{}
		for _, line := range strings.Split(n.sql("SELECT job, node_id, attempt FROM sluice.tasks WHERE state = 'RUNNING' ORDER BY job"), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 {
				var a int64
				fmt.Sscan(f[2], &a)
				out[f[0]] = at{f[1], a}
			}
		}
		return out
	}
	// moved waits until the jobs that ran on dead have moved to another
	// node with a higher attempt, and checks every other job kept its
	// node and attempt.
	moved := func(watch *node, dead string, before map[string]at) map[string]at {
		t.Helper()
		var after map[string]at
		watch.waitFor("the jobs of "+dead+" moved", func() bool {
			after = placed(watch)
			if len(after) != len(before) {
				return false
			}
			for j, b := range before {
				if a := after[j]; b.node == dead && (a.node == dead || a.attempt <= b.attempt) {
					return false
				}
			}
			return true
		})
		for j, b := range before {
			if b.node != dead && after[j] != b {
				t.Fatalf("job %s on a healthy node was restarted: %+v -> %+v", j, b, after[j])
			}
		}
		return after
	}
	var before map[string]at
	nodes[2].waitFor("four jobs running on four nodes", func() bool {
		before = placed(nodes[2])
		seen := map[string]bool{}
		for _, p := range before {
			seen[p.node] = true
		}
		return len(before) == 4 && len(seen) == 4
	})
	leaderID, leader, voters := splitLeader(t, nodes[:3])
	wID := nodeIDOf(w)
	w.kill9()
	before = moved(voters[0], wID, before)
	leader.kill9()
	moved(voters[0], leaderID, before)
}

// A worker frozen (SIGSTOP) while it runs a bounded exactly-once job: the
// leader judges it DOWN and moves the job to another node with a higher
// attempt; thawed (SIGCONT), the zombie finds itself out of touch and
// fenced — its checkpoint commits and state changes are refused — and the
// output still holds every row exactly once. Tags keep the job off the
// leader (nodes 1 and 2 are pool=w).
func TestClusterWorkerPausedIsFenced(t *testing.T) {
	nodes := startCluster(t, 3, func(i int) []string {
		if i == 0 {
			return []string{"--tags", "pool=l"}
		}
		return []string{"--tags", "pool=w"}
	})
	if leaderOf(nodes[1]) != nodeIDOf(nodes[0]) {
		t.Skip("the first node does not lead")
	}
	out := t.TempDir()
	nodes[0].sql(fmt.Sprintf("CREATE SYNC JOB z FROM datagen ('rows'='30000', 'rate'='6000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='2', 'tags'='pool=w')", out))
	zombie, _ := runner(t, nodes[0], "z", nodes)
	zombieID := nodeIDOf(zombie) // asked before the freeze: a frozen node answers nothing
	watch := nodes[0]
	watch.waitFor("completed checkpoints", func() bool {
		return watch.int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'z' AND state = 'COMPLETED'") >= 3
	})
	attempt := watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'z'")
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	watch.waitFor("the job moved off the frozen worker", func() bool {
		return watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'z'") > attempt &&
			watch.sql("SELECT MIN(node_id) FROM sluice.tasks WHERE job = 'z' AND state = 'RUNNING'") != zombieID
	})
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	watch.waitFor("FINISHED", func() bool { return watch.state("z") == "FINISHED" })
	assertExactlyOnce(t, out, []string{"a", "b"}, 30000)
	watch.waitFor("the thawed worker back UP", func() bool {
		return watch.sql("SELECT alive FROM sluice.nodes WHERE node_id = '"+zombieID+"'") == "1"
	})
}
