package main

import (
	"fmt"
	"strings"
	"testing"
)

// taskRow is one row of sluice.tasks.
type taskRow struct {
	node    string
	attempt int64
	state   string
}

// tasksOf lists the subtasks of job as n shows them in sluice.tasks.
func tasksOf(n *node, job string) map[int]taskRow {
	out := map[int]taskRow{}
	for _, line := range strings.Split(n.sql("SELECT task_id, node_id, attempt, state FROM sluice.tasks WHERE job = '"+job+"'"), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 {
			var id int
			var a int64
			fmt.Sscan(f[0], &id)
			fmt.Sscan(f[2], &a)
			out[id] = taskRow{f[1], a, f[3]}
		}
	}
	return out
}

// spreadOver waits until job's par subtasks run (RUNNING) on at least
// want distinct nodes, and returns them.
func spreadOver(t *testing.T, n *node, job string, par, want int) map[int]taskRow {
	t.Helper()
	var ts map[int]taskRow
	n.waitFor(fmt.Sprintf("%s's %d subtasks running on %d nodes", job, par, want), func() bool {
		ts = tasksOf(n, job)
		nodes := map[string]bool{}
		for _, r := range ts {
			if r.state != "RUNNING" {
				return false
			}
			nodes[r.node] = true
		}
		return len(ts) == par && len(nodes) >= want
	})
	return ts
}

// A pipeline whose subtasks run on three nodes takes barrier-aligned
// checkpoints across them (triggers, acks and commits over the node RPC)
// and finishes with every row once in the exactly-once file sink. Then a
// second job: kill -9 of a node holding one of its subtasks but not its
// coordinator moves the job (a higher attempt) and it still ends with
// every row once, while a job on the other nodes keeps its attempt.
func TestClusterPipelineAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	out := t.TempDir()
	nodes[1].sql(fmt.Sprintf("CREATE SYNC JOB s FROM datagen ('rows'='9000', 'rate'='6000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='3')", out))
	spreadOver(t, nodes[0], "s", 3, 3)
	nodes[0].waitFor("checkpoints across nodes", func() bool {
		return nodes[0].int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 's' AND state = 'COMPLETED'") >= 3
	})
	nodes[2].waitFor("FINISHED", func() bool { return nodes[2].state("s") == "FINISHED" })
	assertExactlyOnce(t, out, []string{"a", "b"}, 9000)
	if got := nodes[2].int("SELECT attempt FROM sluice.jobs WHERE name = 's'"); got != 1 {
		t.Fatalf("attempt %d: the job restarted without a fault", got)
	}

	// Kill a node that runs subtask 1 and not subtask 0 (the coordinator).
	out2 := t.TempDir()
	nodes[1].sql(fmt.Sprintf("CREATE SYNC JOB k FROM datagen ('rows'='30000', 'rate'='6000', 'batch_size'='200', 'tables'='a,b') "+
		"TO file ('path'='%s') WITH ('checkpoint.interval'='200ms', 'parallelism'='3', 'retry.interval'='100ms')", out2))
	before := spreadOver(t, nodes[0], "k", 3, 3)
	var victim *node
	var others []*node
	for _, n := range nodes {
		if id := nodeIDOf(n); id == before[1].node && id != before[0].node {
			victim = n
		} else {
			others = append(others, n)
		}
	}
	if victim == nil {
		t.Fatalf("subtasks 0 and 1 on one node: %+v", before)
	}
	watch := others[0]
	watch.waitFor("completed checkpoints", func() bool {
		return watch.int("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'k' AND state = 'COMPLETED'") >= 3
	})
	if watch.state("k") == "FINISHED" {
		t.Fatal("the job finished before a node could be killed; slow it down")
	}
	victim.kill9()
	watch.waitFor("the job running again without the dead node, with a higher attempt", func() bool {
		ts := tasksOf(watch, "k")
		for _, r := range ts {
			if r.node == before[1].node || r.attempt <= before[1].attempt || r.state != "RUNNING" {
				return false
			}
		}
		return len(ts) == 3 || watch.state("k") == "FINISHED"
	})
	watch.waitFor("FINISHED", func() bool { return watch.state("k") == "FINISHED" })
	assertExactlyOnce(t, out2, []string{"a", "b"}, 30000)
}
