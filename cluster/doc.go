// Package cluster is what makes separate sluice nodes one cluster: joining
// (POST /v1/cluster/join), writes a follower forwards to the leader
// (POST /v1/catalog/apply), liveness by heartbeats (POST
// /v1/cluster/heartbeat) and the cluster-wide view of tasks, slots and
// metrics that rides on the heartbeat answers. Node-to-node calls are
// authenticated with a token derived from the cluster key; TLS, when
// configured, protects them on the wire. See DESIGN.md.
package cluster
