package node_test

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"sluice/catalog"
	"sluice/node"
)

// A bounded datagen job with parallelism 3 on three in-process nodes: its
// subtasks spread over the nodes, its checkpoints cross them (run under
// -race: the node RPC, Deliver and the coordinator together), and it
// finishes at its first attempt.
func TestPipelineAcrossNodes(t *testing.T) {
	ns := cluster3(t)
	db := mysqlTo(t, ns[1])
	if _, err := db.Exec("CREATE SYNC JOB s FROM datagen ('rows'='3000', 'rate'='3000', 'batch_size'='100', 'tables'='a') " +
		"TO blackhole () WITH ('checkpoint.interval'='100ms', 'parallelism'='3')"); err != nil {
		t.Fatal(err)
	}
	job := func() catalog.Job { j, _ := ns[0].Catalog.Job("s"); return j }
	waitFor(t, "the subtasks on three nodes", func() bool {
		on := map[string]bool{}
		for _, p := range job().Placement {
			on[p.Node] = true
		}
		return len(on) == 3
	})
	for _, n := range ns {
		waitFor(t, "a task running on each node", func() bool {
			for _, r := range n.Engine.Tasks() {
				if r.Job == "s" {
					return true
				}
			}
			return false
		})
	}
	waitFor(t, "FINISHED", func() bool { return job().State == catalog.Finished })
	j := job()
	cps := ns[0].Catalog.Checkpoints()
	completed := 0
	for _, c := range cps {
		if c.JobID == j.ID && c.State == catalog.CheckpointCompleted {
			completed++
			if len(c.Tasks) != 3 {
				t.Fatalf("checkpoint %d holds %d tasks, want 3 (one complete record per pipeline checkpoint)", c.ID, len(c.Tasks))
			}
		}
	}
	if j.Attempt != 1 || completed == 0 {
		t.Fatalf("attempt %d, %d completed checkpoints", j.Attempt, completed)
	}
	var rows int64
	for _, n := range ns {
		for _, m := range n.Engine.MetricRows() {
			if m.Job == "s" {
				rows += m.SinkWriteCount
			}
		}
	}
	if rows != 3000 {
		t.Fatalf("%d rows written over the nodes, want 3000", rows)
	}
}

// PAUSE of a job spread over three nodes takes its final checkpoint across
// them (a savepoint: every subtask's position, one record) and every task
// stops well within the graceful-stop bound; RESUME places it again and
// it continues from the savepoint.
func TestPauseResumeAcrossNodes(t *testing.T) {
	ns := cluster3(t)
	db := mysqlTo(t, ns[2])
	if _, err := db.Exec("CREATE SYNC JOB p FROM datagen ('rate'='600', 'batch_size'='20', 'tables'='a') " +
		"TO blackhole () WITH ('checkpoint.interval'='100ms', 'parallelism'='3')"); err != nil {
		t.Fatal(err)
	}
	job := func() catalog.Job { j, _ := ns[0].Catalog.Job("p"); return j }
	tasks := func() int {
		n := 0
		for _, nd := range ns {
			for _, r := range nd.Engine.Tasks() {
				if r.Job == "p" {
					n++
				}
			}
		}
		return n
	}
	waitFor(t, "three tasks on three nodes", func() bool { return tasks() == 3 && len(ns[0].Catalog.Checkpoints()) >= 3 })
	start := time.Now()
	if _, err := db.Exec("PAUSE SYNC JOB p"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every task stopped", func() bool { return tasks() == 0 })
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the graceful stop took %s: it waited for the stop bound instead of a final checkpoint", took)
	}
	j := job()
	last, ok := ns[0].Catalog.LastCheckpoint(j.ID, 1)
	if j.State != catalog.Paused || !ok || !last.Final || len(last.Tasks) != 3 {
		t.Fatalf("after PAUSE: %s, last checkpoint %+v", j.State, last)
	}
	if _, err := db.Exec("RESUME SYNC JOB p"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running again over the nodes", func() bool { return tasks() == 3 && job().Attempt == j.Attempt+1 })
	waitFor(t, "checkpoints after the savepoint", func() bool { return ns[0].Catalog.MaxCheckpointID(j.ID, 1) > last.ID })
}

// mysqlTo is a MySQL client of n's front as root, closed at the end.
func mysqlTo(t *testing.T, n *node.Node) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", n.MySQLAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
