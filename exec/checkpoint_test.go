package exec

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/catalog"
	"sluice/connectors/failpoint"
)

// committedIDs reads every committed file of a file-sink job and counts
// each (table, id).
func committedIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var row struct {
				Table string `json:"_table"`
				ID    int64  `json:"id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: torn or bad line %q: %v", f, sc.Text(), err)
			}
			seen[fmt.Sprintf("%s/%d", row.Table, row.ID)]++
		}
		fh.Close()
	}
	return seen
}

func checkExactlyOnce(t *testing.T, seen map[string]int, tables []string, rows int64) {
	t.Helper()
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", k, n)
		}
	}
	for _, tbl := range tables {
		for id := int64(1); id <= rows; id++ {
			if seen[fmt.Sprintf("datagen.%s/%d", tbl, id)] != 1 {
				t.Fatalf("datagen.%s id %d missing", tbl, id)
			}
		}
	}
	if int64(len(seen)) != rows*int64(len(tables)) {
		t.Fatalf("%d rows delivered, want %d", len(seen), rows*int64(len(tables)))
	}
}

func TestCheckpointsCompleteAndAreRetained(t *testing.T) {
	h := newHarness(t, 0)
	j := h.createWith("c", map[string]string{"rate": "5000", "batch_size": "50"}, catalog.ConnectorRef{Connector: "record"},
		map[string]string{"parallelism": "2", "checkpoint.interval": "20ms", "checkpoint.retained": "2"})
	deadline := time.Now().Add(10 * time.Second)
	for h.cat.MaxCheckpointID(j.ID, 1) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	list := h.cat.Checkpoints()
	if len(list) != 2 {
		t.Fatalf("retained %d checkpoints, want 2", len(list))
	}
	for _, c := range list {
		if c.State != catalog.CheckpointCompleted || len(c.Tasks) != 2 || c.Attempt != 1 || c.CompletedAt.Before(c.TriggeredAt) {
			t.Fatalf("checkpoint: %+v", c)
		}
		for _, tc := range c.Tasks {
			if len(tc.Position) == 0 {
				t.Fatalf("checkpoint %d task %d has no position", c.ID, tc.Subtask)
			}
		}
	}
	if list[1].ID <= list[0].ID {
		t.Fatalf("ids not increasing: %d, %d", list[0].ID, list[1].ID)
	}
	// PAUSE takes a final checkpoint (a savepoint).
	h.setState("c", catalog.Paused)
	for len(h.eng.Tasks()) != 0 {
		time.Sleep(5 * time.Millisecond)
	}
	last, ok := h.cat.LastCheckpoint(j.ID, 1)
	if !ok || !last.Final {
		t.Fatalf("no final checkpoint at pause: %+v", last)
	}
}

// Every failpoint, hit once mid-run, fails an attempt; the job retries
// from its last checkpoint and still delivers every row exactly once.
func TestExactlyOnceAcrossFailpoints(t *testing.T) {
	for _, fp := range []string{failpoint.AfterSinkPreCommit, failpoint.BeforeSinkCommit, failpoint.MidBatch} {
		t.Run(fp, func(t *testing.T) {
			defer failpoint.Disable()
			if err := failpoint.Enable(fp, "error@4"); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, 0)
			dir := t.TempDir()
			const rows = 3000
			h.createWith("x", map[string]string{"rows": fmt.Sprint(rows), "batch_size": "40", "rate": "30000", "tables": "a,b"},
				catalog.ConnectorRef{Connector: "file", Options: map[string]string{"path": dir}},
				map[string]string{"parallelism": "2", "checkpoint.interval": "10ms", "retry.interval": "10ms"})
			j := h.waitState("x", catalog.Finished)
			if j.Restarts != 1 {
				t.Fatalf("restarts %d, want 1 (the failpoint fires once)", j.Restarts)
			}
			checkExactlyOnce(t, committedIDs(t, dir), []string{"a", "b"}, rows)
			if left, _ := filepath.Glob(filepath.Join(dir, "*", "*.pending")); len(left) != 0 {
				t.Fatalf("pending files left after FINISHED: %v", left)
			}
		})
	}
}

func TestCheckpointTimeoutIsRecordedAndKeepsLastGood(t *testing.T) {
	h := newHarness(t, 0)
	h.rec.setSlow(300 * time.Millisecond)
	j := h.createWith("s", map[string]string{"rate": "2000", "batch_size": "10"}, catalog.ConnectorRef{Connector: "record"},
		map[string]string{"checkpoint.interval": "20ms", "checkpoint.timeout": "100ms"})
	deadline := time.Now().Add(10 * time.Second)
	var failed catalog.Checkpoint
	for time.Now().Before(deadline) && failed.ID == 0 {
		for _, c := range h.cat.Checkpoints() {
			if c.JobID == j.ID && c.State == catalog.CheckpointFailed {
				failed = c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if failed.ID == 0 || !strings.Contains(failed.Error, "checkpoint.timeout") {
		t.Fatalf("no timed-out checkpoint recorded: %+v", failed)
	}
	found := false
	for _, e := range h.cat.Events() {
		found = found || (e.Kind == "CHECKPOINT_FAILED" && e.Job == "s")
	}
	if !found {
		t.Fatal("no CHECKPOINT_FAILED event")
	}
	h.rec.setSlow(0)
}

// A sink call that takes longer than task.stall_timeout reports its task
// STALLED (state and event) without stopping it, and RESUMED once the sink
// answers again; the job keeps its attempt throughout.
func TestSlowSinkIsStalledNotDead(t *testing.T) {
	h := newHarness(t, 0)
	h.rec.setSlow(400 * time.Millisecond)
	h.createWith("slow", map[string]string{"rate": "200", "batch_size": "10"}, catalog.ConnectorRef{Connector: "record"},
		map[string]string{"checkpoint.interval": "50ms", "task.stall_timeout": "100ms"})
	running := h.waitState("slow", catalog.Running)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	event := func(kind string) bool {
		for _, e := range h.cat.Events() {
			if e.Job == "slow" && e.Kind == kind {
				return true
			}
		}
		return false
	}
	waitFor("the slow task STALLED in sluice.tasks", func() bool {
		for _, r := range h.eng.Tasks() {
			if r.Job == "slow" && r.State == TaskStalled {
				return true
			}
		}
		return false
	})
	waitFor("a TASK_STALLED event", func() bool { return event("TASK_STALLED") })
	h.rec.setSlow(0)
	waitFor("a TASK_RESUMED event", func() bool { return event("TASK_RESUMED") })
	waitFor("the task RUNNING again", func() bool {
		rows := h.eng.Tasks()
		return len(rows) == 1 && rows[0].State == TaskRunning
	})
	if j, _ := h.cat.Job("slow"); j.Attempt != running.Attempt || j.Restarts != 0 || j.State != catalog.Running {
		t.Fatalf("a stalled task was restarted: %+v", j)
	}
}
