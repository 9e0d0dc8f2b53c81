package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"sluice/catalog"
	"sluice/exec"
	"sluice/raftstore"
)

// httpMux serves /healthz, /metrics (Prometheus text format) and
// /debug/pprof on the node's HTTP address (the cluster endpoints are
// added by cluster.Register).
// /healthz is 503 until the node has started (joined, MySQL front up) and
// whenever it knows no leader (the catalog cannot change).
func httpMux(nodeID string, store *raftstore.Store, cat *catalog.Catalog, eng *exec.Engine, started *atomic.Bool, exp exposition) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		addr, leader := store.Leader()
		status := http.StatusOK
		if leader == "" || !started.Load() {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"node": nodeID, "raft_state": store.State(), "leader": leader, "leader_raft_addr": addr,
			"applied_index": store.AppliedIndex(), "started": started.Load(), "ok": status == http.StatusOK,
		})
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		exp.write(w)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
