package node

// The Prometheus exposition at /metrics. Names follow Prometheus'
// conventions: base units in the name (seconds, bytes), counters end in
// _total, one metric per meaning with labels for the rest. Figures of
// this node's own work (rows, bytes, tasks, slots, checkpoint durations of
// the pipelines it coordinates) carry its node label; figures of the
// cluster's state (job state, restarts, lag, snapshot progress, binlog
// risk) are the same on every node, so dashboards take max by (job).

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"sluice/catalog"
	"sluice/exec"
	"sluice/raftstore"
	"sluice/sqlfront"
)

// exposition gathers what /metrics writes.
type exposition struct {
	node   string
	store  *raftstore.Store
	cat    *catalog.Catalog
	eng    *exec.Engine
	work   interface{ RiskRows() []exec.RiskRow }
	tables func() []sqlfront.TableStatus // nil until the SQL front is up
}

func label(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// labels renders k=v pairs.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s="%s"`, kv[i], label(kv[i+1]))
	}
	b.WriteByte('}')
	return b.String()
}

type family struct {
	name, help, typ string
	lines           []string
}

func (f *family) add(lbls string, v float64) {
	f.lines = append(f.lines, f.name+lbls+" "+strconv.FormatFloat(v, 'g', -1, 64))
}

func (x exposition) write(w io.Writer) {
	var fams []*family
	fam := func(name, typ, help string) *family {
		f := &family{name: name, typ: typ, help: help}
		fams = append(fams, f)
		return f
	}
	node := x.node

	// This node's work.
	srcRows := fam("sluice_source_received_rows_total", "counter", "Rows read from the source, by job and source table.")
	srcBytes := fam("sluice_source_received_bytes_total", "counter", "Arrow bytes read from the source.")
	sinkRows := fam("sluice_sink_written_rows_total", "counter", "Rows written to the sink.")
	sinkBytes := fam("sluice_sink_written_bytes_total", "counter", "Arrow bytes written to the sink.")
	sinkLag := fam("sluice_sink_lag_seconds", "gauge", "Time from the source change to the sink write of the latest batch (see sluice_table_lag_seconds for the lag of what is visible).")
	for _, m := range x.eng.Metrics().Rows() {
		l := labels("node", node, "job", m.Job, "table", m.Table)
		srcRows.add(l, float64(m.SourceReceivedCount))
		srcBytes.add(l, float64(m.SourceReceivedBytes))
		sinkRows.add(l, float64(m.SinkWriteCount))
		sinkBytes.add(l, float64(m.SinkWriteBytes))
		sinkLag.add(l, float64(m.LagMs)/1000)
	}
	tasks := fam("sluice_task_state", "gauge", "Tasks on this node by state (1 for the task's current state).")
	for _, t := range x.eng.Tasks() {
		tasks.add(labels("node", node, "job", t.Job, "pipeline", strconv.Itoa(t.Pipeline), "task", strconv.Itoa(t.TaskID), "state", t.State), 1)
	}
	total, used := x.eng.SlotUsage()
	fam("sluice_slots", "gauge", "Task slots of this node (0 for dynamic).").add(labels("node", node), float64(total))
	fam("sluice_slots_used", "gauge", "Task slots of this node in use.").add(labels("node", node), float64(used))
	dur := fam("sluice_checkpoint_duration_seconds", "histogram", "Checkpoint duration from trigger to catalog commit, of the pipelines this node coordinates.")
	for _, h := range x.eng.CheckpointDurations() {
		for i, le := range exec.CheckpointBuckets {
			dur.lines = append(dur.lines, fmt.Sprintf("%s_bucket%s %d", dur.name, labels("node", node, "job", h.Job, "le", strconv.FormatFloat(le, 'g', -1, 64)), h.Buckets[i]))
		}
		dur.lines = append(dur.lines, fmt.Sprintf("%s_bucket%s %d", dur.name, labels("node", node, "job", h.Job, "le", "+Inf"), h.Count))
		dur.lines = append(dur.lines, fmt.Sprintf("%s_sum%s %s", dur.name, labels("node", node, "job", h.Job), strconv.FormatFloat(h.Sum, 'g', -1, 64)))
		dur.lines = append(dur.lines, fmt.Sprintf("%s_count%s %d", dur.name, labels("node", node, "job", h.Job), h.Count))
	}

	// The cluster's state, as this node's catalog copy has it.
	jobs := x.cat.Jobs()
	states := map[string]int{}
	jobState := fam("sluice_job_state", "gauge", "Each job's state (1 for its current state).")
	restarts := fam("sluice_job_restarts_total", "counter", "Restarts of each job since it was created.")
	for _, j := range jobs {
		states[string(j.State)]++
		jobState.add(labels("node", node, "job", j.Name, "state", string(j.State)), 1)
		restarts.add(labels("node", node, "job", j.Name), float64(j.Restarts))
	}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	byState := fam("sluice_jobs", "gauge", "Jobs by state.")
	for _, k := range keys {
		byState.add(labels("state", k), float64(states[k]))
	}
	if x.tables != nil {
		jobLag := fam("sluice_job_lag_seconds", "gauge", "Now minus the source commit time of the oldest change of the job that may not be visible at the target.")
		tableLag := fam("sluice_table_lag_seconds", "gauge", "The same per source table.")
		phase := fam("sluice_table_phase", "gauge", "Each source table's phase (1 for its current one: SNAPSHOT, STREAMING, PAUSED, ERROR, DONE).")
		done := fam("sluice_snapshot_rows", "gauge", "Rows of the table's initial snapshot done.")
		est := fam("sluice_snapshot_rows_estimated", "gauge", "Rows of the table's initial snapshot in all (the server's estimate until done).")
		for _, t := range x.tables() {
			if t.Table == "" {
				jobLag.add(labels("node", node, "job", t.Job), float64(t.LagMs)/1000)
				continue
			}
			l := labels("node", node, "job", t.Job, "table", t.Table)
			tableLag.add(l, float64(t.LagMs)/1000)
			phase.add(labels("node", node, "job", t.Job, "table", t.Table, "phase", t.Phase), 1)
			if t.Snapshot {
				done.add(l, float64(t.RowsDone))
				est.add(l, float64(t.RowsTotal))
			}
		}
	}
	risk := fam("sluice_binlog_risk_level", "gauge", "Binlog purge risk of each job's source: 0 OK, 1 WARN, 2 CRITICAL (sluice.binlog_risk).")
	left := fam("sluice_binlog_purge_seconds", "gauge", "Seconds until the source server may purge the binlog the job's last checkpoint needs (0 once purged).")
	behind := fam("sluice_binlog_behind_bytes", "gauge", "Binlog bytes from the job's last checkpoint to the server's head.")
	now := time.Now()
	for _, r := range x.work.RiskRows() {
		risk.add(labels("node", node, "job", r.Job, "server", r.Server), float64(map[string]int{exec.RiskWarn: 1, exec.RiskCritical: 2}[r.Level(now)]))
		behind.add(labels("node", node, "job", r.Job, "server", r.Server), float64(r.BytesBehind))
		switch {
		case r.Purged:
			left.add(labels("node", node, "job", r.Job, "server", r.Server), 0)
		case !r.PurgeAt.IsZero():
			left.add(labels("node", node, "job", r.Job, "server", r.Server), max(0, r.PurgeAt.Sub(now).Seconds()))
		}
	}
	leader := 0.0
	if x.store.IsLeader() {
		leader = 1
	}
	fam("sluice_raft_leader", "gauge", "Whether this node leads the catalog.").add(labels("node", node), leader)
	fam("sluice_raft_applied_index", "gauge", "Last catalog entry applied.").add(labels("node", node), float64(x.store.AppliedIndex()))

	for _, f := range fams {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
		for _, l := range f.lines {
			fmt.Fprintln(w, l)
		}
	}
}
