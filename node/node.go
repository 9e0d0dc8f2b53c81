package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"sluice/catalog"
	"sluice/cluster"
	"sluice/connectors"
	"sluice/exec"
	"sluice/exec/coordinator"
	"sluice/exec/notify"
	"sluice/exec/verify"
	"sluice/planner"
	"sluice/raftstore"
	"sluice/sqlfront"
)

// Config configures a node.
type Config struct {
	ID      string
	DataDir string
	// Listen addresses. MySQLListener and HTTPListener, when set, are used
	// instead of binding MySQLAddr and HTTPAddr (tests on free ports);
	// the addresses are still what the node advertises.
	MySQLAddr, HTTPAddr, RaftAddr string
	MySQLListener, HTTPListener   net.Listener

	Join        string // HTTP address of a member to join ("" for none)
	JoinTimeout time.Duration
	Role        string // hybrid | master | worker
	Slots       int    // 0 = dynamic
	Tags        string

	RootPassword  string
	SecretKeyFile string
	TLS           *TLS // nil: no TLS

	HeartbeatInterval, SessionTimeout time.Duration
	// HistoryRetention: how long job history and events are kept (0: 24h).
	HistoryRetention time.Duration
	// BinlogRiskInterval: how often the leader checks binlog purge
	// forecasts (0: 30s).
	BinlogRiskInterval time.Duration

	Registry   *connectors.Registry
	Logger     *slog.Logger
	RaftLogger hclog.Logger
	FastRaft   bool // short Raft timeouts (tests on loopback)
	// SnapshotThreshold and TrailingLogs override the Raft snapshot policy
	// (0: raftstore's defaults; tests make snapshots happen).
	SnapshotThreshold, TrailingLogs uint64
	Resync                          time.Duration // executor's catalog poll (0: default)
}

// Node is a running node.
type Node struct {
	cfg      Config
	Store    *raftstore.Store
	Catalog  *catalog.Catalog
	Peers    *cluster.Peers
	Liveness *cluster.Liveness
	Engine   *exec.Engine
	// Coordinator places jobs while this node leads.
	Coordinator *coordinator.Coordinator
	Front       *sqlfront.Server
	httpLn      net.Listener
	hs          *http.Server
	cancel      context.CancelFunc
	engDone     chan struct{}
	coordDone   chan struct{}
	notifyDone  chan struct{}
	liveDone    chan struct{}
	started     atomic.Bool
}

