// Package mysqlsink is the mysql sink: changes applied to a MySQL or
// MariaDB database as batched upserts (INSERT … ON DUPLICATE KEY UPDATE)
// and deletes by primary key. At-least-once (the default), applying the
// same changes twice leaves the same rows, so a replay after a crash is
// harmless. Exactly-once (semantic=exactly-once), each checkpoint
// interval's changes go into one XA transaction per task, prepared at the
// barrier and committed after the catalog committed the checkpoint (see
// DESIGN.md). Missing target tables are created from the source schema;
// ADD, DROP, MODIFY and RENAME COLUMN follow the source.
package mysqlsink
