// Package mysqlsink is the mysql sink: changes applied to a MySQL or
// MariaDB database as batched upserts (INSERT … ON DUPLICATE KEY UPDATE)
// and deletes by primary key. Applying the same changes twice leaves the
// same rows, so a replay after a crash is harmless (at-least-once delivery,
// exactly-once state). Missing target tables are created from the source
// schema; ADD, DROP, MODIFY and RENAME COLUMN follow the source.
package mysqlsink
