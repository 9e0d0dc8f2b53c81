package cluster

import (
	"sort"
	"time"

	"sluice/exec"
)

// ClusterWork answers the system tables for the whole cluster: this node's
// own work live, every other node's as its last heartbeat reported it to
// the leader (on a follower, as the leader's last answer had it: at most
// a heartbeat or two behind).
type ClusterWork struct {
	Local Work
	L     *Liveness
}

func (c ClusterWork) others() []Report {
	v := c.L.View()
	out := make([]Report, 0, len(v.Reports))
	for id, r := range v.Reports {
		if id != c.L.Self {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Node < out[k].Node })
	return out
}

// Tasks lists the tasks of every node, by job, pipeline and subtask.
func (c ClusterWork) Tasks() []exec.TaskRow {
	out := c.Local.Tasks()
	for _, r := range c.others() {
		out = append(out, r.Tasks...)
	}
	exec.SortTasks(out)
	return out
}

// Slots lists the slots of every node.
func (c ClusterWork) Slots() []exec.SlotRow {
	out := c.Local.Slots()
	for _, r := range c.others() {
		out = append(out, r.Slots...)
	}
	return out
}

// SlotUsage is this node's own.
func (c ClusterWork) SlotUsage() (total, used int) { return c.Local.SlotUsage() }

// MetricRows lists the metrics of every job × table over the whole
// cluster: a job whose subtasks run on several nodes has one row, its
// counts and rates summed over the nodes, its lag the largest.
func (c ClusterWork) MetricRows() []exec.MetricRow {
	all := c.Local.MetricRows()
	for _, r := range c.others() {
		all = append(all, r.Metrics...)
	}
	type key struct{ job, table string }
	at := map[key]int{}
	var out []exec.MetricRow
	for _, m := range all {
		k := key{m.Job, m.Table}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, m)
			continue
		}
		o := &out[i]
		o.SourceReceivedCount += m.SourceReceivedCount
		o.SourceReceivedBytes += m.SourceReceivedBytes
		o.SourceReceivedQPS += m.SourceReceivedQPS
		o.SinkWriteCount += m.SinkWriteCount
		o.SinkWriteBytes += m.SinkWriteBytes
		o.SinkWriteQPS += m.SinkWriteQPS
		o.LagMs = max(o.LagMs, m.LagMs)
		if m.UpdatedAt.After(o.UpdatedAt) {
			o.UpdatedAt = m.UpdatedAt
		}
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].Job != out[k].Job {
			return out[i].Job < out[k].Job
		}
		return out[i].Table < out[k].Table
	})
	return out
}

// TableRows lists the source tables of every job over the cluster
// (exec.MergeReports).
func (c ClusterWork) TableRows() []exec.TableRow {
	t, _ := c.reports()
	return t
}

// SourceRows lists every job's sources over the cluster.
func (c ClusterWork) SourceRows() []exec.SourceRow {
	_, s := c.reports()
	return s
}

func (c ClusterWork) reports() ([]exec.TableRow, []exec.SourceRow) {
	tables := [][]exec.TableRow{c.Local.TableRows()}
	sources := [][]exec.SourceRow{c.Local.SourceRows()}
	for _, r := range c.others() {
		tables = append(tables, r.Tables)
		sources = append(sources, r.Sources)
	}
	return exec.MergeReports(tables, sources)
}

// RiskRows lists the binlog purge forecasts the leader made (the newest
// check of each job over the cluster).
func (c ClusterWork) RiskRows() []exec.RiskRow {
	lists := [][]exec.RiskRow{c.Local.RiskRows()}
	for _, r := range c.others() {
		lists = append(lists, r.Risks)
	}
	return exec.MergeRisks(lists...)
}

// NodeSeen is a node's last heartbeat and status as the leader saw it,
// and its slots in use as it reported them. A view older than a session
// (no leader answered this node's heartbeats since) is not used: the
// caller falls back to the status the catalog recorded.
func (c ClusterWork) NodeSeen(id string) (last time.Time, status string, slotsUsed int, ok bool) {
	v := c.L.View()
	if time.Since(v.At) > c.L.SessionTimeout {
		return time.Time{}, "", 0, false
	}
	s, ok := v.Seen[id]
	return s.Last, s.Status, v.Reports[id].SlotsUsed, ok
}
