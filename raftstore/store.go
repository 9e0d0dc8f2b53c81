package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Sentinel errors.
var (
	ErrNotLeader = errors.New("not the raft leader")
	// ErrLeadershipLost: the command was sent but leadership was lost
	// before it committed, so its outcome is unknown (unlike ErrNotLeader,
	// which refused it): a retry must be idempotent.
	ErrLeadershipLost = errors.New("raft leadership lost; the outcome is unknown")
	ErrClosed         = errors.New("raft store closed")
	ErrTimeout        = errors.New("raft operation timed out")
	ErrDirInUse       = errors.New("data directory locked")
)

// Config configures a Store.
type Config struct {
	Dir    string // data directory; raft.db and snapshots/ live here
	NodeID string // stable forever for this data directory
	Addr   string // host:port to bind the Raft transport; must be advertisable
	// Bootstrap makes a node with no existing state form a single-node cluster.
	Bootstrap bool
	// Snapshot policy: a snapshot is taken when SnapshotThreshold entries
	// have been applied since the last one (checked every SnapshotInterval);
	// TrailingLogs entries are kept after it for followers that lag.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// TLS, when set, makes the Raft transport TLS: ServerTLS for the
	// listener (with ClientCAs and RequireAndVerifyClientCert for mutual
	// TLS), ClientTLS for dialling the other nodes.
	ServerTLS, ClientTLS *tls.Config
	// Fast shortens election and heartbeat timeouts (tests on loopback).
	Fast   bool
	Logger hclog.Logger
}

func (c *Config) defaults() {
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 1024
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 30 * time.Second
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 1024
	}
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	}
}

// Store is one Raft node.
type Store struct {
	cfg   Config
	fresh bool // the directory had no Raft state when opened
	raft  *raft.Raft
	bolt  *raftboltdb.BoltStore
	trans *raft.NetworkTransport
}

// Open starts the node. On first start with Bootstrap it forms a
// single-node cluster; on restart it recovers from the snapshot and log.
func Open(cfg Config, fsm raft.FSM) (*Store, error) {
	cfg.defaults()
	if cfg.NodeID == "" || cfg.Addr == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("raftstore: Dir, NodeID and Addr are required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("raftstore: data dir: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = cfg.Logger
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	if cfg.Fast {
		rc.HeartbeatTimeout = 100 * time.Millisecond
		rc.ElectionTimeout = 100 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	} else {
		// Loopback and LAN defaults: faster than raft's WAN-minded 1 s so that
		// a single node is writable quickly after a restart.
		rc.HeartbeatTimeout = 500 * time.Millisecond
		rc.ElectionTimeout = 500 * time.Millisecond
		rc.LeaderLeaseTimeout = 250 * time.Millisecond
		rc.CommitTimeout = 10 * time.Millisecond
	}

	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second, FreelistType: bbolt.FreelistMapType}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("raftstore: %s is in use by another process: %w", cfg.Dir, ErrDirInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: open log store: %w", err)
	}
	s := &Store{cfg: cfg, bolt: bolt}
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()
	logs, err := raft.NewLogCache(512, bolt)
	if err != nil {
		return nil, fmt.Errorf("raftstore: log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("raftstore: snapshot store: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("raftstore: raft address %q: %w", cfg.Addr, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return nil, fmt.Errorf("raftstore: raft address %q must name a concrete host other nodes can reach", cfg.Addr)
	}
	if cfg.ServerTLS != nil {
		var stream *tlsStream
		if stream, err = newTLSStream(cfg.Addr, adv, cfg.ServerTLS, cfg.ClientTLS); err == nil {
			s.trans = raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, cfg.Logger)
		}
	} else {
		s.trans, err = raft.NewTCPTransportWithLogger(cfg.Addr, adv, 3, 10*time.Second, cfg.Logger)
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: listen on %s: %w", cfg.Addr, err)
	}
	exists, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("raftstore: inspect state: %w", err)
	}
	s.fresh = !exists
	s.raft, err = raft.NewRaft(rc, fsm, logs, bolt, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("raftstore: start raft: %w", err)
	}
	if !exists && cfg.Bootstrap {
		f := s.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
			{ID: rc.LocalID, Address: s.trans.LocalAddr()},
		}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = s.raft.Shutdown().Error()
			return nil, fmt.Errorf("raftstore: bootstrap: %w", err)
		}
	}
	ok = true
	return s, nil
}

