package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
	"sluice/exec"
	"sluice/exec/coordinator"
	"sluice/planner"
	"sluice/raftstore"
)

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// nopFSM is the baseline state machine: it does nothing with a command.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

func openStore(dir string, fsm raft.FSM) (*raftstore.Store, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s, err := raftstore.Open(raftstore.Config{Dir: dir, NodeID: "bench", Addr: addr, Bootstrap: true,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})}, fsm)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s, s.WaitLeader(ctx)
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// checkpointCommit measures committing a checkpoint of a 4-task pipeline
// through the catalog on a single node (bolt, fsync), against raw raft
// Apply of a command of the same size to a no-op FSM, alternating.
func checkpointCommit(n int) ([]Figure, error) {
	tmp, err := os.MkdirTemp("", "sluice-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	raw, err := openStore(filepath.Join(tmp, "raw"), nopFSM{})
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	fsm := catalog.NewFSM()
	st, err := openStore(filepath.Join(tmp, "cat"), fsm)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cat := catalog.New(fsm, st)
	ctx := context.Background()
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "datagen"}, Sink: catalog.ConnectorRef{Connector: "blackhole"}}
	res, err := cat.CreateJob(ctx, catalog.CreateJob{Name: "j", Spec: spec, Plan: catalog.Plan{Pipelines: []catalog.Pipeline{{ID: 1, Parallelism: 4}}}})
	if err != nil {
		return nil, err
	}
	job := res.Job
	if res, err = cat.SetJobState(ctx, catalog.SetJobState{Name: "j", To: catalog.Running, NewAttempt: true}); err != nil {
		return nil, err
	}
	attempt := res.Job.Attempt
	var tasks []catalog.TaskCheckpoint
	for i := 0; i < 4; i++ {
		tasks = append(tasks, catalog.TaskCheckpoint{Subtask: i, Position: []byte(`{"orders":123456789,"customers":987654321}`)})
	}
	var catLat, rawLat []time.Duration
	for i := 1; i <= n; i++ {
		cp := catalog.Checkpoint{JobID: job.ID, Job: "j", Pipeline: 1, ID: uint64(i), Attempt: attempt, TriggeredAt: time.Now(), Tasks: tasks}
		t0 := time.Now()
		if err := cat.CommitCheckpoint(ctx, catalog.CommitCheckpoint{Checkpoint: cp, Retained: 3}); err != nil {
			return nil, err
		}
		catLat = append(catLat, time.Since(t0))
		payload := make([]byte, 420) // about the encoded size of the command above
		t0 = time.Now()
		if _, _, err := raw.Apply(ctx, payload); err != nil {
			return nil, err
		}
		rawLat = append(rawLat, time.Since(t0))
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	cp50, cp99, rp50, rp99 := percentile(catLat, 0.5), percentile(catLat, 0.99), percentile(rawLat, 0.5), percentile(rawLat, 0.99)
	return []Figure{
		{Name: "raft_apply_p50_ms", Value: ms(rp50), Unit: "ms", Note: "raw raft Apply, no-op FSM, single node, bolt with fsync"},
		{Name: "raft_apply_p99_ms", Value: ms(rp99), Unit: "ms"},
		{Name: "checkpoint_commit_p50_ms", Value: ms(cp50), Unit: "ms", Baseline: "raft_apply_p50_ms", Ratio: ms(cp50) / ms(rp50),
			Note: "catalog.CommitCheckpoint of a 4-task pipeline (one Raft entry)"},
		{Name: "checkpoint_commit_p99_ms", Value: ms(cp99), Unit: "ms", Baseline: "raft_apply_p99_ms", Ratio: ms(cp99) / ms(rp99)},
	}, nil
}

// checkpointCost runs datagen -> blackhole with checkpoints every second
// and with checkpoints effectively off, alternating.
func checkpointCost(rows int64, runs int) ([]Figure, error) {
	var on, off []sample
	for i := 0; i < runs; i++ {
		a, err := engineJob(rows, 2, "1s")
		if err != nil {
			return nil, err
		}
		b, err := engineJob(rows, 2, "24h")
		if err != nil {
			return nil, err
		}
		on, off = append(on, a), append(off, b)
	}
	a, b := median(on), median(off)
	perS := func(s sample) float64 { return float64(rows) / s.wall.Seconds() }
	return []Figure{
		{Name: "no_checkpoint_rows_per_s", Value: perS(b), Unit: "rows/s", Note: "checkpoint.interval 24h: only the final checkpoint"},
		{Name: "checkpoint_1s_rows_per_s", Value: perS(a), Unit: "rows/s", Baseline: "no_checkpoint_rows_per_s", Ratio: perS(a) / perS(b),
			Note: "checkpoint.interval 1s, parallelism 2, in-memory catalog"},
	}, nil
}

// engineJob runs datagen -> blackhole as a job through the real executor
// (reconcile, slots, source and sink stages, checkpoints, metrics) from
// CREATE to FINISHED, and checks every row arrived.
func engineJob(rows int64, parallelism int, interval string) (sample, error) {
	cat := catalog.NewLocal()
	reg := connectors.NewRegistry().MustRegister(datagen.Spec(), blackhole.Spec())
	ctx, cancel := context.WithCancel(context.Background())
	if err := cat.RegisterNode(ctx, catalog.Node{ID: "bench", Role: "hybrid", Incarnation: "bench"}); err != nil {
		cancel()
		return sample{}, err
	}
	eng := exec.New(exec.Config{NodeID: "bench", Incarnation: "bench", Registry: reg, JobOptions: planner.JobConfig,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cat)
	coord := coordinator.New(coordinator.Config{RetryInterval: planner.RetryInterval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cat)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	go coord.Run(ctx)
	defer func() { cancel(); <-done }()
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "datagen", Options: map[string]string{"rows": fmt.Sprint(rows)}},
		Sink: catalog.ConnectorRef{Connector: "blackhole"}, Options: map[string]string{"checkpoint.interval": interval, "parallelism": fmt.Sprint(parallelism)}}
	runtime.GC()
	c0, t0 := cpuTime(), time.Now()
	if _, err := cat.CreateJob(ctx, catalog.CreateJob{Name: "bench", Spec: spec, Plan: planner.Build(spec)}); err != nil {
		return sample{}, err
	}
	for {
		changed := cat.Changed()
		j, _ := cat.Job("bench")
		if j.State == catalog.Finished {
			break
		}
		if j.State == catalog.Failed {
			return sample{}, fmt.Errorf("bench job failed: %s", j.Error)
		}
		<-changed // wait on catalog changes, not a polling loop competing for the cores
	}
	s := sample{wall: time.Since(t0), cpu: cpuTime() - c0}
	var written int64
	for _, m := range eng.Metrics().Rows() {
		written += m.SinkWriteCount
	}
	if written != rows {
		return sample{}, fmt.Errorf("engine wrote %d rows, want %d", written, rows)
	}
	return s, nil
}
