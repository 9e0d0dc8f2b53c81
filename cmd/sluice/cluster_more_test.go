package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
	"sluice/internal/sremu"
)

// A mysql_cdc → starrocks exactly-once job on three nodes, with live
// writes: kill -9 of the leader (the new leader adopts the job, or moves it
// if it ran there), then, if the job ran elsewhere, kill -9 of its node.
// The emulator ends with exactly the source's rows, no label committed
// twice and no transaction left prepared.
func TestClusterCDCToStarRocksLeaderKill(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, amount DECIMAL(12,2), note VARCHAR(40))",
		"INSERT INTO shop.orders SELECT seq, seq / 4, IF(seq % 5 = 0, NULL, CONCAT('n', seq)) FROM shop.seq_1_to_3000")
	e, qport := startEmulator(t)
	e.SetFaults(sremu.Faults{FailEvery: 50, CommitLatency: 5 * time.Millisecond})
	admin := db.Open(t, "")
	nodes := startCluster(t, 3, nil)

	stop := liveWrites(t, admin, 4000, 3*time.Millisecond)
	defer stop()

	nodes[1].sql(srJob(db, e, qport))
	ckpts := func(n *node) int64 { // the last completed id (only checkpoint.retained are kept)
		return n.int("SELECT COALESCE(MAX(checkpoint_id), 0) FROM sluice.checkpoints WHERE job = 'sr' AND state = 'COMPLETED'")
	}
	nodes[1].waitFor("completed checkpoints", func() bool { return ckpts(nodes[1]) >= 3 })
	run, _ := runner(t, nodes[1], "sr", nodes)
	runID := nodeIDOf(run)
	leaderID, leader, rest := splitLeader(t, nodes)
	t.Logf("the job runs on %s, the leader is %s", runID, leaderID)
	leader.kill9()
	rest[0].waitFor("a new leader", func() bool { l := leaderOf(rest[0]); return l != "" && l != leaderID })
	before := ckpts(rest[0])
	rest[0].waitFor("checkpoints again after the leader's death", func() bool { return ckpts(rest[0]) > before })
	leader.args = clusterArgs
	leader.start()
	if runID != leaderID {
		rest[0].waitFor("the restarted node back in the cluster", func() bool { return rest[0].sql("SELECT SUM(alive) FROM sluice.nodes") == "3" })
		run.kill9()
		watch := leader
		if run == leader {
			watch = rest[0]
		}
		before = ckpts(watch)
		watch.waitFor("the job moved off its dead node", func() bool {
			id := watch.sql("SELECT MIN(node_id) FROM sluice.tasks WHERE job = 'sr' AND state = 'RUNNING'")
			return id != runID && id != "NULL" && id != "" && ckpts(watch) > before
		})
	}
	time.Sleep(time.Second)
	stop()
	emuMatches(t, db, e, 60*time.Second)
}

// A sink that takes seconds per load (the emulator delays every Stream
// Load by 3 s) keeps its node UP: liveness heartbeats run on their own, so
// the node is never SUSPECT or DOWN and its job never moves, while the task
// is reported STALLED (task.stall_timeout 1s) and RUNNING again.
func TestClusterSlowSinkStaysUp(t *testing.T) {
	e, qport := startEmulator(t)
	e.SetFaults(sremu.Faults{CommitLatency: 3 * time.Second})
	nodes := startCluster(t, 3, nil)
	nodes[0].sql(fmt.Sprintf(`CREATE SYNC JOB slow FROM datagen ('rate'='200', 'tables'='t') TO starrocks ('fe'='%s', 'query_port'='%s',
		'user'='loader', 'password'='pw', 'database'='ods', 'table'='ods_t', 'batch.interval'='200ms')
		WITH ('checkpoint.interval'='1s', 'task.stall_timeout'='1s')`, e.FE, qport))
	run, _ := runner(t, nodes[0], "slow", nodes)
	runID := nodeIDOf(run)
	watch := nodes[0]
	watch.waitFor("the slow load reported", func() bool {
		return watch.int("SELECT COUNT(*) FROM sluice.events WHERE job = 'slow' AND kind = 'TASK_STALLED'") >= 1
	})
	deadline := time.Now().Add(8 * time.Second) // four session timeouts
	for time.Now().Before(deadline) {
		if got := watch.sql("SELECT alive FROM sluice.nodes WHERE node_id = '" + runID + "'"); got != "1" {
			t.Fatalf("the slow sink's node %s is not alive (%q)", runID, got)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := watch.int(fmt.Sprintf("SELECT COUNT(*) FROM sluice.events WHERE kind IN ('NODE_SUSPECT', 'NODE_DOWN') AND message LIKE '%%%s%%' "+
		"AND seq > (SELECT MAX(seq) FROM sluice.events WHERE job = 'slow' AND kind = 'CREATED')", runID)); n != 0 {
		t.Fatalf("%d liveness events for the slow sink's node:\n%s", n, watch.sql("SELECT kind, message FROM sluice.events"))
	}
	if a := watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'slow'"); a != 1 {
		t.Fatalf("the job moved (attempt %d)", a)
	}
	if n := watch.int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'slow' AND state = 'COMPLETED'"); n < 1 {
		t.Fatal("no checkpoint completed through the slow sink")
	}
	watch.waitFor("TASK_RESUMED", func() bool {
		return watch.int("SELECT COUNT(*) FROM sluice.events WHERE job = 'slow' AND kind = 'TASK_RESUMED'") >= 1
	})
}

