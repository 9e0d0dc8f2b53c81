// Package node assembles one sluice node: the Raft store and catalog, the
// cluster membership, forwarding and liveness, the executor, the MySQL
// front and the HTTP endpoints, wired once for the binary, the test
// harness and the benchmarks alike. SQL over HTTP (sqlhttp.go) runs each
// request over a connection to the node's own MySQL front as the request's
// basic-auth user, so it answers exactly as the wire does.
package node
