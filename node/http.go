package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
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
func httpMux(nodeID string, store *raftstore.Store, cat *catalog.Catalog, eng *exec.Engine, started *atomic.Bool) *http.ServeMux {
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
		writeMetrics(w, nodeID, store, cat, eng)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func label(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func writeMetrics(w http.ResponseWriter, nodeID string, store *raftstore.Store, cat *catalog.Catalog, eng *exec.Engine) {
	rows := eng.Metrics().Rows()
	series := []struct {
		name, help, typ string
		val             func(exec.MetricRow) float64
	}{
		{"sluice_source_received_rows_total", "Rows read from the source.", "counter", func(m exec.MetricRow) float64 { return float64(m.SourceReceivedCount) }},
		{"sluice_source_received_bytes_total", "Arrow bytes read from the source.", "counter", func(m exec.MetricRow) float64 { return float64(m.SourceReceivedBytes) }},
		{"sluice_sink_written_rows_total", "Rows written to the sink.", "counter", func(m exec.MetricRow) float64 { return float64(m.SinkWriteCount) }},
		{"sluice_sink_written_bytes_total", "Arrow bytes written to the sink.", "counter", func(m exec.MetricRow) float64 { return float64(m.SinkWriteBytes) }},
		{"sluice_lag_milliseconds", "Time from the source change to the sink write of the latest batch.", "gauge", func(m exec.MetricRow) float64 { return float64(m.LagMs) }},
	}
	for _, s := range series {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", s.name, s.help, s.name, s.typ)
		for _, m := range rows {
			fmt.Fprintf(w, "%s{node=\"%s\",job=\"%s\",table=\"%s\"} %g\n", s.name, label(nodeID), label(m.Job), label(m.Table), s.val(m))
		}
	}
	states := map[string]int{}
	for _, j := range cat.Jobs() {
		states[string(j.State)]++
	}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "# HELP sluice_jobs Jobs by state.\n# TYPE sluice_jobs gauge\n")
	for _, k := range keys {
		fmt.Fprintf(w, "sluice_jobs{state=\"%s\"} %d\n", k, states[k])
	}
	leader := 0
	if store.IsLeader() {
		leader = 1
	}
	fmt.Fprintf(w, "# HELP sluice_raft_leader Whether this node leads the catalog.\n# TYPE sluice_raft_leader gauge\nsluice_raft_leader{node=\"%s\"} %d\n", label(nodeID), leader)
	fmt.Fprintf(w, "# HELP sluice_raft_applied_index Last catalog entry applied.\n# TYPE sluice_raft_applied_index gauge\nsluice_raft_applied_index{node=\"%s\"} %d\n", label(nodeID), store.AppliedIndex())
}
