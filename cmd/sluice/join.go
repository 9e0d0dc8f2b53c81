package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"sluice/catalog"
	"sluice/raftstore"
)

// joinRequest is what a node sends to join a cluster (POST /v1/cluster/join).
type joinRequest struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr"`
	MySQLAddr string `json:"mysql_addr"`
	Role      string `json:"role"`
	Slots     int    `json:"slots"`
	Tags      string `json:"tags"`
}

// forwardedHeader marks a join request a follower passed to the leader,
// so it is never passed on twice.
const forwardedHeader = "X-Sluice-Forwarded"

// joinHandler serves POST /v1/cluster/join on every node. The leader adds
// the node to the Raft configuration (a voter, or a non-voter for a worker)
// and registers it in the catalog; a follower passes the request to the
// leader, found through the catalog's node records.
func joinHandler(store *raftstore.Store, cat *catalog.Catalog) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a join request", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req joinRequest
		if err := json.Unmarshal(body, &req); err != nil || req.ID == "" || req.RaftAddr == "" {
			http.Error(w, "a join request names the node's id and raft_addr", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if !store.IsLeader() {
			if r.Header.Get(forwardedHeader) != "" {
				http.Error(w, "not the leader (the leader changed while the request was passed on)", http.StatusServiceUnavailable)
				return
			}
			leader, err := leaderHTTP(store, cat)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			status, answer, err := postJoin(ctx, leader, body, true)
			if err != nil {
				http.Error(w, fmt.Sprintf("passing the join to the leader at %s: %v", leader, err), http.StatusBadGateway)
				return
			}
			w.WriteHeader(status)
			_, _ = w.Write(answer)
			return
		}
		if err := store.Join(ctx, req.ID, req.RaftAddr, req.Role != "worker"); err != nil {
			http.Error(w, fmt.Sprintf("add %s at %s: %v", req.ID, req.RaftAddr, err), http.StatusServiceUnavailable)
			return
		}
		if err := cat.RegisterNode(ctx, catalog.Node{ID: req.ID, RaftAddr: req.RaftAddr, MySQLAddr: req.MySQLAddr,
			HTTPAddr: req.HTTPAddr, Role: req.Role, Slots: req.Slots, Tags: req.Tags}); err != nil {
			http.Error(w, fmt.Sprintf("register %s: %v", req.ID, err), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"joined": req.ID, "index": store.AppliedIndex()})
	}
}

// leaderHTTP is the leader's HTTP address, from its node record.
func leaderHTTP(store *raftstore.Store, cat *catalog.Catalog) (string, error) {
	_, id := store.Leader()
	if id == "" {
		return "", errors.New("no leader: the cluster has no quorum right now")
	}
	for _, n := range cat.Nodes() {
		if n.ID == id && n.HTTPAddr != "" {
			return n.HTTPAddr, nil
		}
	}
	return "", fmt.Errorf("the leader %s has no HTTP address in the catalog yet", id)
}

// postJoin sends a join request to a node's HTTP address.
func postJoin(ctx context.Context, addr string, body []byte, forwarded bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/cluster/join", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if forwarded {
		req.Header.Set(forwardedHeader, "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, answer, err
}

// join asks addr (any member) to add this node, retrying until within
// passes. A node that cannot join never forms a cluster of its own: two
// clusters are worse than none.
func join(ctx context.Context, log *slog.Logger, addr string, req joinRequest, within time.Duration) error {
	body, _ := json.Marshal(req)
	deadline := time.Now().Add(within)
	backoff := 200 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		status, answer, err := postJoin(rctx, addr, body, false)
		cancel()
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%d %s", status, bytes.TrimSpace(answer))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("could not join the cluster through %s within %s: %v; "+
				"not starting a cluster of its own (two clusters are worse than none): check --join, or start without it on an empty --data-dir to begin a new cluster", addr, within, err)
		}
		log.Warn("join failed; retrying", "through", addr, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}

// startMembership brings the node into its cluster:
//   - a new node with --join asks to be added, then waits until the
//     catalog has reached it (its own record applied here);
//   - a node alone in its configuration (the first node, or a single-node
//     install restarting) leads at once and registers itself, as always;
//   - a member of a cluster restarting finds it from its own state, and
//     refreshes its record through the leader once there is one.
func startMembership(ctx context.Context, log *slog.Logger, o *options, store *raftstore.Store, cat *catalog.Catalog, self joinRequest) error {
	if store.Fresh() && o.join != "" {
		if err := join(ctx, log, o.join, self, o.joinTimeout); err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for !hasNode(cat, self.ID) {
			if time.Now().After(deadline) {
				return errors.New("joined, but the catalog did not reach this node within 30s")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		log.Info("joined the cluster", "through", o.join)
		return nil
	}
	servers, err := store.Servers()
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if len(servers) <= 1 {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := store.WaitLeader(wctx)
		cancel()
		if err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		if err := cat.RegisterNode(ctx, self.node()); err != nil {
			return fmt.Errorf("register node: %w", err)
		}
		return nil
	}
	go rejoin(ctx, log, store, cat, self)
	return nil
}

func (r joinRequest) node() catalog.Node {
	return catalog.Node{ID: r.ID, RaftAddr: r.RaftAddr, MySQLAddr: r.MySQLAddr, HTTPAddr: r.HTTPAddr, Role: r.Role, Slots: r.Slots, Tags: r.Tags}
}

func hasNode(cat *catalog.Catalog, id string) bool {
	for _, n := range cat.Nodes() {
		if n.ID == id {
			return true
		}
	}
	return false
}

// rejoin refreshes a restarted member's record (its addresses may have
// changed) through the leader: the same idempotent join.
func rejoin(ctx context.Context, log *slog.Logger, store *raftstore.Store, cat *catalog.Catalog, self joinRequest) {
	body, _ := json.Marshal(self)
	for ctx.Err() == nil {
		var err error
		if store.IsLeader() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err = store.Join(rctx, self.ID, self.RaftAddr, self.Role != "worker"); err == nil {
				err = cat.RegisterNode(rctx, self.node())
			}
			cancel()
		} else if addr, lerr := leaderHTTP(store, cat); lerr != nil {
			err = lerr
		} else {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var status int
			var answer []byte
			if status, answer, err = postJoin(rctx, addr, body, false); err == nil && status != http.StatusOK {
				err = fmt.Errorf("%d %s", status, bytes.TrimSpace(answer))
			}
			cancel()
		}
		if err == nil {
			return
		}
		log.Debug("refreshing this node's record", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// watchLeadership keeps ready true exactly while this node leads and has
// applied the log of earlier terms (a barrier at each new term).
func watchLeadership(ctx context.Context, store *raftstore.Store, ready *atomic.Bool) {
	check := func() {
		if !store.IsLeader() {
			ready.Store(false)
			return
		}
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := store.Barrier(bctx)
		cancel()
		ready.Store(err == nil && store.IsLeader())
	}
	check()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-store.LeaderCh():
			check()
		case <-tick.C:
			if store.IsLeader() != ready.Load() {
				check()
			}
		}
	}
}
