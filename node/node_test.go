package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
	"sluice/node"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func freeAddr(t *testing.T) string {
	l := listen(t)
	defer l.Close()
	return l.Addr().String()
}

// start runs an in-process node joining through join ("" bootstraps).
func start(t *testing.T, id, join string) *node.Node {
	t.Helper()
	m, h := listen(t), listen(t)
	n, err := node.Start(context.Background(), node.Config{ID: id, DataDir: t.TempDir(),
		MySQLAddr: m.Addr().String(), HTTPAddr: h.Addr().String(), RaftAddr: freeAddr(t),
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
