// Package testnode starts a complete in-process sluice node for tests: a
// real Raft store over TCP on loopback, the catalog, the executor and the
// MySQL-protocol front on a free port.
package testnode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/exec"
	"sluice/planner"
	"sluice/raftstore"
	"sluice/sqlfront"
)

// Node is a running in-process node.
type Node struct {
	Store   *raftstore.Store
	Catalog *catalog.Catalog
	Engine  *exec.Engine
	Front   *sqlfront.Server
	Dir     string
}

// FreeAddr returns a free loopback TCP address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start runs a node with reg's connectors in dir (a temp dir when ""),
// stopped at test cleanup.
func Start(t testing.TB, reg *connectors.Registry, dir string, slots int) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	fsm := catalog.NewFSM()
	store, err := raftstore.Open(raftstore.Config{Dir: filepath.Join(dir, "raft"), NodeID: "n1", Addr: FreeAddr(t),
		Bootstrap: true, Fast: true, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})}, fsm)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := store.WaitLeader(wctx); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(fsm, store)
	if err := cat.RegisterNode(ctx, catalog.Node{ID: "n1", Role: "hybrid", Slots: slots}); err != nil {
		t.Fatal(err)
	}
	eng := exec.New(exec.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NodeID: "n1", Slots: slots, Registry: reg, JobOptions: planner.JobConfig, IsLeader: store.IsLeader, Resync: 50 * time.Millisecond}, cat)
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front, err := sqlfront.New(sqlfront.Config{Listener: ln, NodeID: "n1", Catalog: cat, Planner: planner.New(reg),
		Registry: reg, Runtime: eng, Cluster: store, UsersFile: filepath.Join(dir, "users.db")})
	if err != nil {
		t.Fatal(err)
	}
	front.Start()
	n := &Node{Store: store, Catalog: cat, Engine: eng, Front: front, Dir: dir}
	t.Cleanup(func() {
		_ = front.Close()
		cancel()
		<-engDone
		_ = store.Close()
	})
	return n
}

// DSN is a go-sql-driver DSN for user root on the node's MySQL port.
func (n *Node) DSN(params string) string {
	return fmt.Sprintf("root:@tcp(%s)/?%s", n.Front.Addr(), params)
}
