package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"sluice/catalog"
	"sluice/raftstore"
)

// tokenHeader carries the node token (catalog.Keyring.Token) on calls one
// node makes to another.
const tokenHeader = "X-Sluice-Node-Token"

// Peers is how a node calls the other members over HTTP(S).
type Peers struct {
	Store   *raftstore.Store
	Catalog *catalog.Catalog
	// TLS, when set, makes every call HTTPS with this client configuration.
	TLS    *tls.Config
	client *http.Client
}

// NewPeers returns the node's HTTP client side.
func NewPeers(store *raftstore.Store, cat *catalog.Catalog, tlsc *tls.Config) *Peers {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsc
	tr.MaxIdleConnsPerHost = 8
	return &Peers{Store: store, Catalog: cat, TLS: tlsc, client: &http.Client{Transport: tr}}
}

func (p *Peers) url(addr, path string) string {
	if p.TLS != nil {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// LeaderHTTP is the leader's HTTP address, from its node record.
func (p *Peers) LeaderHTTP() (string, error) {
	_, id := p.Store.Leader()
	if id == "" {
		return "", errors.New("no leader: the cluster has no quorum right now")
	}
	for _, n := range p.Catalog.Nodes() {
		if n.ID == id && n.HTTPAddr != "" {
			return n.HTTPAddr, nil
		}
	}
	return "", fmt.Errorf("the leader %s has no HTTP address in the catalog yet", id)
}

// post sends body to addr's path with the node token and returns the
// status and answer. A dial failure wraps errUnreached: nothing was sent.
func (p *Peers) post(ctx context.Context, addr, path string, body []byte, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url(addr, path), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if k := p.Catalog.Keyring(); k != nil {
		req.Header.Set(tokenHeader, k.Token())
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, nil, fmt.Errorf("%w: %v", errUnreached, err)
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, answer, err
}

var errUnreached = errors.New("peer unreachable")

// authorized checks the node token of a node-to-node call.
func authorized(cat *catalog.Catalog, r *http.Request) bool {
	k := cat.Keyring()
	if k == nil {
		return false
	}
	got := r.Header.Get(tokenHeader)
	return subtle.ConstantTimeCompare([]byte(got), []byte(k.Token())) == 1
}

// nodeOnly serves h only to the other nodes of this cluster (the node
// token); a node whose key is not loaded yet (starting) refuses retryably.
func nodeOnly(cat *catalog.Catalog, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case cat.Keyring() == nil:
			http.Error(w, "this node is starting", http.StatusMisdirectedRequest)
		case !authorized(cat, r):
			http.Error(w, "this endpoint serves the nodes of this cluster: it needs their node token", http.StatusUnauthorized)
		default:
			h(w, r)
		}
	}
}

// callerTimeout is the time the caller gave a call (deadlineHeader), at
// most limit.
func callerTimeout(r *http.Request, limit time.Duration) time.Duration {
	if ms, err := strconv.ParseInt(r.Header.Get(deadlineHeader), 10, 64); err == nil && ms > 0 {
		return min(limit, time.Duration(ms)*time.Millisecond)
	}
	return limit
}

// deadlineHeader passes the caller's remaining time to the callee.
const deadlineHeader = "X-Sluice-Timeout-Ms"

func remaining(ctx context.Context) map[string]string {
	if dl, ok := ctx.Deadline(); ok {
		return map[string]string{deadlineHeader: fmt.Sprint(max(1, time.Until(dl).Milliseconds()))}
	}
	return nil
}
