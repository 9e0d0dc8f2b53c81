package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
	"sluice/node"
	"sluice/raftstore"
)

// clusterCommit measures catalog commit latency on three nodes over TCP
// (production Raft timeouts, bolt with fsync): a checkpoint commit issued on
// the leader and one issued on a follower (forwarded, answered once the
// follower applied it), against a raw Raft apply of a command of the same
// size on another three-node Raft cluster with a no-op FSM, alternating.
func clusterCommit(n int) ([]Figure, error) {
	tmp, err := os.MkdirTemp("", "sluice-bench-cluster")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	raw, err := rawCluster(filepath.Join(tmp, "raw"))
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range raw {
			_ = s.Close()
		}
	}()
	nodes, err := benchCluster(filepath.Join(tmp, "cat"))
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	var leader, follower *node.Node
	for _, nd := range nodes {
		if nd.Store.IsLeader() {
			leader = nd
		} else {
			follower = nd
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("no leader")
	}
	ctx := context.Background()
	cat := leader.Catalog
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "datagen"}, Sink: catalog.ConnectorRef{Connector: "blackhole"}}
	res, err := cat.CreateJob(ctx, catalog.CreateJob{Name: "j", Spec: spec, Plan: catalog.Plan{Pipelines: []catalog.Pipeline{{ID: 1, Parallelism: 4}}}})
	if err != nil {
		return nil, err
	}
	// Paused: the engine leaves the job alone while its checkpoints are
	// written by hand.
	if res, err = cat.SetJobState(ctx, catalog.SetJobState{Name: "j", To: catalog.Paused, NewAttempt: true}); err != nil {
		return nil, err
	}
	job := res.Job
	var tasks []catalog.TaskCheckpoint
	for i := 0; i < 4; i++ {
		tasks = append(tasks, catalog.TaskCheckpoint{Subtask: i, Position: []byte(`{"orders":123456789,"customers":987654321}`)})
	}
	var rawLeader *raftstore.Store
	for _, s := range raw {
		if s.IsLeader() {
			rawLeader = s
		}
	}
	var leadLat, fwdLat, rawLat []time.Duration
	for i := 1; i <= n; i++ {
		cp := catalog.Checkpoint{JobID: job.ID, Job: "j", Pipeline: 1, ID: uint64(2*i - 1), Attempt: job.Attempt, TriggeredAt: time.Now(), Tasks: tasks}
		t0 := time.Now()
		if err := cat.CommitCheckpoint(ctx, catalog.CommitCheckpoint{Checkpoint: cp, Retained: 3}); err != nil {
			return nil, err
		}
		leadLat = append(leadLat, time.Since(t0))
		cp.ID++
		t0 = time.Now()
		if err := follower.Catalog.CommitCheckpoint(ctx, catalog.CommitCheckpoint{Checkpoint: cp, Retained: 3}); err != nil {
			return nil, err
		}
		fwdLat = append(fwdLat, time.Since(t0))
		payload := make([]byte, 480) // about the encoded size of the command above
		t0 = time.Now()
		if _, _, err := rawLeader.Apply(ctx, payload); err != nil {
			return nil, err
		}
		rawLat = append(rawLat, time.Since(t0))
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	l50, l99 := percentile(leadLat, 0.5), percentile(leadLat, 0.99)
	f50, f99 := percentile(fwdLat, 0.5), percentile(fwdLat, 0.99)
	r50, r99 := percentile(rawLat, 0.5), percentile(rawLat, 0.99)
	return []Figure{
		{Name: "raft3_apply_p50_ms", Value: ms(r50), Unit: "ms", Note: "raw raft Apply on 3 nodes over loopback TCP, no-op FSM, bolt with fsync"},
		{Name: "raft3_apply_p99_ms", Value: ms(r99), Unit: "ms"},
		{Name: "catalog3_commit_p50_ms", Value: ms(l50), Unit: "ms", Baseline: "raft3_apply_p50_ms", Ratio: ms(l50) / ms(r50),
			Note: "catalog.CommitCheckpoint of a 4-task pipeline on the leader of 3 nodes"},
		{Name: "catalog3_commit_p99_ms", Value: ms(l99), Unit: "ms", Baseline: "raft3_apply_p99_ms", Ratio: ms(l99) / ms(r99), Floor: 15, Goal: 8, Max: true,
			Note: "floor and goal are upper bounds in ms"},
		{Name: "catalog3_forwarded_p50_ms", Value: ms(f50), Unit: "ms", Baseline: "raft3_apply_p50_ms", Ratio: ms(f50) / ms(r50),
			Note: "the same commit issued on a follower: forwarded over HTTP, answered once the follower applied it"},
		{Name: "catalog3_forwarded_p99_ms", Value: ms(f99), Unit: "ms", Baseline: "raft3_apply_p99_ms", Ratio: ms(f99) / ms(r99)},
	}, nil
}

