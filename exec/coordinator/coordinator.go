package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"sluice/catalog"
)

// Catalog is what the coordinator needs of the replicated catalog.
// *catalog.Catalog implements it.
type Catalog interface {
	Jobs() []catalog.Job
	Nodes() []catalog.Node
	Changed() <-chan struct{}
	SetJobState(ctx context.Context, cmd catalog.SetJobState) (catalog.Result, error)
	OldestRetained() (time.Time, bool)
	Expire(ctx context.Context, before time.Time) (catalog.Result, error)
}

// Config configures a Coordinator.
type Config struct {
	// IsLeader says whether this node coordinates now (it leads and has
	// applied the log of earlier terms).
	IsLeader func() bool
	// RetryInterval is a job's retry.interval (planner.JobConfig); nil: 10s.
	RetryInterval func(catalog.JobSpec) time.Duration
	// Heard says whether this leader has heard from a node (a heartbeat
	// since it took office, within the session timeout); nil: every node.
	// Tasks are placed only on nodes heard from, so after a whole-cluster
	// restart a job is placed once on the nodes that are back, not on
	// records of processes that are gone (which would move it again as
	// each node comes back with a new incarnation).
	Heard func(node catalog.Node) bool
	// Resync is the period of a pass without a catalog change (default 1s).
	Resync time.Duration
	// HistoryRetention is how long job history entries and events are
	// kept (default 24h): the leader expires older ones.
	HistoryRetention time.Duration
	// ApplyTimeout bounds each catalog write (default 5s).
	ApplyTimeout time.Duration
	Logger       *slog.Logger
}

// Coordinator places jobs on nodes, on the leader only. It never runs a
// task: workers run what the catalog places on them (exec.Engine).
type Coordinator struct {
	cfg Config
	cat Catalog
	log *slog.Logger
}

