package raftstore

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Join adds a member to the cluster: a voter, or a non-voter (a worker,
// which receives the log but never votes). The leader only; a follower
// gets ErrNotLeader and the caller asks the leader.
//
// Joining is idempotent: the same id at the same address with the same
// suffrage changes nothing; the same id at a new address replaces the
// member (a node moved); a voter asked to join as a non-voter is demoted,
// a non-voter asked to join as a voter promoted. Another member holding
// the address is removed first (a node that came back under a new id).
func (s *Store) Join(ctx context.Context, id, addr string, voter bool) error {
	d, servers, err := s.leaderConfiguration(ctx)
	if err != nil {
		return err
	}
	for _, sv := range servers {
		sameID, sameAddr := sv.ID == raft.ServerID(id), sv.Address == raft.ServerAddress(addr)
		switch {
		case sameID && sameAddr && (sv.Suffrage == raft.Voter) == voter:
			return nil
		case sameID && sameAddr && !voter:
			return translate(s.raft.DemoteVoter(sv.ID, 0, d).Error())
		case sameID && sameAddr:
			// AddVoter promotes a non-voter (below).
		case sameID || sameAddr:
			if err := s.raft.RemoveServer(sv.ID, 0, d).Error(); err != nil {
				return fmt.Errorf("replace member %s at %s: %w", sv.ID, sv.Address, translate(err))
			}
		}
	}
	if voter {
		return translate(s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, d).Error())
	}
	return translate(s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, d).Error())
}

// Remove removes a member for good (REMOVE NODE). The leader only;
// removing an id that is not a member is a no-op.
func (s *Store) Remove(ctx context.Context, id string) error {
	d, servers, err := s.leaderConfiguration(ctx)
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if sv.ID == raft.ServerID(id) {
			return translate(s.raft.RemoveServer(sv.ID, 0, d).Error())
		}
	}
	return nil
}

// leaderConfiguration is the start of every membership change: the
// context's timeout, refusal on a follower, and the current members.
func (s *Store) leaderConfiguration(ctx context.Context) (time.Duration, []raft.Server, error) {
	d, err := timeout(ctx)
	if err != nil {
		return 0, nil, err
	}
	if s.raft.State() != raft.Leader {
		return 0, nil, ErrNotLeader
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, nil, translate(err)
	}
	return d, f.Configuration().Servers, nil
}