// rawCluster is three raftstore nodes with a no-op FSM.
func rawCluster(dir string) ([]*raftstore.Store, error) {
	var out []*raftstore.Store
	for i := 0; i < 3; i++ {
		addr, err := freeAddr()
		if err != nil {
			return out, err
		}
		s, err := raftstore.Open(raftstore.Config{Dir: filepath.Join(dir, fmt.Sprint(i)), NodeID: fmt.Sprintf("r%d", i), Addr: addr,
			Bootstrap: i == 0, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})}, nopFSM{})
		if err != nil {
			return out, err
		}
		out = append(out, s)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if i == 0 {
			err = s.WaitLeader(ctx)
		} else {
			err = out[0].Join(ctx, fmt.Sprintf("r%d", i), addr, true)
		}
		cancel()
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// benchCluster is three in-process nodes through the real assembly.
func benchCluster(dir string) ([]*node.Node, error) {
	var out []*node.Node
	reg := connectors.NewRegistry().MustRegister(datagen.Spec(), blackhole.Spec())
	for i := 0; i < 3; i++ {
		addrs := make([]string, 3)
		for k := range addrs {
			a, err := freeAddr()
			if err != nil {
				return out, err
			}
			addrs[k] = a
		}
		join := ""
		if i > 0 {
			join = out[0].HTTPAddr()
		}
		n, err := node.Start(context.Background(), node.Config{ID: fmt.Sprintf("n%d", i), DataDir: filepath.Join(dir, fmt.Sprint(i)),
			MySQLAddr: addrs[0], HTTPAddr: addrs[1], RaftAddr: addrs[2], Join: join, Registry: reg,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			RaftLogger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})})
		if err != nil {
			return out, err
		}
		out = append(out, n)
	}
	return out, nil
}

