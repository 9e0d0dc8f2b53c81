package raftstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// member is one node of a test cluster over real TCP on loopback.
type member struct {
	id, dir, addr string
	fsm           *counter
	s             *Store
}

func (m *member) open(t *testing.T, bootstrap bool) {
	t.Helper()
	s, err := Open(Config{Dir: m.dir, NodeID: m.id, Addr: m.addr, Bootstrap: bootstrap, Fast: true,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})}, m.fsm)
	if err != nil {
		t.Fatal(err)
	}
	m.s = s
}

func members(t *testing.T, s *Store) string {
	t.Helper()
	svs, err := s.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sv := range svs {
		out = append(out, fmt.Sprintf("%s@%s/%v", sv.ID, sv.Address, sv.Voter))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three nodes over TCP: joins through the leader (a voter and a
// non-voter), a follower refuses to add members, rejoining is a no-op,
// the log reaches every member, a node back at a new address replaces
// itself, a non-voter is promoted, the leader's death elects another that
// accepts writes, and Remove takes a member out.
func TestMembership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = &member{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), addr: freeAddr(t), fsm: &counter{}}
	}
	a, b, c := ms[0], ms[1], ms[2]
	a.open(t, true)
	defer func() {
		for _, m := range ms {
			if m.s != nil {
				m.s.Close()
			}
		}
	}()
	if err := a.s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	b.open(t, false) // a joining node never bootstraps
	c.open(t, false)
	if err := a.s.Join(ctx, b.id, b.addr, true); err != nil {
		t.Fatal(err)
	}
	if err := a.s.Join(ctx, c.id, c.addr, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.s.Apply(ctx, cmd(5)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the log on every member", func() bool {
		for _, m := range ms {
			m.fsm.mu.Lock()
			sum := m.fsm.sum
			m.fsm.mu.Unlock()
			if sum != 5 {
				return false
			}
		}
		return true
	})
	want := fmt.Sprintf("n1@%s/true n2@%s/true n3@%s/false", a.addr, b.addr, c.addr)
	if got := members(t, a.s); got != want {
		t.Fatalf("members %s, want %s", got, want)
	}
	if err := b.s.Join(ctx, "n9", freeAddr(t), true); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("join through a follower: %v, want ErrNotLeader (the caller asks the leader)", err)
	}
	before := a.s.LastIndex()
	if err := a.s.Join(ctx, b.id, b.addr, true); err != nil {
		t.Fatal(err)
	}
	if a.s.LastIndex() != before {
		t.Fatal("rejoining with the same id and address changed the configuration")
	}

	// n3 comes back at a new address, then is promoted to a voter.
	c.s.Close()
	c.addr = freeAddr(t)
	c.open(t, false)
	if err := a.s.Join(ctx, c.id, c.addr, true); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("n1@%s/true n2@%s/true n3@%s/true", a.addr, b.addr, c.addr)
	if got := members(t, a.s); got != want {
		t.Fatalf("after n3 moved: %s, want %s", got, want)
	}

	// The leader dies: one of the others is elected and takes writes.
	a.s.Close()
	a.s = nil
	var leader *member
	eventually(t, "a new leader", func() bool {
		for _, m := range []*member{b, c} {
			if m.s.IsLeader() {
				leader = m
				return true
			}
		}
		return false
	})
	if err := leader.s.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := leader.s.Apply(ctx, cmd(1)); err != nil {
		t.Fatalf("write on the new leader: %v", err)
	}
	if err := leader.s.Remove(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if got := members(t, leader.s); strings.Contains(got, "n1@") {
		t.Fatalf("n1 still a member after Remove: %s", got)
	}
	if err := leader.s.Remove(ctx, "n1"); err != nil {
		t.Fatalf("removing a non-member: %v", err)
	}
}
