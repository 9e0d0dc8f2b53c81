// Package testnode starts a complete in-process sluice node for tests
// through the same assembly as the binary (package node): a real Raft
// store over TCP on loopback, the catalog, the executor, the MySQL front
// and the HTTP endpoints on free ports.
package testnode

import (
	"context"
	"fmt"
	"io"

	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/exec"
	"sluice/node"
	"sluice/raftstore"
	"sluice/sqlfront"
)

// Node is a running in-process node.
type Node struct {
	*node.Node
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

// Listen returns a listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Start runs a node with reg's connectors in dir (a temp dir when ""),
// stopped at test cleanup.
func Start(t testing.TB, reg *connectors.Registry, dir string, slots int) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	mysqlLn, httpLn := Listen(t), Listen(t)
	// The node runs until Close (or the context given to Start ends).
	n, err := node.Start(context.Background(), node.Config{ID: "n1", DataDir: dir,
		MySQLAddr: mysqlLn.Addr().String(), HTTPAddr: httpLn.Addr().String(), RaftAddr: FreeAddr(t),
		MySQLListener: mysqlLn, HTTPListener: httpLn, Slots: slots, Registry: reg,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		RaftLogger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr}),
		FastRaft:   true, Resync: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &Node{Node: n, Store: n.Store, Catalog: n.Catalog, Engine: n.Engine, Front: n.Front, Dir: dir}
}

// DSN is a go-sql-driver DSN for user root on the node's MySQL port.
func (n *Node) DSN(params string) string {
	return fmt.Sprintf("root:@tcp(%s)/?%s", n.Front.Addr(), params)
}
