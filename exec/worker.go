package exec

import (
	"context"
	"errors"
	"fmt"

	"sluice/catalog"
)

// reconcile is one pass of the worker: run what the catalog places on
// this node, stop what it no longer does. (Placement is the coordinator's,
// package exec/coordinator, on the leader.)
func (e *Engine) reconcile(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if !e.cfg.Connected() {
		// Out of touch with the leader for a session: it moves this node's
		// tasks elsewhere, so they must not keep writing here.
		e.stopAll()
		return
	}
	jobs := e.cat.Jobs()
	seen := map[uint64]bool{}
	for _, job := range jobs {
		seen[job.ID] = true
		e.work(ctx, job)
	}
	e.mu.Lock()
	var gone []*jobRun
	for id, r := range e.runs {
		if !seen[id] {
			gone = append(gone, r)
		}
	}
	e.mu.Unlock()
	for _, r := range gone { // dropped jobs
		e.stopRun(r, false)
		e.metrics.dropJob(r.job.Name)
		e.ckptDur.drop(r.job.Name)
	}
	e.board.keep(seen)
	e.mu.Lock()
	for id := range e.ran {
		if !seen[id] {
			delete(e.ran, id)
		}
	}
	e.mu.Unlock()
}

// mine returns the tasks the job's current placement gives this node's
// incarnation (none: nil).
func (e *Engine) mine(job catalog.Job) []catalog.TaskPlacement {
	var out []catalog.TaskPlacement
	for _, t := range job.Placement {
		if t.Node == e.cfg.NodeID && t.Incarnation == e.cfg.Incarnation {
			out = append(out, t)
		}
	}
	return out
}

// work reconciles one job with this node's run of it.
func (e *Engine) work(ctx context.Context, job catalog.Job) {
	e.mu.Lock()
	r := e.runs[job.ID]
	e.mu.Unlock()
	mine := e.mine(job)
	if r != nil {
		select {
		case <-r.done:
			e.complete(ctx, job, r)
			return
		default:
		}
		switch {
		case !job.State.Active():
			e.stopRun(r, true) // PAUSE: a final checkpoint first
		case job.Attempt != r.job.Attempt || len(mine) == 0:
			// Another attempt owns the job now (moved, or restarted by the
			// coordinator): this one is fenced; stop it at once.
			e.log.Info("job moved away", "job", job.Name, "attempt", r.job.Attempt, "now", job.Attempt)
			e.stopRun(r, false)
		default:
			r.limit.set(optInt(job.Spec.Options, "read.limit.rows_per_second"), optInt(job.Spec.Options, "read.limit.bytes_per_second"))
		}
		return
	}
	// Invariant: a worker runs exactly what the catalog places on it, each
	// attempt at most once in this process.
	if job.State != catalog.Running || len(mine) == 0 {
		return
	}
	e.mu.Lock()
	if a, ok := e.ran[job.ID]; ok && a >= job.Attempt {
		e.mu.Unlock()
		return
	}
	e.ran[job.ID] = job.Attempt
	slots := make([]int, len(mine))
	for i, t := range mine {
		slots[i] = t.Slot
	}
	e.slots.hold(jobRef{job.ID, job.Name}, slots)
	e.mu.Unlock()
	e.start(ctx, job, mine)
}

// complete handles a run whose tasks have all ended on their own: done,
// retry (the coordinator starts the next attempt after retry.interval),
// or failed. Every change is fenced by the run's attempt. The run is
// forgotten only once its outcome is recorded (or refused for good): a
// write lost to a missing quorum is made again on a later pass, so the
// job never stays RUNNING with nobody running it.
func (e *Engine) complete(ctx context.Context, job catalog.Job, r *jobRun) {
	active := []catalog.JobState{catalog.Running, catalog.Scheduled, catalog.Restarting, catalog.Waiting}
	var err error
	switch {
	case r.err != nil && job.Restarts < r.ckpt.retryTimes:
		actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
		_, err = e.cat.SetJobState(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID, From: active, To: catalog.Restarting,
			Error: r.err.Error(), IncRestarts: true, Attempt: catalog.AtAttempt(r.job.Attempt),
			Reason: fmt.Sprintf("restart %d of %d in %s from the last checkpoint", job.Restarts+1, r.ckpt.retryTimes, r.ckpt.retryInterval)})
		cancel()
	case r.err != nil:
		_, err = e.transition(ctx, job, r.job.Attempt, active, catalog.Failed, r.err.Error(), fmt.Sprintf("retry.times %d exhausted", r.ckpt.retryTimes))
	case r.finished():
		_, err = e.transition(ctx, job, r.job.Attempt, active, catalog.Finished, "", "every source reached its end")
	}
	// Otherwise the run was stopped, or its part here ended with the
	// pipeline's final checkpoint: its home records the outcome.
	if err != nil && !errors.Is(err, catalog.ErrBadTransition) && !errors.Is(err, catalog.ErrJobNotFound) && !errors.Is(err, catalog.ErrStaleAttempt) {
		e.log.Warn("the end of a run is not recorded yet; trying again", "job", job.Name, "attempt", r.job.Attempt, "err", err)
		return
	}
	e.forget(r)
}
