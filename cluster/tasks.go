package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"sluice/exec"
)

// TaskRPC carries the checkpoint messages between a pipeline's coordinator
// and its tasks on other nodes (exec.Transport): POST /v1/task/message on
// the node token, one message per call, answered once the node delivered
// it to its run of that attempt.
type TaskRPC struct{ Peers *Peers }

// Send delivers m to node. The answer's status says how it went: 200
// delivered, 409 the attempt is not running there yet (retry), 410 it is
// not running there any more (fenced).
func (t TaskRPC) Send(ctx context.Context, node string, m exec.TaskMessage) error {
	addr := ""
	for _, n := range t.Peers.Catalog.Nodes() {
		if n.ID == node {
			addr = n.HTTPAddr
		}
	}
	if addr == "" {
		return fmt.Errorf("node %s has no HTTP address in the catalog", node)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	status, answer, err := t.Peers.post(ctx, addr, "/v1/task/message", body, remaining(ctx))
	switch {
	case err != nil:
		return fmt.Errorf("node %s at %s: %w", node, addr, err)
	case status == http.StatusOK:
		return nil
	case status == http.StatusConflict:
		return fmt.Errorf("%w: node %s: %s", exec.ErrNoRunYet, node, answer)
	case status == http.StatusGone:
		return fmt.Errorf("%w: node %s: %s", exec.ErrFenced, node, answer)
	}
	return fmt.Errorf("node %s at %s answered %d: %s", node, addr, status, answer)
}

// taskHandler serves POST /v1/task/message.
func taskHandler(deliver func(context.Context, exec.TaskMessage) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a task message", http.StatusMethodNotAllowed)
			return
		}
		var m exec.TaskMessage
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&m); err != nil {
			http.Error(w, "bad task message: "+err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), callerTimeout(r, 10*time.Second))
		defer cancel()
		err := deliver(ctx, m)
		switch {
		case err == nil:
			w.WriteHeader(http.StatusOK)
		case errors.Is(err, exec.ErrNoRunYet):
			http.Error(w, err.Error(), http.StatusConflict)
		case errors.Is(err, exec.ErrFenced):
			http.Error(w, err.Error(), http.StatusGone)
		default:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}
}