// Start opens the node's state, brings it into its cluster and serves
// until parent ends or Close is called.
func Start(parent context.Context, cfg Config) (n *Node, err error) {
	if cfg.Role == "" {
		cfg.Role = "hybrid"
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RaftLogger == nil {
		cfg.RaftLogger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	}
	log := cfg.Logger
	ctx, cancel := context.WithCancel(parent)
	n = &Node{cfg: cfg, cancel: cancel}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	fsm := catalog.NewFSM()
	rc := raftstore.Config{Dir: filepath.Join(cfg.DataDir, "raft"), NodeID: cfg.ID, Addr: cfg.RaftAddr,
		// A new node with --join waits to be added; only a new node
		// without it forms a cluster (of one).
		// A worker never votes, so it never starts a cluster.
		Bootstrap: cfg.Join == "" && cfg.Role != "worker", Fast: cfg.FastRaft, Logger: cfg.RaftLogger,
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs}
	if cfg.TLS != nil {
		rc.ServerTLS, rc.ClientTLS = cfg.TLS.Raft, cfg.TLS.Client
	}
	if n.Store, err = raftstore.Open(rc, fsm); err != nil {
		return n, err
	}
	// What this node had committed before it stopped: its catalog is
	// served once it has applied that again (see catchUp).
	atOpen := n.Store.LastIndex()
	if n.Store.Fresh() && cfg.Join == "" && cfg.Role == "worker" {
		return n, errors.New("--role worker joins a cluster (it never votes, so it cannot start one): give --join HOST:PORT")
	}
	n.Catalog = catalog.New(fsm, n.Store)
	var ctls *tls.Config
	if cfg.TLS != nil {
		ctls = cfg.TLS.Client
	}
	n.Peers = cluster.NewPeers(n.Store, n.Catalog, ctls)
	// A restarting member answers node calls (forwarded writes when it is
	// elected) as soon as it serves HTTP: its key is loaded first. A new
	// node gets its key in Peers.Start (made, or handed over by the join).
	pl := planner.New(cfg.Registry)
	key, err := cluster.LoadKey(cfg.DataDir, cfg.SecretKeyFile)
	if err != nil {
		return n, err
	}
	if key != nil {
		keys, err := catalog.NewKeyring(key)
		if err != nil {
			return n, err
		}
		n.Catalog.SetKeyring(keys, pl.IsSecret)
	}
	n.Catalog.SetForwarder(n.Peers)
	for _, a := range []struct{ what, addr string }{{"MySQL", cfg.MySQLAddr}, {"HTTP", cfg.HTTPAddr}, {"Raft", cfg.RaftAddr}} {
		if cfg.TLS == nil && !IsLoopback(a.addr) {
			log.Warn("listening off loopback without TLS: traffic (and, for HTTP, the cluster key handed to a joining node) crosses the network in clear; set --tls-cert and --tls-key", "listener", a.what, "addr", a.addr)
		}
	}

	// The coordinator acts only while this node leads and has applied the
	// whole log of earlier terms (a barrier at each new term), never on a
	// half-replayed catalog.
	var ready atomic.Bool
	go cluster.WatchLeadership(ctx, n.Store, &ready)

	// The HTTP endpoints serve before membership: a joining node's
	// leader must reach it, and a follower must answer joins.
	reg := cfg.Registry
	incarnation := catalog.NewRequestID() // random: this start of the node
	n.Engine = exec.New(exec.Config{NodeID: cfg.ID, Incarnation: incarnation, Slots: cfg.Slots, Registry: reg, Logger: log,
		JobOptions: planner.JobConfig, Resync: cfg.Resync, Transport: cluster.TaskRPC{Peers: n.Peers},
		Connected: func() bool { return n.Liveness.Connected() },
		IsLeader:  func() bool { return ready.Load() && n.Store.IsLeader() }, RiskInterval: cfg.BinlogRiskInterval,
		BoardFile: filepath.Join(cfg.DataDir, "job_tables.json")}, n.Catalog)
	n.Coordinator = coordinator.New(coordinator.Config{Resync: cfg.Resync, Logger: log, RetryInterval: planner.RetryInterval,
		HistoryRetention: cfg.HistoryRetention,
		Heard:            func(nd catalog.Node) bool { return n.Liveness.Heard(nd) },
		IsLeader:         func() bool { return ready.Load() && n.Store.IsLeader() }}, n.Catalog)
	n.Liveness = &cluster.Liveness{Peers: n.Peers, Self: cfg.ID, Incarnation: incarnation, Work: n.Engine, Interval: cfg.HeartbeatInterval,
		SessionTimeout: cfg.SessionTimeout, Log: log}
	if err := n.serveHTTP(); err != nil {
		return n, err
	}
	self := cluster.JoinRequest{ID: cfg.ID, RaftAddr: cfg.RaftAddr, HTTPAddr: cfg.HTTPAddr, MySQLAddr: cfg.MySQLAddr,
		Role: cfg.Role, Slots: cfg.Slots, Tags: cfg.Tags, Incarnation: incarnation}
	keys, err := n.Peers.Start(ctx, cluster.Membership{Self: self, JoinAddr: cfg.Join, JoinTimeout: cfg.JoinTimeout,
		RootPassword: cfg.RootPassword, DataDir: cfg.DataDir, KeyFile: cfg.SecretKeyFile, Key: key, Secret: pl.IsSecret, Log: log})
	if err != nil {
		return n, err
	}

	n.catchUp(ctx, atOpen)

	n.engDone = make(chan struct{})
	go func() { defer close(n.engDone); _ = n.Engine.Run(ctx) }()
	n.coordDone = make(chan struct{})
	go func() { defer close(n.coordDone); n.Coordinator.Run(ctx) }()
	n.liveDone = make(chan struct{})
	go func() { defer close(n.liveDone); n.Liveness.Run(ctx) }()
	notifier := notify.New(notify.Config{NodeID: cfg.ID, Logger: log, IsLeader: func() bool { return ready.Load() && n.Store.IsLeader() }}, n.Catalog)
	n.notifyDone = make(chan struct{})
	go func() { defer close(n.notifyDone); notifier.Run(ctx) }()

	work := cluster.ClusterWork{Local: n.Engine, L: n.Liveness}
	fc := sqlfront.Config{Addr: cfg.MySQLAddr, Listener: cfg.MySQLListener, NodeID: cfg.ID, RootPassword: cfg.RootPassword,
		UsersFile: filepath.Join(cfg.DataDir, "users.db"), Catalog: n.Catalog, Planner: pl,
		Registry: reg, Runtime: work, Cluster: n.Store, Liveness: work, Members: n.Peers, Reads: n.Peers,
		Verify: verify.New(verify.Config{Registry: reg}, n.Catalog).Run}
	if cfg.TLS != nil {
		fc.TLS = cfg.TLS.MySQL
	}
	if n.Front, err = sqlfront.New(fc); err != nil {
		return n, err
	}
	n.Front.Start()
	n.started.Store(true)
	log.Info("sluice ready", "node", cfg.ID, "mysql", n.Front.Addr().String(), "http", n.httpLn.Addr().String(),
		"raft", cfg.RaftAddr, "data_dir", cfg.DataDir, "tls", cfg.TLS != nil, "key", keys.ID())
	return n, nil
}

func (n *Node) serveHTTP() error {
	ln := n.cfg.HTTPListener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("http: %w", err)
		}
	}
	exp := exposition{node: n.cfg.ID, store: n.Store, cat: n.Catalog, eng: n.Engine,
		work: cluster.ClusterWork{Local: n.Engine, L: n.Liveness}}
	exp.tables = func() []sqlfront.TableStatus {
		if !n.started.Load() { // the front is set before started
			return nil
		}
		return n.Front.TableStatuses()
	}
	mux := httpMux(n.cfg.ID, n.Store, n.Catalog, n.Engine, &n.started, exp)
	cluster.Register(mux, n.Peers, n.Liveness, n.cfg.RootPassword, n.Engine.Deliver)
	api := &sqlAPI{tls: n.cfg.TLS != nil, timeout: time.Minute, nodeID: n.cfg.ID, mysqlAddr: func() string {
		if !n.started.Load() { // the front is set before started
			return n.cfg.MySQLAddr
		}
		return n.MySQLAddr()
	}}
	api.register(mux)
	n.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if n.cfg.TLS != nil {
		n.hs.TLSConfig = n.cfg.TLS.HTTP
		ln = tls.NewListener(ln, n.cfg.TLS.HTTP)
	}
	n.httpLn = ln
	go func() { _ = n.hs.Serve(ln) }()
	return nil
}