// New returns a coordinator. Call Run to start it.
func New(cfg Config, cat Catalog) *Coordinator {
	if cfg.IsLeader == nil {
		cfg.IsLeader = func() bool { return true }
	}
	if cfg.Heard == nil {
		cfg.Heard = func(catalog.Node) bool { return true }
	}
	if cfg.RetryInterval == nil {
		cfg.RetryInterval = func(catalog.JobSpec) time.Duration { return 10 * time.Second }
	}
	if cfg.Resync <= 0 {
		cfg.Resync = time.Second
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 5 * time.Second
	}
	if cfg.HistoryRetention <= 0 {
		cfg.HistoryRetention = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Coordinator{cfg: cfg, cat: cat, log: cfg.Logger}
}

// Run makes placement decisions on every catalog change and every Resync,
// while this node leads, until ctx ends.
func (c *Coordinator) Run(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Resync)
	defer tick.Stop()
	for {
		changed := c.cat.Changed()
		if c.cfg.IsLeader() {
			c.Schedule(ctx)
			c.expire(ctx, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// expire drops job history and events older than HistoryRetention, when
// there are any (one catalog write per pass at most).
func (c *Coordinator) expire(ctx context.Context, now time.Time) {
	before := now.Add(-c.cfg.HistoryRetention)
	if oldest, ok := c.cat.OldestRetained(); !ok || !oldest.Before(before) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if _, err := c.cat.Expire(actx, before); err != nil && ctx.Err() == nil {
		c.log.Warn("expiring job history and events failed; trying again", "err", err)
	}
}

// Schedule makes one pass of placement decisions. Order matters when slots
// are short: running jobs that lost their placement first, then retries,
// then the wait queue (longest waiting first), then new jobs. A job that
// does not fit does not hold back a later one that does (backfill).
func (c *Coordinator) Schedule(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	jobs := c.cat.Jobs()
	nodes := c.cat.Nodes()
	rank := func(j catalog.Job) int {
		switch j.State {
		case catalog.Running:
			return 0
		case catalog.Restarting:
			return 1
		case catalog.Waiting:
			return 2
		}
		return 3
	}
	var order []catalog.Job
	for r := 0; r <= 3; r++ {
		if r == 2 {
			order = append(order, catalog.WaitQueue(jobs)...)
			continue
		}
		for _, j := range jobs {
			if rank(j) == r && j.State.Active() {
				order = append(order, j)
			}
		}
	}
	for _, job := range order {
		if now := c.scheduleJob(ctx, job, jobs, nodes); now != nil {
			// The slots it took are not free for the jobs after it, nor
			// its place in the queue theirs.
			for i := range jobs {
				if jobs[i].ID == job.ID {
					jobs[i] = *now
				}
			}
		}
	}
}

// scheduleJob places one job if it needs it, and returns the job as it
// changed (nil when it did not).
func (c *Coordinator) scheduleJob(ctx context.Context, job catalog.Job, jobs []catalog.Job, nodes []catalog.Node) *catalog.Job {
	switch job.State {
	case catalog.Created, catalog.Scheduled, catalog.Waiting:
	case catalog.Restarting:
		if time.Now().Before(job.UpdatedAt.Add(c.cfg.RetryInterval(job.Spec))) {
			return nil // the resync tick comes back
		}
	case catalog.Running:
		// Invariant (adoption): a running job whose placement holds is
		// never placed again, so a new leader restarts no healthy task.
		if why := placementLost(job, nodes); why != "" {
			return c.place(ctx, job, jobs, nodes, why)
		}
		return nil
	default:
		return nil
	}
	return c.place(ctx, job, jobs, nodes, "")
}

// placementLost says why a running job's placement no longer holds (""
// when it does): no placement (a run started by an older version), a task
// on a node that is gone, DOWN, or restarted since (a new incarnation).
func placementLost(job catalog.Job, nodes []catalog.Node) string {
	if len(job.Placement) == 0 {
		return "no placement recorded"
	}
	byID := map[string]catalog.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for _, t := range job.Placement {
		n, ok := byID[t.Node]
		switch {
		case !ok:
			return fmt.Sprintf("node %s left the cluster", t.Node)
		case n.Status == catalog.NodeDown:
			return fmt.Sprintf("node %s is DOWN", t.Node)
		case n.Incarnation != t.Incarnation:
			return fmt.Sprintf("node %s restarted", t.Node)
		}
	}
	return ""
}

// place chooses nodes for the job's next attempt and records them; when
// none fit, a new job with schedule.strategy=reject fails, and any other
// joins the wait queue (WAITING, once).
func (c *Coordinator) place(ctx context.Context, job catalog.Job, jobs []catalog.Job, nodes []catalog.Node, why string) *catalog.Job {
	actx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	var heard []catalog.Node
	unheard := 0
	for _, n := range nodes {
		if n.Status == catalog.NodeDown || c.cfg.Heard(n) {
			heard = append(heard, n) // Choose refuses a DOWN node, saying why
		} else {
			unheard++
		}
	}
	placement, detail := Choose(job, jobs, heard)
	if placement == nil && unheard > 0 {
		// Not every node has spoken to this leader yet: decide when they
		// have, or are judged DOWN (within a session timeout).
		return nil
	}
	if placement == nil {
		fresh := job.State == catalog.Created || job.State == catalog.Scheduled
		switch {
		case fresh && job.Spec.Options["schedule.strategy"] == "reject":
			return c.set(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID, From: []catalog.JobState{job.State}, To: catalog.Failed,
				Attempt: catalog.AtAttempt(job.Attempt), Error: detail + " (schedule.strategy=reject)"})
		case job.State != catalog.Waiting:
			// Invariant (fencing): a running job that loses its nodes takes
			// a new attempt as it waits, so its old tasks commit nothing
			// more. The error of a failed attempt stays visible.
			pos := len(catalog.WaitQueue(jobs)) + 1
			reason := fmt.Sprintf("%s; position %d in the wait queue (schedule.strategy=wait)", detail, pos)
			if why != "" {
				reason = why + "; " + reason
			}
			return c.set(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID, From: []catalog.JobState{job.State}, To: catalog.Waiting,
				Attempt: catalog.AtAttempt(job.Attempt), NewAttempt: job.State == catalog.Running, Error: job.Error, Reason: reason})
		}
		return nil
	}
	where := describePlacement(placement)
	if job.State == catalog.Created {
		now := c.set(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID, From: []catalog.JobState{catalog.Created}, To: catalog.Scheduled,
			Attempt: catalog.AtAttempt(job.Attempt), Reason: fmt.Sprintf("%d tasks on %s", len(placement), where)})
		if now == nil {
			return nil
		}
		job = *now
	}
	reason := "tasks running on " + where
	if why != "" {
		reason = why + "; tasks moved to " + where
	}
	if job.State == catalog.Waiting {
		reason = "slots free; " + reason
	}
	// A new attempt: from here on, checkpoints and state changes of earlier
	// attempts (a previous process, a failed run, a lost node) are refused.
	return c.set(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID,
		From: []catalog.JobState{job.State}, To: catalog.Running, NewAttempt: true, Attempt: catalog.AtAttempt(job.Attempt),
		Placement: placement, Reason: reason})
}

// set writes one decision and returns the job as it is now (nil when the
// write failed: the next pass decides again).
func (c *Coordinator) set(ctx context.Context, cmd catalog.SetJobState) *catalog.Job {
	res, err := c.cat.SetJobState(ctx, cmd)
	if err != nil {
		c.log.Debug("placing job", "job", cmd.Name, "to", cmd.To, "err", err)
		return nil
	}
	return res.Job
}
