package cluster

import (
	"context"
	"net/http"

	"sluice/exec"
)

// Register adds the node-to-node endpoints to mux: join, forwarded
// writes, read indexes, heartbeats, removals and the checkpoint messages
// of pipelines spread over nodes (delivered by deliver).
func Register(mux *http.ServeMux, p *Peers, l *Liveness, rootPassword string, deliver func(context.Context, exec.TaskMessage) error) {
	mux.HandleFunc("/v1/task/message", nodeOnly(p.Catalog, taskHandler(deliver)))
	mux.HandleFunc("/v1/cluster/join", p.joinHandler(rootPassword))
	mux.HandleFunc("/v1/catalog/apply", nodeOnly(p.Catalog, applyHandler(p.Catalog)))
	mux.HandleFunc("/v1/cluster/heartbeat", nodeOnly(p.Catalog, l.heartbeatHandler()))
	mux.HandleFunc("/v1/cluster/remove", nodeOnly(p.Catalog, p.removeHandler()))
	mux.HandleFunc("/v1/catalog/read-index", nodeOnly(p.Catalog, p.readIndexHandler()))
}
