package sqlfront

import (
	"fmt"
	"strings"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/exec"
)

// Lag, as sluice.job_tables and sluice.jobs report it: now minus the
// source commit time of the oldest change that may not be visible at the
// target yet. The target is known to hold everything committed at the
// source before the job's visible time (the source time of its last
// committed checkpoint, the oldest over its pipelines). So:
//   - a job that is not running (paused, failed, restarting, queued):
//     now − visible time; it grows until the job runs and checkpoints
//   - a table still in its snapshot: now − the job's creation (its
//     snapshot's rows are not all there yet)
//   - a running table whose last change read is newer than the visible
//     time: now − visible time (the change is pending; at most a
//     checkpoint interval more than its own age)
//   - otherwise nothing of the table is pending up to where the source has
//     read: now − the source's current time (≈ 0 while it waits for
//     changes: idle tables are current)
//
// Binlog timestamps have whole seconds, so a change read in the second of
// a checkpoint may count as visible one checkpoint early.
type lagInput struct {
	state     catalog.JobState
	phase     string
	lastEvent time.Time
	visible   time.Time // zero: no checkpoint with a source time yet
	current   time.Time // the source's CurrentAt (zero: unknown)
	created   time.Time
	now       time.Time
}

func lagMs(in lagInput) int64 {
	since := func(t time.Time) int64 { return max(0, in.now.Sub(t).Milliseconds()) }
	visible := in.visible
	if visible.IsZero() {
		visible = in.created
	}
	switch {
	case in.state == catalog.Finished || in.phase == connectors.PhaseDone:
		return 0
	case in.state != catalog.Running:
		return since(visible)
	case in.phase == connectors.PhaseSnapshot:
		return since(in.created)
	case in.lastEvent.After(visible) || in.current.IsZero():
		return since(visible)
	default:
		return since(later(visible, in.current))
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// visibleAt is the source time the job's target is current through (see
// lagMs) and the positions of its last committed checkpoints.
func visibleAt(cat *catalog.Catalog, j catalog.Job) (time.Time, string) {
	var pos []string
	for _, p := range j.Plan.Pipelines {
		cp, ok := cat.LastCheckpoint(j.ID, p.ID)
		if !ok {
			return time.Time{}, ""
		}
		for _, t := range cp.Tasks {
			if len(j.Plan.Pipelines) > 1 {
				pos = append(pos, fmt.Sprintf("%d.%d:%s", p.ID, t.Subtask, t.Position))
			} else {
				pos = append(pos, fmt.Sprintf("%d:%s", t.Subtask, t.Position))
			}
		}
	}
	return cat.VisibleAt(j), strings.Join(pos, " ")
}

// jobStatus is one job's runtime view for the jobs and job_tables tables.
type jobStatus struct {
	tables  []exec.TableRow
	source  exec.SourceRow
	visible time.Time
	applied string
}

func (s *Server) jobStatuses(jobs []catalog.Job) map[uint64]*jobStatus {
	out := map[uint64]*jobStatus{}
	for _, j := range jobs {
		st := &jobStatus{}
		st.visible, st.applied = visibleAt(s.cfg.Catalog, j)
		out[j.ID] = st
	}
	for _, t := range s.cfg.Runtime.TableRows() {
		if st := out[t.JobID]; st != nil {
			st.tables = append(st.tables, t)
		}
	}
	for _, src := range s.cfg.Runtime.SourceRows() {
		if st := out[src.JobID]; st != nil {
			st.source = src
		}
	}
	return out
}

// tableLag is one table's lag_ms.
func (st *jobStatus) tableLag(j catalog.Job, t exec.TableRow, now time.Time) int64 {
	current := st.source.CurrentAt
	if !st.source.Live {
		current = time.Time{}
	}
	return lagMs(lagInput{state: j.State, phase: t.Phase, lastEvent: t.LastEventAt, visible: st.visible,
		current: current, created: j.CreatedAt, now: now})
}

// jobLag is the job's lag_ms: its slowest table's, or the job's own when
// no table has reported.
func (st *jobStatus) jobLag(j catalog.Job, now time.Time) int64 {
	if len(st.tables) == 0 {
		current := st.source.CurrentAt
		if !st.source.Live {
			current = time.Time{}
		}
		return lagMs(lagInput{state: j.State, phase: connectors.PhaseStreaming, visible: st.visible, current: current,
			created: j.CreatedAt, now: now})
	}
	var m int64
	for _, t := range st.tables {
		m = max(m, st.tableLag(j, t, now))
	}
	return m
}

// tablePhase is the phase job_tables shows: the job's state where it
// stops the table.
func tablePhase(j catalog.Job, sourcePhase string) string {
	switch j.State {
	case catalog.Paused:
		return "PAUSED"
	case catalog.Failed:
		return "ERROR"
	case catalog.Finished, catalog.Canceled:
		return connectors.PhaseDone
	}
	return sourcePhase
}

// TableStatus is one job table's phase, snapshot progress and lag as
// sluice.job_tables has them (Table "" is the job's own lag), for the
// Prometheus exposition.
type TableStatus struct {
	Job, Table, Phase   string
	Snapshot            bool
	RowsDone, RowsTotal int64
	LagMs               int64
}

// TableStatuses is sluice.job_tables and the jobs' lag, computed once.
func (s *Server) TableStatuses() []TableStatus {
	now := time.Now()
	jobs := s.cfg.Catalog.Jobs()
	statuses := s.jobStatuses(jobs)
	var out []TableStatus
	for _, j := range jobs {
		st := statuses[j.ID]
		out = append(out, TableStatus{Job: j.Name, Phase: string(j.State), LagMs: st.jobLag(j, now)})
		for _, t := range st.tables {
			out = append(out, TableStatus{Job: j.Name, Table: t.Table, Phase: tablePhase(j, t.Phase), Snapshot: t.Snapshot,
				RowsDone: t.RowsDone, RowsTotal: t.RowsTotal, LagMs: st.tableLag(j, t, now)})
		}
	}
	return out
}

func (s *Server) binlogRiskTable() *sysTable {
	return &sysTable{
		name: "binlog_risk", pk: []int{0, 1},
		schema: schema("binlog_risk",
			colDef{"job", tVarchar, false}, colDef{"server", tVarchar, false}, colDef{"oldest_binlog", tVarchar, true},
			colDef{"checkpoint_position", tVarchar, true}, colDef{"head_position", tText, true},
			colDef{"bytes_behind", types.Int64, false}, colDef{"bytes_to_purge", types.Int64, false},
			colDef{"retention_seconds", types.Int64, false}, colDef{"purge_at", tDatetime, true},
			colDef{"seconds_to_purge", types.Int64, true}, colDef{"risk", tVarchar, false},
			colDef{"error", tText, true}, colDef{"checked_at", tDatetime, false}),
		rows: func(*sql.Context) []sql.Row {
			var rows []sql.Row
			now := time.Now()
			live := map[uint64]bool{}
			for _, j := range s.cfg.Catalog.Jobs() {
				live[j.ID] = true
			}
			for _, r := range s.cfg.Runtime.RiskRows() {
				if !live[r.JobID] {
					continue
				}
				var purgeAt, left any
				if !r.PurgeAt.IsZero() {
					purgeAt, left = r.PurgeAt, int64(r.PurgeAt.Sub(now).Seconds())
				}
				if r.Purged {
					left = int64(0)
				}
				rows = append(rows, sql.NewRow(r.Job, r.Server, nullable(r.Oldest), nullable(r.Position), nullable(r.Head),
					r.BytesBehind, r.BytesToPurge, int64(r.Retention.Seconds()), purgeAt, left, r.Level(now),
					nullable(r.Error), r.CheckedAt))
			}
			return rows
		},
	}
}

func (s *Server) jobHistoryTable() *sysTable {
	return &sysTable{
		name: "job_history", pk: []int{0, 2, 5},
		schema: schema("job_history",
			colDef{"job_id", types.Uint64, false}, colDef{"name", tVarchar, false}, colDef{"final_state", tVarchar, false},
			colDef{"error", tText, true}, colDef{"started_at", tDatetime, false}, colDef{"ended_at", tDatetime, false},
			colDef{"rows", types.Int64, false}, colDef{"restarts", types.Int64, false}, colDef{"attempt", types.Int64, false},
			colDef{"spec", tText, false}),
		rows: func(*sql.Context) []sql.Row {
			var rows []sql.Row
			for _, h := range s.cfg.Catalog.History() {
				rows = append(rows, sql.NewRow(h.JobID, h.Name, h.FinalState, nullable(h.Error), h.StartedAt, h.EndedAt,
					h.Rows, int64(h.Restarts), int64(h.Attempt), s.cfg.Planner.Render(h.Name, h.Spec, true)))
			}
			return rows
		},
	}
}

func (s *Server) jobTablesTable() *sysTable {
	return &sysTable{
		name: "job_tables", pk: []int{0, 1},
		schema: schema("job_tables",
			colDef{"job", tVarchar, false}, colDef{"table_name", tVarchar, false}, colDef{"phase", tVarchar, false},
			colDef{"snapshot_rows_done", types.Int64, true}, colDef{"snapshot_rows_total", types.Int64, true},
			colDef{"snapshot_chunks_done", types.Int64, true}, colDef{"snapshot_chunks_total", types.Int64, true},
			colDef{"snapshot_exact", types.Boolean, true},
			colDef{"last_event_at", tDatetime, true}, colDef{"lag_ms", types.Int64, false}, colDef{"error", tText, true}),
		rows: func(*sql.Context) []sql.Row {
			var rows []sql.Row
			now := time.Now()
			jobs := s.cfg.Catalog.Jobs()
			statuses := s.jobStatuses(jobs)
			for _, j := range jobs {
				st := statuses[j.ID]
				var errText string
				if j.State == catalog.Failed || j.State == catalog.Restarting {
					errText = j.Error
				}
				for _, t := range st.tables {
					var done, total, cdone, ctotal, exact, last any
					if t.Snapshot {
						done, total, cdone, ctotal, exact = t.RowsDone, t.RowsTotal, t.ChunksDone, t.ChunksTotal, boolInt(t.Exact)
					}
					if !t.LastEventAt.IsZero() {
						last = t.LastEventAt
					}
					rows = append(rows, sql.NewRow(j.Name, t.Table, tablePhase(j, t.Phase), done, total, cdone, ctotal, exact,
						last, st.tableLag(j, t, now), nullable(errText)))
				}
			}
			return rows
		},
	}
}