// The whole cluster killed (kill -9) twice while a bounded exactly-once
// job spread over it runs, and restarted each time in another order (one
// node at a time, the first alone without a quorum; then all at once in
// reverse). The job comes back each time with a higher attempt, continues
// its checkpoint ids, and finishes with every row once.
func TestClusterWholeRestartInOrders(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	out := t.TempDir()
	nodes[0].sql(fmt.Sprintf("CREATE SYNC JOB w FROM datagen ('rows'='15000', 'rate'='3000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='3', 'retry.interval'='100ms')", out))
	spreadOver(t, nodes[0], "w", 3, 2)
	for _, n := range nodes {
		n.waitFor("the job on every node", func() bool { return n.state("w") != "" })
	}
	maxID := func(n *node) int64 {
		return n.int("SELECT COALESCE(MAX(checkpoint_id), 0) FROM sluice.checkpoints WHERE job = 'w' AND state = 'COMPLETED'")
	}
	nodes[0].waitFor("completed checkpoints", func() bool { return maxID(nodes[0]) >= 3 })
	for round, order := range [][]int{{2, 0, 1}, {1, 2, 0}} {
		watch := nodes[order[0]]
		if watch.state("w") == "FINISHED" {
			t.Fatal("the job finished before the cluster could be killed; slow it down")
		}
		before, attempt := maxID(watch), watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'w'")
		for _, n := range nodes {
			n.kill9()
		}
		for i, k := range order {
			nodes[k].args = clusterArgs
			nodes[k].startAsync()
			if round == 0 && i < 2 {
				time.Sleep(time.Second) // one at a time: the first waits alone
			}
		}
		for _, n := range nodes {
			n.waitHealthy()
		}
		watch.waitFor(fmt.Sprintf("round %d: running again with a higher attempt, ids continuing", round+1), func() bool {
			return watch.state("w") == "FINISHED" || (watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'w'") > attempt && maxID(watch) > before)
		})
	}
	defer func() {
		if t.Failed() {
			t.Logf("tasks:\n%s\ncheckpoints:\n%s\nevents:\n%s", nodes[0].sql("SELECT * FROM sluice.tasks"),
				nodes[0].sql("SELECT checkpoint_id, state, triggered_at FROM sluice.checkpoints WHERE job = 'w' ORDER BY checkpoint_id DESC LIMIT 5"),
				nodes[0].sql("SELECT kind, message FROM sluice.events ORDER BY seq DESC LIMIT 15")+"\nmetrics:\n"+nodes[0].sql("SELECT * FROM sluice.metrics")+"\npositions:\n"+nodes[0].sql("SELECT checkpoint_id, position FROM sluice.checkpoints WHERE job = 'w' ORDER BY checkpoint_id DESC LIMIT 60"))
		}
	}()
	nodes[0].waitFor("FINISHED", func() bool { return nodes[0].state("w") == "FINISHED" })
	t.Logf("finished at attempt %d after two whole-cluster restarts", nodes[0].int("SELECT attempt FROM sluice.jobs WHERE name = 'w'"))
	assertExactlyOnce(t, out, []string{"a", "b"}, 15000)
	if !strings.Contains(nodes[1].sql("SELECT COUNT(*) FROM sluice.nodes"), "3") {
		t.Fatal("a node is missing after the restarts")
	}
}

// The leader frozen (SIGSTOP) while it runs a subtask of a bounded
// exactly-once job spread over all three nodes: the others elect a new
// leader, which judges the old one DOWN and moves the job with a higher
// attempt; thawed (SIGCONT), the old leader follows, and nothing its
// zombie run sends is accepted (its checkpoint commits, state changes and
// task messages name the old attempt; its sink's files name it too): the
// output holds every row exactly once.
func TestClusterLeaderPausedIsFenced(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	out := t.TempDir()
	nodes[1].sql(fmt.Sprintf("CREATE SYNC JOB lz FROM datagen ('rows'='20000', 'rate'='4000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='3', 'retry.interval'='100ms')", out))
	spreadOver(t, nodes[1], "lz", 3, 3) // one subtask runs on the leader
	leaderID, leader, others := splitLeader(t, nodes)
	watch := others[0]
	watch.waitFor("completed checkpoints", func() bool {
		return watch.int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'lz' AND state = 'COMPLETED'") >= 3
	})
	attempt := watch.int("SELECT attempt FROM sluice.jobs WHERE name = 'lz'")
	if err := leader.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	watch.waitFor("the job moved off the frozen leader", func() bool {
		if l := leaderOf(watch); l == "" || l == leaderID {
			return false
		}
		ts := tasksOf(watch, "lz")
		for _, r := range ts {
			if r.node == leaderID || r.attempt <= attempt || r.state != "RUNNING" {
				return false
			}
		}
		return len(ts) == 3
	})
	if err := leader.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	watch.waitFor("FINISHED", func() bool { return watch.state("lz") == "FINISHED" })
	assertExactlyOnce(t, out, []string{"a", "b"}, 20000)
	leader.waitFor("the thawed leader follows", func() bool { l := leaderOf(leader); return l != "" && l != leaderID })
}
