package exec

// The binlog purge forecast (sluice.binlog_risk): on the leader, every
// RiskInterval, each job whose source has a Spec.Retention is asked how
// long its server keeps what the job's last committed checkpoint needs —
// paused jobs too, which are the ones a purge breaks. A change of risk is
// an event.

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"sluice/catalog"
	"sluice/connectors"
)

// Risk levels of sluice.binlog_risk.
const (
	RiskOK       = "OK"
	RiskWarn     = "WARN"
	RiskCritical = "CRITICAL"
)

// RiskRow is one job × source server's forecast, as last checked.
type RiskRow struct {
	Job          string        `json:"job"`
	JobID        uint64        `json:"job_id"`
	Server       string        `json:"server,omitempty"`
	Oldest       string        `json:"oldest,omitempty"`
	Head         string        `json:"head,omitempty"`
	Position     string        `json:"position,omitempty"`
	BytesBehind  int64         `json:"bytes_behind,omitempty"`
	BytesToPurge int64         `json:"bytes_to_purge,omitempty"`
	Retention    time.Duration `json:"retention,omitempty"`
	PurgeAt      time.Time     `json:"purge_at,omitzero"`
	Purged       bool          `json:"purged,omitempty"`
	Error        string        `json:"error,omitempty"`
	CheckedAt    time.Time     `json:"checked_at"`
}

// Level is the row's risk at now: CRITICAL once what the job needs is
// purged or less than a tenth of the retention is left before it may be,
// WARN with less than half left, else OK (also with no time-based purge,
// or when the check failed: Error says why).
func (r RiskRow) Level(now time.Time) string {
	switch {
	case r.Purged:
		return RiskCritical
	case r.Error != "" || r.PurgeAt.IsZero() || r.Retention <= 0:
		return RiskOK
	}
	left := r.PurgeAt.Sub(now)
	switch {
	case left < r.Retention/10:
		return RiskCritical
	case left < r.Retention/2:
		return RiskWarn
	}
	return RiskOK
}

// riskBoard holds the latest forecasts and levels of this node's checks.
type riskBoard struct {
	mu     sync.Mutex
	rows   map[uint64]RiskRow
	levels map[uint64]string
}

// RiskRows lists this node's latest forecasts (the leader's are the
// cluster's), by job.
func (e *Engine) RiskRows() []RiskRow {
	e.risk.mu.Lock()
	out := make([]RiskRow, 0, len(e.risk.rows))
	for _, r := range e.risk.rows {
		out = append(out, r)
	}
	e.risk.mu.Unlock()
	sort.Slice(out, func(i, k int) bool { return out[i].Job < out[k].Job })
	return out
}

// MergeRisks keeps, per job, the most recently checked row of several
// nodes' lists (the leader checks; a former leader's rows age out).
func MergeRisks(lists ...[]RiskRow) []RiskRow {
	best := map[uint64]RiskRow{}
	for _, l := range lists {
		for _, r := range l {
			if b, ok := best[r.JobID]; !ok || r.CheckedAt.After(b.CheckedAt) {
				best[r.JobID] = r
			}
		}
	}
	out := make([]RiskRow, 0, len(best))
	for _, r := range best {
		out = append(out, r)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Job < out[k].Job })
	return out
}

// watchRetention checks every RiskInterval while this node leads.
func (e *Engine) watchRetention(ctx context.Context) {
	tick := time.NewTicker(e.cfg.RiskInterval)
	defer tick.Stop()
	for {
		if e.cfg.IsLeader() {
			e.checkRetention(ctx)
		} else {
			e.risk.mu.Lock()
			clear(e.risk.rows) // the leader's are the current ones
			e.risk.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkRetention makes one pass over the jobs.
func (e *Engine) checkRetention(ctx context.Context) {
	seen := map[uint64]bool{}
	for _, job := range e.cat.Jobs() {
		if job.State == catalog.Finished || job.State == catalog.Canceled {
			continue
		}
		row, ok := e.forecast(ctx, job)
		if !ok {
			continue
		}
		seen[job.ID] = true
		level := row.Level(time.Now())
		e.risk.mu.Lock()
		prev, had := e.risk.levels[job.ID]
		e.risk.rows[job.ID] = row
		e.risk.levels[job.ID] = level
		e.risk.mu.Unlock()
		if (had && prev != level) || (!had && level != RiskOK) {
			from := prev
			if !had {
				from = "unchecked"
			}
			e.event(ctx, job.Name, "BINLOG_RISK", fmt.Sprintf("binlog risk %s -> %s: %s", from, level, row.describe(time.Now())))
		}
	}
	e.risk.mu.Lock()
	for id := range e.risk.rows {
		if !seen[id] {
			delete(e.risk.rows, id)
			delete(e.risk.levels, id)
		}
	}
	e.risk.mu.Unlock()
}

// describe says what the forecast means, for the event.
func (r RiskRow) describe(now time.Time) string {
	switch {
	case r.Purged:
		return fmt.Sprintf("%s no longer has the binlog of position %s (oldest is %s); the job cannot resume from it", r.Server, r.Position, r.Oldest)
	case r.PurgeAt.IsZero():
		return fmt.Sprintf("%s has no time-based binlog expiry", r.Server)
	}
	return fmt.Sprintf("%s may purge the binlog of position %s in %s (retention %s); resume or speed up the job before then",
		r.Server, r.Position, r.PurgeAt.Sub(now).Round(time.Second), r.Retention)
}

// forecast asks the job's source about its last checkpoint's position;
// false when the source has no forecast or the job has no checkpoint.
func (e *Engine) forecast(ctx context.Context, job catalog.Job) (RiskRow, bool) {
	if e.cfg.Registry == nil {
		return RiskRow{}, false
	}
	spec, err := e.cfg.Registry.Lookup(job.Spec.Source.Connector, connectors.KindSource)
	if err != nil || spec.Retention == nil {
		return RiskRow{}, false
	}
	var pos connectors.Position
	for _, v := range job.Plan.Vertices {
		if connectors.Kind(v.Kind) != connectors.KindSource {
			continue
		}
		for _, pl := range job.Plan.Pipelines {
			if !containsInt(pl.Vertices, v.ID) {
				continue
			}
			if cp, ok := e.cat.LastCheckpoint(job.ID, pl.ID); ok && len(cp.Tasks) > 0 {
				pos = cp.Tasks[0].Position // one reader per source (mysql_cdc: MaxParallelism 1)
			}
		}
	}
	if pos == nil {
		return RiskRow{}, false
	}
	row := RiskRow{Job: job.Name, JobID: job.ID, CheckedAt: time.Now().UTC()}
	opts, err := e.cat.OpenOptions(job.Spec.Source.Options)
	var cfg connectors.Config
	if err == nil {
		cfg, err = spec.Options.Validate(spec.Name, opts)
	}
	var info connectors.RetentionInfo
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		info, err = spec.Retention(cctx, cfg, pos)
		cancel()
	}
	row.Server, row.Oldest, row.Head, row.Position = info.Server, info.Oldest, info.Head, info.Position
	row.BytesBehind, row.BytesToPurge, row.Retention = info.BytesBehind, info.BytesToPurge, info.Retention
	row.PurgeAt, row.Purged = info.PurgeAt, info.Purged
	if err != nil {
		row.Error = err.Error()
	}
	return row, true
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
