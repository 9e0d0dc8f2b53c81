package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
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

// JoinRequest is what a node sends to join a cluster (POST /v1/cluster/join).
type JoinRequest struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr"`
	MySQLAddr string `json:"mysql_addr"`
	Role      string `json:"role"`
	Slots     int    `json:"slots"`
	Tags      string `json:"tags"`
	// Incarnation names this start of the node's process.
	Incarnation string `json:"incarnation,omitempty"`
}

// Node is the catalog record of the joining node.
func (r JoinRequest) Node() catalog.Node {
	return catalog.Node{ID: r.ID, RaftAddr: r.RaftAddr, MySQLAddr: r.MySQLAddr, HTTPAddr: r.HTTPAddr, Role: r.Role, Slots: r.Slots, Tags: r.Tags,
		Incarnation: r.Incarnation}
}

// joinAnswer is the leader's answer: the cluster key travels only here.
type joinAnswer struct {
	Joined string `json:"joined"`
	Index  uint64 `json:"index"`
	Key    string `json:"key"` // base64
}

// forwardedHeader marks a join request a follower passed to the leader,
// so it is never passed on twice.
const forwardedHeader = "X-Sluice-Forwarded"

// joinHandler serves POST /v1/cluster/join on every node. A joining node
// proves it may join with the root password (HTTP basic auth, user root)
// that every node of the cluster is started with; a member refreshing its
// record may use its node token instead. The leader adds the node to the
// Raft configuration (a voter, or a non-voter for a worker), registers it
// in the catalog and answers the cluster key; a follower passes the
// request to the leader.
func (p *Peers) joinHandler(rootPassword string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a join request", http.StatusMethodNotAllowed)
			return
		}
		_, pw, _ := r.BasicAuth()
		if !authorized(p.Catalog, r) && subtle.ConstantTimeCompare([]byte(pw), []byte(rootPassword)) != 1 {
			http.Error(w, "joining needs the cluster's root password (start the node with the same --root-password as the others)", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req JoinRequest
		if err := json.Unmarshal(body, &req); err != nil || req.ID == "" || req.RaftAddr == "" {
			http.Error(w, "a join request names the node's id and raft_addr", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if !p.Store.IsLeader() {
			if r.Header.Get(forwardedHeader) != "" {
				http.Error(w, "not the leader (the leader changed while the request was passed on)", http.StatusServiceUnavailable)
				return
			}
			leader, err := p.LeaderHTTP()
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			status, answer, err := p.post(ctx, leader, "/v1/cluster/join", body, map[string]string{forwardedHeader: "1"})
			if err != nil {
				http.Error(w, fmt.Sprintf("passing the join to the leader at %s: %v", leader, err), http.StatusBadGateway)
				return
			}
			w.WriteHeader(status)
			_, _ = w.Write(answer)
			return
		}
		if err := p.Store.Join(ctx, req.ID, req.RaftAddr, req.Role != "worker"); err != nil {
			http.Error(w, fmt.Sprintf("add %s at %s: %v", req.ID, req.RaftAddr, err), http.StatusServiceUnavailable)
			return
		}
		if err := p.Catalog.RegisterNode(ctx, req.Node()); err != nil {
			http.Error(w, fmt.Sprintf("register %s: %v", req.ID, err), http.StatusServiceUnavailable)
			return
		}
		ans := joinAnswer{Joined: req.ID, Index: p.Store.AppliedIndex()}
		if k := p.Catalog.Keyring(); k != nil {
			ans.Key = base64.StdEncoding.EncodeToString(k.Key())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	}
}

// Join asks addr (any member) to add this node, retrying until within
// passes, and returns the cluster key from the answer. A node that cannot
// join never forms a cluster of its own: two clusters are worse than none.
func (p *Peers) Join(ctx context.Context, log *slog.Logger, addr, rootPassword string, req JoinRequest, within time.Duration) ([]byte, error) {
	body, _ := json.Marshal(req)
	deadline := time.Now().Add(within)
	backoff := 200 * time.Millisecond
	auth := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("root:"+rootPassword))}
	for {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		status, answer, err := p.post(rctx, addr, "/v1/cluster/join", body, auth)
		cancel()
		if err == nil && status == http.StatusOK {
			var ans joinAnswer
			if err := json.Unmarshal(answer, &ans); err != nil {
				return nil, fmt.Errorf("join through %s: unreadable answer %q", addr, answer)
			}
			key, err := base64.StdEncoding.DecodeString(ans.Key)
			if err != nil || len(key) != catalog.KeySize {
				return nil, fmt.Errorf("join through %s: the answer carries no cluster key", addr)
			}
			return key, nil
		}
		if err == nil {
			err = fmt.Errorf("%d %s", status, bytes.TrimSpace(answer))
			if status == http.StatusUnauthorized {
				return nil, fmt.Errorf("could not join the cluster through %s: %v", addr, err)
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("could not join the cluster through %s within %s: %v; "+
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

// Membership says how a node comes into its cluster.
type Membership struct {
	Self         JoinRequest
	JoinAddr     string // --join ("" for none)
	JoinTimeout  time.Duration
	RootPassword string
	DataDir      string
	KeyFile      string // --secret-key-file ("" for the data dir's)
	Key          []byte // the key LoadKey found there (nil: none yet)
	// Secret says which connector options the catalog seals.
	Secret func(connector, option string) bool
	Log    *slog.Logger
}

// Start brings the node into its cluster and returns its cluster key:
//   - a new node with --join asks to be added, receives the key, then waits
//     until the catalog has reached it (its own record applied here);
//   - a node alone in its configuration (the first node, or a single-node
//     install restarting) leads at once, makes the cluster key if there is
//     none yet, and registers itself, as always;
//   - a member of a cluster restarting finds it from its own state, and
//     refreshes its record through the leader once there is one.
func (p *Peers) Start(ctx context.Context, m Membership) (*catalog.Keyring, error) {
	key := m.Key
	if p.Store.Fresh() && m.JoinAddr != "" {
		got, err := p.Join(ctx, m.Log, m.JoinAddr, m.RootPassword, m.Self, m.JoinTimeout)
		if err != nil {
			return nil, err
		}
		if key != nil && !bytes.Equal(key, got) {
			return nil, errors.New("the cluster's key differs from --secret-key-file: give every node the same key file, or none")
		}
		keys, err := p.useKey(m, got, key == nil)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(30 * time.Second)
		for !hasNode(p.Catalog, m.Self.ID) {
			if time.Now().After(deadline) {
				return nil, errors.New("joined, but the catalog did not reach this node within 30s")
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		m.Log.Info("joined the cluster", "through", m.JoinAddr, "key", keys.ID())
		return keys, nil
	}
	servers, err := p.Store.Servers()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if len(servers) <= 1 {
		fresh := key == nil
		if fresh {
			if key, err = catalog.GenerateKey(); err != nil {
				return nil, err
			}
		}
		keys, err := p.useKey(m, key, fresh)
		if err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = p.Store.WaitLeader(wctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		if err := p.Catalog.RegisterNode(ctx, m.Self.Node()); err != nil {
			return nil, fmt.Errorf("register node: %w", err)
		}
		return keys, nil
	}
	if key == nil {
		return nil, fmt.Errorf("this node is a member of a cluster, but %s has no %s (and no --secret-key-file was given): copy the key from another member", m.DataDir, KeyFile)
	}
	keys, err := p.useKey(m, key, false)
	if err != nil {
		return nil, err
	}
	go p.rejoin(ctx, m.Log, m.Self)
	return keys, nil
}

// useKey installs the key in the catalog client (saving it first when new).
func (p *Peers) useKey(m Membership, key []byte, save bool) (*catalog.Keyring, error) {
	if save && m.KeyFile == "" {
		if err := SaveKey(m.DataDir, key); err != nil {
			return nil, err
		}
	}
	keys, err := catalog.NewKeyring(key)
	if err != nil {
		return nil, err
	}
	p.Catalog.SetKeyring(keys, m.Secret)
	return keys, nil
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
func (p *Peers) rejoin(ctx context.Context, log *slog.Logger, self JoinRequest) {
	body, _ := json.Marshal(self)
	for ctx.Err() == nil {
		var err error
		if p.Store.IsLeader() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err = p.Store.Join(rctx, self.ID, self.RaftAddr, self.Role != "worker"); err == nil {
				err = p.Catalog.RegisterNode(rctx, self.Node())
			}
			cancel()
		} else if addr, lerr := p.LeaderHTTP(); lerr != nil {
			err = lerr
		} else {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var status int
			var answer []byte
			if status, answer, err = p.post(rctx, addr, "/v1/cluster/join", body, nil); err == nil && status != http.StatusOK {
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

// WatchLeadership keeps ready true exactly while this node leads and has
// applied the log of earlier terms (a barrier at each new term).
func WatchLeadership(ctx context.Context, store *raftstore.Store, ready *atomic.Bool) {
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