// failover measures, over runs fresh three-process clusters of the real
// binary, the time from kill -9 of the leader to the first write accepted
// on a survivor (a statement sent at once: the catalog client retries
// until a new leader takes it), and how long the checkpoints of a job
// running on a survivor pause across it (the new leader adopts the job).
func failover(bin string, runs int) ([]Figure, error) {
	var took, gaps []time.Duration
	for r := 0; r < runs; r++ {
		d, gap, err := failoverOnce(bin, r)
		if err != nil {
			return nil, fmt.Errorf("failover run %d: %w", r, err)
		}
		took, gaps = append(took, d), append(gaps, gap)
	}
	sort.Slice(took, func(i, k int) bool { return took[i] < took[k] })
	sort.Slice(gaps, func(i, k int) bool { return gaps[i] < gaps[k] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return []Figure{
		{Name: "failover_p50_ms", Value: ms(took[len(took)/2]), Unit: "ms", Floor: 3000, Goal: 2000, Max: true,
			Note: fmt.Sprintf("kill -9 of the leader of 3 sluice processes → first write accepted on a survivor, %d runs; floor and goal are upper bounds in ms", runs)},
		{Name: "failover_max_ms", Value: ms(took[len(took)-1]), Unit: "ms", Floor: 3000, Goal: 2000, Max: true},
		{Name: "checkpoint_pause_p50_ms", Value: ms(gaps[len(gaps)/2]), Unit: "ms",
			Note: "longest gap between completed checkpoints (100 ms interval) of a job on a surviving node across the leader's kill -9; the job keeps its attempt (adopted)"},
		{Name: "checkpoint_pause_max_ms", Value: ms(gaps[len(gaps)-1]), Unit: "ms"},
	}, nil
}

type proc struct {
	cmd                   *exec.Cmd
	mysql, http, raftAddr string
}

func failoverOnce(bin string, run int) (time.Duration, time.Duration, error) {
	tmp, err := os.MkdirTemp("", "sluice-failover")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(tmp)
	var ps []*proc
	defer func() {
		for _, p := range ps {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
		}
	}()
	for i := 0; i < 3; i++ {
		p := &proc{}
		for _, a := range []*string{&p.mysql, &p.http, &p.raftAddr} {
			if *a, err = freeAddr(); err != nil {
				return 0, 0, err
			}
		}
		args := []string{"server", "--data-dir", filepath.Join(tmp, fmt.Sprint(i)), "--mysql-addr", p.mysql, "--http-addr", p.http,
			"--raft-addr", p.raftAddr, "--log-level", "error", "--tags", fmt.Sprintf("n=%d", i),
			"--heartbeat-interval", "200ms", "--node-session-timeout", "2s"}
		if i > 0 {
			args = append(args, "--join", ps[0].http)
		}
		p.cmd = exec.Command(bin, args...)
		if err := p.cmd.Start(); err != nil {
			return 0, 0, err
		}
		ps = append(ps, p)
		if err := waitHealthy(p.http); err != nil {
			return 0, 0, err
		}
	}
	leaderID, err := healthz(ps[0].http)
	if err != nil {
		return 0, 0, err
	}
	var dead *proc
	var alive []*proc
	for _, p := range ps {
		if id, _ := nodeIDAt(p.http); id == leaderID {
			dead = p
		} else {
			alive = append(alive, p)
		}
	}
	if dead == nil {
		return 0, 0, fmt.Errorf("leader %q not found", leaderID)
	}
	db, err := sql.Open("mysql", "root:@tcp("+alive[0].mysql+")/")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	// A job pinned (by tags) on a survivor checkpoints every 100 ms: the
	// new leader must adopt it, and its checkpoints pause only while no
	// leader takes their commits.
	survivor := -1
	for i, p := range ps {
		if p == alive[1] {
			survivor = i
		}
	}
	if _, err := db.Exec(fmt.Sprintf(`CREATE SYNC JOB c FROM datagen ('rate'='100') TO blackhole ()
		WITH ('checkpoint.interval'='100ms', 'checkpoint.retained'='100', 'tags'='n=%d')`, survivor)); err != nil {
		return 0, 0, err
	}
	completed := func() (int, error) {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM sluice.checkpoints WHERE job = 'c' AND state = 'COMPLETED'").Scan(&n)
		return n, err
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err := completed(); err == nil && n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("job c made no checkpoints")
		}
	}
	t0 := time.Now()
	if err := dead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return 0, 0, err
	}
	var took time.Duration
	for {
		_, err = db.Exec(fmt.Sprintf("CREATE SYNC JOB f%d FROM datagen ('rows'='1') TO blackhole ()", run))
		if err == nil {
			took = time.Since(t0)
			break
		}
		if time.Since(t0) > 30*time.Second {
			return 0, 0, fmt.Errorf("no write accepted 30 s after kill -9: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // checkpoints resume after the first write at the latest
	var attempt int
	if err := db.QueryRow("SELECT attempt FROM sluice.jobs WHERE name = 'c'").Scan(&attempt); err != nil {
		return 0, 0, err
	}
	rows, err := db.Query("SELECT completed_at FROM sluice.checkpoints WHERE job = 'c' AND state = 'COMPLETED' ORDER BY checkpoint_id")
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var prev time.Time
	var gap time.Duration
	for rows.Next() {
		var at string
		if err := rows.Scan(&at); err != nil {
			return 0, 0, err
		}
		ts, err := time.Parse("2006-01-02 15:04:05.999999", at)
		if err != nil {
			return 0, 0, err
		}
		if !prev.IsZero() && ts.Sub(prev) > gap {
			gap = ts.Sub(prev)
		}
		prev = ts
	}
	if attempt != 1 {
		return 0, 0, fmt.Errorf("the job on a healthy node was restarted by the new leader (attempt %d)", attempt)
	}
	return took, gap, nil
}

func waitHealthy(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("node at %s did not become healthy", addr)
}

func healthzField(addr, field string) (string, error) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return "", err
	}
	return strings.TrimSpace(fmt.Sprint(h[field])), nil
}

func healthz(addr string) (string, error)  { return healthzField(addr, "leader") }
func nodeIDAt(addr string) (string, error) { return healthzField(addr, "node") }
