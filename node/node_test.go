package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
	"sluice/internal/testnode"
	"sluice/node"
)

var listen, freeAddr = testnode.Listen, testnode.FreeAddr

// start runs an in-process node joining through join ("" bootstraps).
func start(t *testing.T, id, join string) *node.Node {
	t.Helper()
	return startIn(t, id, join, t.TempDir(), freeAddr(t))
}

// startIn runs a node on a given data dir and Raft address (a restart).
func startIn(t *testing.T, id, join, dir, raftAddr string) *node.Node {
	t.Helper()
	m, h := listen(t), listen(t)
	n, err := node.Start(context.Background(), node.Config{ID: id, DataDir: dir,
		MySQLAddr: m.Addr().String(), HTTPAddr: h.Addr().String(), RaftAddr: raftAddr,
		SnapshotThreshold: 32, TrailingLogs: 8,
		MySQLListener: m, HTTPListener: h, Join: join, JoinTimeout: 10 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: time.Second,
		Registry:   connectors.NewRegistry().MustRegister(datagen.Spec(), blackhole.Spec()),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		RaftLogger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr}), FastRaft: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func cluster3(t *testing.T) []*node.Node {
	a := start(t, "a", "")
	b := start(t, "b", a.HTTPAddr())
	c := start(t, "c", b.HTTPAddr())
	return []*node.Node{a, b, c}
}

// A command forwarded twice from a follower with one request id (a retry
// after an unknown outcome) is applied once, and both answers agree; the
// follower has applied it when Forward's caller returns.
func TestForwardedRetryAppliesOnce(t *testing.T) {
	ns := cluster3(t)
	var f *node.Node
	for _, n := range ns[1:] {
		if !n.Store.IsLeader() {
			f = n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd, err := catalog.Encode(catalog.CmdAppendEvent, catalog.AppendEvent{Meta: catalog.Meta{RequestID: "retry-1"},
		Event: catalog.Event{Time: time.Now(), Kind: "INFO", Message: "exactly one"}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.Peers.Forward(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.Peers.Forward(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if first.Index != second.Index || !second.Applied {
		t.Fatalf("first %v, retry %v", first, second)
	}
	for _, n := range ns {
		if err := n.Catalog.FSM().WaitIndex(ctx, second.Index); err != nil {
			t.Fatal(err)
		}
		count := 0
		for _, e := range n.Catalog.Events() {
			if e.Message == "exactly one" {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("node has the event %d times", count)
		}
	}
}

// A write on a follower through the catalog client is readable there at
// once; a domain error crosses the wire with its sentinel.
func TestFollowerWrites(t *testing.T) {
	ns := cluster3(t)
	for _, n := range ns {
		if n.Store.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		name := "j-" + n.Store.State() + "-" + time.Now().Format("150405.000000")
		if _, err := n.Catalog.CreateJob(ctx, catalog.CreateJob{Name: name, Spec: catalog.JobSpec{
			Source: catalog.ConnectorRef{Connector: "datagen"}, Sink: catalog.ConnectorRef{Connector: "blackhole"}}}); err != nil {
			t.Fatal(err)
		}
		if _, ok := n.Catalog.Job(name); !ok {
			t.Fatal("a follower's own write is not readable on it when the call returns")
		}
		_, err := n.Catalog.DropJob(ctx, catalog.DropJob{Name: "no-such-job"})
		if !errors.Is(err, catalog.ErrJobNotFound) {
			t.Fatalf("a refused forwarded write: %v", err)
		}
		cancel()
	}
}

// A member that was down while the leader compacted its log catches up
// by a snapshot install; then the whole cluster restarts from its own
// snapshots and logs and has everything.
func TestSnapshotInstallAndWholeClusterRestart(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	raft := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	a := startIn(t, "a", "", dirs[0], raft[0])
	b := startIn(t, "b", a.HTTPAddr(), dirs[1], raft[1])
	c := startIn(t, "c", a.HTTPAddr(), dirs[2], raft[2])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	behind := c.Store.AppliedIndex()
	if _, err := a.Catalog.CreateJob(ctx, catalog.CreateJob{Name: "kept", Spec: catalog.JobSpec{
		Source: catalog.ConnectorRef{Connector: "datagen"}, Sink: catalog.ConnectorRef{Connector: "blackhole"}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := a.Catalog.AddEvent(ctx, catalog.Event{Kind: "INFO", Message: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Store.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := a.Store.FirstIndex()
	if err != nil || first <= behind+1 {
		t.Fatalf("the leader's log still starts at %d (c is at %d): no snapshot install would be needed (%v)", first, behind, err)
	}
	c = startIn(t, "c", "", dirs[2], raft[2])
	waitFor(t, "c caught up by a snapshot", func() bool { _, ok := c.Catalog.Job("kept"); return ok && countEvents(c, "e") == 100 })

	for _, n := range []*node.Node{a, b, c} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// All three at once: no node can lead before a quorum is back.
	restarted := make([]*node.Node, 3)
	done := make(chan int, 3)
	for i, id := range []string{"a", "b", "c"} {
		go func(i int, id string) { restarted[i] = startIn(t, id, "", dirs[i], raft[i]); done <- i }(i, id)
	}
	for range restarted {
		<-done
	}
	for _, n := range restarted {
		waitFor(t, "everything back after a whole-cluster restart", func() bool {
			_, ok := n.Catalog.Job("kept")
			return ok && countEvents(n, "e") == 100 && len(n.Catalog.Nodes()) == 3
		})
	}
}

func countEvents(n *node.Node, msg string) int {
	c := 0
	for _, e := range n.Catalog.Events() {
		if e.Message == msg {
			c++
		}
	}
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A restarted member serves its catalog only once it has applied its own
// log again: Raft replays the entries after the last snapshot only when a
// leader says they are committed, and until then the catalog was empty
// (sluice.jobs showed no jobs on a node that just restarted).
func TestRestartedMemberServesOnlyCaughtUp(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	raft := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	a := startIn(t, "a", "", dirs[0], raft[0])
	startIn(t, "b", a.HTTPAddr(), dirs[1], raft[1])
	c := startIn(t, "c", a.HTTPAddr(), dirs[2], raft[2])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Catalog.CreateJob(ctx, catalog.CreateJob{Name: "kept", Spec: catalog.JobSpec{
		Source: catalog.ConnectorRef{Connector: "datagen"}, Sink: catalog.ConnectorRef{Connector: "blackhole"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c has the job", func() bool { _, ok := c.Catalog.Job("kept"); return ok })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = startIn(t, "c", "", dirs[2], raft[2])
	if _, ok := c.Catalog.Job("kept"); !ok || len(c.Catalog.Nodes()) != 3 {
		t.Fatalf("restarted c serves a catalog without what it had (job: %v, %d nodes)", ok, len(c.Catalog.Nodes()))
	}
}
