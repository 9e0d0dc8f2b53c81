package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"sluice/raftstore"
)

// ReadBarrier makes the next read linearizable (a Raft read index): the
// leader confirms with a quorum that it still leads and names the index it
// has applied — every write acknowledged before this call is at or below
// it — and this node waits until it has applied that index too.
func (p *Peers) ReadBarrier(ctx context.Context) error {
	index, err := p.readIndex(ctx)
	if err != nil {
		return err
	}
	// Raft's applied index, not the catalog's: the leader's may end in
	// entries that are no commands (barriers), which the catalog never sees.
	for p.Store.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("catching up to the leader's index %d (at %d): %w", index, p.Store.AppliedIndex(), ctx.Err())
		case <-p.Catalog.Changed():
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

func (p *Peers) readIndex(ctx context.Context) (uint64, error) {
	if p.Store.IsLeader() {
		if err := p.Store.VerifyLeader(ctx); err != nil {
			return 0, err
		}
		return p.Store.AppliedIndex(), nil
	}
	addr, err := p.LeaderHTTP()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", raftstore.ErrNotLeader, err)
	}
	status, answer, err := p.post(ctx, addr, "/v1/catalog/read-index", nil, remaining(ctx))
	if err != nil {
		return 0, fmt.Errorf("read index from the leader at %s: %w", addr, err)
	}
	var ans struct {
		Index uint64 `json:"index"`
	}
	if status != http.StatusOK || json.Unmarshal(answer, &ans) != nil {
		return 0, fmt.Errorf("%w: read index from the leader at %s: %d %s", raftstore.ErrNotLeader, addr, status, answer)
	}
	return ans.Index, nil
}

// readIndexHandler serves POST /v1/catalog/read-index on the leader.
func (p *Peers) readIndexHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !p.Store.IsLeader() {
			http.Error(w, "not the leader", http.StatusMisdirectedRequest)
			return
		}
		if err := p.Store.VerifyLeader(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]uint64{"index": p.Store.AppliedIndex()})
	}
}
