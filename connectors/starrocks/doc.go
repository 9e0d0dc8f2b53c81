// Package starrocks is the starrocks sink: StarRocks Stream Load over HTTP
// (FE → 307 → BE with credentials kept, Expect: 100-continue, JSON with
// __op for upserts and deletes on primary-key tables), at-least-once with
// labels reused on retries, or exactly-once through the Stream Load
// transaction API: begin/load between checkpoints, prepare at the barrier,
// commit once the catalog has committed the checkpoint, and on recovery
// commit what the catalog committed and roll back what a crashed run left
// prepared. internal/sremu is an emulator for tests; the sink follows
// StarRocks' documented protocol only.
package starrocks
