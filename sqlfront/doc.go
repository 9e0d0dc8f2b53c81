// Package sqlfront serves the MySQL wire protocol with go-mysql-server. It
// intercepts the sync-job dialect in front of the SQL engine (dialect.go),
// exposes the read-only `sluice` database of system tables (systables.go),
// authenticates users, and maps every error to a MySQL error code
// (errors.go — the only file that knows those codes).
//
// See DESIGN.md in this directory.
package sqlfront
