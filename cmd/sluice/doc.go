// Command sluice is the sluice server and its command line. It only wires
// the packages together: raftstore + catalog, the connectors, the executor,
// the SQL front and the HTTP endpoints.
package main
