package cluster

import "net/http"

// Register adds the node-to-node endpoints to mux: join, forwarded
// writes, read indexes, heartbeats and removals.
func Register(mux *http.ServeMux, p *Peers, l *Liveness, rootPassword string) {
	mux.HandleFunc("/v1/cluster/join", p.joinHandler(rootPassword))
	mux.HandleFunc("/v1/catalog/apply", nodeOnly(p.Catalog, applyHandler(p.Catalog)))
	mux.HandleFunc("/v1/cluster/heartbeat", nodeOnly(p.Catalog, l.heartbeatHandler()))
	mux.HandleFunc("/v1/cluster/remove", nodeOnly(p.Catalog, p.removeHandler()))
	mux.HandleFunc("/v1/catalog/read-index", nodeOnly(p.Catalog, p.readIndexHandler()))
}
