// Package node assembles one sluice node: the Raft store and catalog, the
// cluster membership, forwarding and liveness, the executor, the MySQL
// front and the HTTP endpoints, wired once for the binary, the test
// harness and the benchmarks alike.
package node
