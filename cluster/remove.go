package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"sluice/catalog"
	"sluice/raftstore"
)

// ErrRemoveLeader: REMOVE NODE named the node that leads the cluster.
var ErrRemoveLeader = errors.New("node leads the cluster")

// RemoveNode takes a node out of the cluster for good (REMOVE NODE): out
// of the Raft configuration on the leader (passed there from a follower),
// then its catalog record. A node that is in neither is not found.
func (p *Peers) RemoveNode(ctx context.Context, id string) error {
	if _, leader := p.Store.Leader(); leader == id {
		return fmt.Errorf("%w: %s is the leader; stop it (another node takes over) and run REMOVE NODE again on a survivor", ErrRemoveLeader, id)
	}
	member, err := p.removeMember(ctx, id)
	if err != nil {
		return err
	}
	err = p.Catalog.RemoveNode(ctx, id)
	if errors.Is(err, catalog.ErrNodeNotFound) && member {
		return nil // joined Raft, never registered: removed all the same
	}
	return err
}

// removeMember removes id from the Raft configuration through the leader
// and reports whether it was a member.
func (p *Peers) removeMember(ctx context.Context, id string) (bool, error) {
	if p.Store.IsLeader() {
		return p.removeLocal(ctx, id)
	}
	addr, err := p.LeaderHTTP()
	if err != nil {
		return false, fmt.Errorf("%w: %v", raftstore.ErrNotLeader, err)
	}
	body, _ := json.Marshal(map[string]string{"id": id})
	status, answer, err := p.post(ctx, addr, "/v1/cluster/remove", body, remaining(ctx))
	if err != nil {
		return false, fmt.Errorf("asking the leader at %s to remove %s: %w", addr, id, err)
	}
	var ans struct {
		Member bool   `json:"member"`
		Error  string `json:"error"`
	}
	_ = json.Unmarshal(answer, &ans)
	switch status {
	case http.StatusOK:
		return ans.Member, nil
	case http.StatusConflict:
		return false, fmt.Errorf("%w: %s", ErrRemoveLeader, ans.Error)
	}
	return false, fmt.Errorf("the leader at %s could not remove %s: %d %s", addr, id, status, answer)
}

func (p *Peers) removeLocal(ctx context.Context, id string) (bool, error) {
	servers, err := p.Store.Servers()
	if err != nil {
		return false, err
	}
	if _, leader := p.Store.Leader(); leader == id {
		return false, fmt.Errorf("%w: %s is the leader", ErrRemoveLeader, id)
	}
	member := false
	for _, sv := range servers {
		member = member || sv.ID == id
	}
	if member {
		if err := p.Store.Remove(ctx, id); err != nil {
			return false, err
		}
	}
	return member, nil
}

// removeHandler serves POST /v1/cluster/remove on the leader.
func (p *Peers) removeHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<12)).Decode(&req); err != nil || req.ID == "" {
			http.Error(w, "name the node to remove", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), catalog.DefaultWriteTimeout)
		defer cancel()
		member, err := p.removeLocal(ctx, req.ID)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case err == nil:
			_ = json.NewEncoder(w).Encode(map[string]any{"member": member})
		case errors.Is(err, ErrRemoveLeader):
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
		}
	}
}
