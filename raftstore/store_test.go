package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// counter is a minimal FSM: it sums uint64 commands.
type counter struct {
	mu  sync.Mutex
	sum uint64
	n   int
}

func (c *counter) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum += binary.BigEndian.Uint64(l.Data)
	c.n++
	return c.sum
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return snap{sum: c.sum, n: c.n}, nil
}

func (c *counter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	c.mu.Lock()
	c.sum, c.n = binary.BigEndian.Uint64(b[:8]), int(binary.BigEndian.Uint64(b[8:]))
	c.mu.Unlock()
	return nil
}

type snap struct {
	sum uint64
	n   int
}

func (s snap) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.sum)
	binary.BigEndian.PutUint64(b[8:], uint64(s.n))
	if _, err := sink.Write(b[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}
func (snap) Release() {}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func open(t *testing.T, dir, addr string, fsm raft.FSM) *Store {
	t.Helper()
	s, err := Open(Config{Dir: dir, NodeID: "n1", Addr: addr, Bootstrap: true, Fast: true,
		SnapshotThreshold: 50, TrailingLogs: 10, SnapshotInterval: 50 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})}, fsm)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func cmd(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func TestApplyRestartCompact(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	fsm := &counter{}
	s := open(t, dir, addr, fsm)
	ctx := context.Background()
	for i := uint64(1); i <= 300; i++ {
		res, _, err := s.Apply(ctx, cmd(i))
		if err != nil {
			t.Fatal(err)
		}
		if res.(uint64) != i*(i+1)/2 {
			t.Fatalf("apply %d returned %v", i, res)
		}
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last := s.LastIndex(); last-first > 100 {
		t.Fatalf("log not compacted: entries %d..%d", first, last)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same dir: state comes back from snapshot + log, the
	// node leads again and accepts writes.
	fsm2 := &counter{}
	s2 := open(t, dir, addr, fsm2)
	defer s2.Close()
	fsm2.mu.Lock()
	sum := fsm2.sum
	fsm2.mu.Unlock()
	if sum != 300*301/2 {
		t.Fatalf("recovered sum %d", sum)
	}
	if _, _, err := s2.Apply(ctx, cmd(1)); err != nil {
		t.Fatal(err)
	}
	srv, err := s2.Servers()
	if err != nil || len(srv) != 1 || srv[0].ID != "n1" || !srv[0].Voter {
		t.Fatalf("servers: %+v %v", srv, err)
	}
}

func TestApplyHonoursContext(t *testing.T) {
	s := open(t, t.TempDir(), freeAddr(t), &counter{})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Apply(ctx, cmd(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Dir: t.TempDir(), NodeID: "n", Addr: "0.0.0.0:0"},
		{Dir: t.TempDir(), NodeID: "", Addr: "127.0.0.1:0"},
	} {
		if s, err := Open(c, &counter{}); err == nil {
			s.Close()
			t.Errorf("%+v accepted", c)
		}
	}
	// The data dir is locked while open.
	dir, addr := t.TempDir(), freeAddr(t)
	s := open(t, dir, addr, &counter{})
	defer s.Close()
	if s2, err := Open(Config{Dir: dir, NodeID: "n1", Addr: freeAddr(t)}, &counter{}); !errors.Is(err, ErrDirInUse) {
		if err == nil {
			s2.Close()
		}
		t.Fatalf("second Open of a data dir in use: %v", err)
	}
}
