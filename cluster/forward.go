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

// outcomeHeader, on an error answer of /v1/catalog/apply, says whether the
// command may have been applied ("unknown") or certainly was not ("refused").
const outcomeHeader = "X-Sluice-Outcome"

// Forward sends an encoded catalog command to the leader
// (catalog.Forwarder). Errors wrap raftstore.ErrNotLeader when nothing was
// applied, so the catalog client retries freely, and
// raftstore.ErrLeadershipLost when the outcome is unknown, so it retries
// with the same request id.
func (p *Peers) Forward(ctx context.Context, cmd []byte) (catalog.Outcome, error) {
	addr, err := p.LeaderHTTP()
	if err != nil {
		return catalog.Outcome{}, fmt.Errorf("%w: %v", raftstore.ErrNotLeader, err)
	}
	status, answer, err := p.post(ctx, addr, "/v1/catalog/apply", cmd, remaining(ctx))
	switch {
	case errors.Is(err, errUnreached):
		return catalog.Outcome{}, fmt.Errorf("%w: leader at %s: %v", raftstore.ErrNotLeader, addr, err)
	case err != nil:
		return catalog.Outcome{}, fmt.Errorf("%w: forwarding to the leader at %s: %v", raftstore.ErrLeadershipLost, addr, err)
	case status == http.StatusOK:
		var o catalog.Outcome
		if err := json.Unmarshal(answer, &o); err != nil {
			return o, fmt.Errorf("%w: the leader at %s answered %q", raftstore.ErrLeadershipLost, addr, answer)
		}
		return o, nil
	case status == http.StatusMisdirectedRequest:
		return catalog.Outcome{}, fmt.Errorf("%w: %s answered: %s", raftstore.ErrNotLeader, addr, answer)
	case status == http.StatusUnauthorized:
		return catalog.Outcome{}, fmt.Errorf("the leader at %s refused this node's token (is it of another cluster, with another key?): %s", addr, answer)
	}
	return catalog.Outcome{}, fmt.Errorf("%w: the leader at %s answered %d: %s", raftstore.ErrLeadershipLost, addr, status, answer)
}

// applyHandler serves POST /v1/catalog/apply: a command forwarded by a
// follower, applied here if this node leads.
func applyHandler(cat *catalog.Catalog) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST an encoded catalog command", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil || len(body) == 0 {
			http.Error(w, "unreadable command", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), callerTimeout(r, catalog.DefaultWriteTimeout))
		defer cancel()
		o, err := cat.ApplyLocal(ctx, body)
		switch {
		case err == nil:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(o)
		case errors.Is(err, raftstore.ErrNotLeader):
			w.Header().Set(outcomeHeader, "refused")
			http.Error(w, err.Error(), http.StatusMisdirectedRequest)
		default:
			w.Header().Set(outcomeHeader, "unknown")
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}
}
