// Package mysqlcdc is the mysql_cdc source: change data capture from
// MySQL 8 and MariaDB 10.11 binlogs with go-mysql's replication package.
//
// A job starts with a chunked, lock-free snapshot of the matching tables,
// merged with the binlog by high watermarks (DBLog / Flink CDC style), then
// follows the binlog. Positions (GTID set and file:pos, the count of rows
// already emitted inside a transaction, and snapshot progress) travel in
// batches and checkpoints, so a restart neither loses nor repeats a change.
// DESIGN.md describes the algorithm and the type mapping.
package mysqlcdc