// MySQLAddr is the address the MySQL front listens on.
func (n *Node) MySQLAddr() string { return n.Front.Addr().String() }

// HTTPAddr is the address the HTTP endpoints listen on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// Close stops the node: the front first, then the jobs (gracefully), then
// the HTTP endpoints (a graceful stop of a pipeline spread over nodes
// needs the node RPC until its final checkpoint), then the catalog.
func (n *Node) Close() error {
	if n.Front != nil {
		_ = n.Front.Close()
	}
	n.cancel()
	for _, done := range []chan struct{}{n.engDone, n.coordDone, n.liveDone, n.notifyDone} {
		if done != nil {
			<-done // the engine stops every job gracefully when ctx ends
		}
	}
	if n.hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = n.hs.Shutdown(sctx)
		cancel()
	}
	var err error
	if n.Store != nil {
		err = n.Store.Close()
	}
	return errors.Join(err)
}

// catchUp waits until a restarting node has applied its own log again.
// Raft restores the last snapshot at once but applies the entries after it
// only once a leader says they are committed, so until then the catalog is
// older than what this node served before it stopped (empty, without a
// snapshot): the MySQL front must not answer from it. Bounded by
// JoinTimeout, after which the node serves anyway and says so (an operator
// must be able to look at a node whose cluster has no quorum).
func (n *Node) catchUp(ctx context.Context, atOpen uint64) {
	if n.Store.AppliedIndex() >= atOpen {
		return
	}
	n.cfg.Logger.Info("catching up with the cluster before serving", "applied", n.Store.AppliedIndex(), "log", atOpen)
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	for n.Store.AppliedIndex() < atOpen {
		if time.Now().After(deadline) {
			n.cfg.Logger.Warn("serving before this node caught up with its own log (no quorum?): reads may show an older catalog",
				"applied", n.Store.AppliedIndex(), "log", atOpen, "waited", n.cfg.JoinTimeout)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
