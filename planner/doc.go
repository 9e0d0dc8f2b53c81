// Package planner turns sync-job dialect text into catalog records: it
// parses the statement (parse.go), validates every connector's options and
// the job's WITH options against their declared specs, and derives the plan
// stored with the job — logical DAG, pipelines, tasks — that EXPLAIN shows
// and the executor runs.
package planner