func (s *Store) closeResources() {
	if s.trans != nil {
		_ = s.trans.Close()
	}
	if s.bolt != nil {
		_ = s.bolt.Close()
	}
}

// Close shuts the node down and releases the data directory.
func (s *Store) Close() error {
	err := s.raft.Shutdown().Error()
	s.closeResources()
	return err
}

// timeout turns a context into a Raft timeout (0 = no deadline).
func timeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, context.DeadlineExceeded
	}
	return d, nil
}

// Apply replicates cmd and returns what the FSM's Apply returned for it
// and the entry's index. A follower answers ErrNotLeader at once.
func (s *Store) Apply(ctx context.Context, cmd []byte) (any, uint64, error) {
	d, err := timeout(ctx)
	if err != nil {
		return nil, 0, err
	}
	f := s.raft.Apply(cmd, d)
	if err := f.Error(); err != nil {
		return nil, 0, translate(err)
	}
	return f.Response(), f.Index(), nil
}

func translate(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %v", ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	}
	return err
}

// WaitLeader blocks until this node is the leader and has applied every
// entry of earlier terms (a barrier), or the context ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.raft.State() != raft.Leader {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for leadership: %w", ctx.Err())
		case <-t.C:
		}
	}
	return s.Barrier(ctx)
}

// VerifyLeader confirms with a quorum that this node still leads (a
// read-index check: a leader cut off from its quorum fails it).
func (s *Store) VerifyLeader(ctx context.Context) error {
	if _, err := timeout(ctx); err != nil {
		return err
	}
	f := s.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return translate(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: confirming leadership: %v", ErrTimeout, ctx.Err())
	}
}

// Nudge makes the leader replicate at once, carrying its commit index to
// the followers now rather than at the next idle tick (CommitTimeout, up
// to twice 10 ms later): it appends a barrier entry and does not wait for
// it. A follower waiting to apply an entry it forwarded sees it committed
// one round trip later.
func (s *Store) Nudge() { _ = s.raft.Barrier(0) }

// Barrier blocks until every entry committed before it is applied to the FSM.
func (s *Store) Barrier(ctx context.Context) error {
	d, err := timeout(ctx)
	if err != nil {
		return err
	}
	return translate(s.raft.Barrier(d).Error())
}

// Fresh reports whether the directory had no Raft state when the store
// was opened (a new node: bootstrapped if asked, else waiting to be added).
func (s *Store) Fresh() bool { return s.fresh }

// LeaderCh delivers true when this node becomes the leader and false when
// it stops being it (the latest value wins if not read at once).
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// IsLeader reports whether this node is the leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// State is the node's Raft state: Leader, Follower, Candidate, Shutdown.
func (s *Store) State() string { return s.raft.State().String() }

// Leader returns the leader's Raft address and id ("" when unknown).
func (s *Store) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// Server is one member of the Raft configuration.
type Server struct {
	ID, Address string
	Voter       bool
}

// Servers lists the cluster configuration.
func (s *Store) Servers() ([]Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	var out []Server
	for _, sv := range f.Configuration().Servers {
		out = append(out, Server{ID: string(sv.ID), Address: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
	}
	return out, nil
}

// AppliedIndex is the index of the last entry applied to the FSM.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// Snapshot forces a snapshot now (tests and admin).
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// LastIndex is the index of the last entry in the log.
func (s *Store) LastIndex() uint64 { return s.raft.LastIndex() }

// FirstIndex is the index of the first entry still in the log store (it
// grows when snapshots compact the log).
func (s *Store) FirstIndex() (uint64, error) { return s.bolt.FirstIndex() }

// Store closes like any io.Closer.
var _ io.Closer = (*Store)(nil)
