package exec

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"sluice/catalog"
	"sluice/connectors/failpoint"
)

// checkpointConfig is a job's checkpoint and retry settings.
type checkpointConfig struct {
	interval, timeout time.Duration
	retained          int
	retryTimes        int
	retryInterval     time.Duration
	stallTimeout      time.Duration
}

func (e *Engine) checkpointConfig(spec catalog.JobSpec) checkpointConfig {
	c := checkpointConfig{interval: 30 * time.Second, timeout: 10 * time.Minute, retained: 3, retryTimes: 3, retryInterval: 10 * time.Second,
		stallTimeout: 5 * time.Minute}
	if e.cfg.JobOptions == nil {
		return c
	}
	cfg, err := e.cfg.JobOptions(spec)
	if err != nil { // validated at CREATE; keep the defaults
		return c
	}
	return checkpointConfig{interval: cfg.Duration("checkpoint.interval"), timeout: cfg.Duration("checkpoint.timeout"),
		retained: int(cfg.Int("checkpoint.retained")), retryTimes: int(cfg.Int("retry.times")),
		retryInterval: cfg.Duration("retry.interval"), stallTimeout: cfg.Duration("task.stall_timeout")}
}

// errNoStart fails a run whose start position could not be recorded: its
// sources must not read before it is (invariant I1).
var errNoStart = errors.New("the pipeline's start position could not be recorded in the catalog")

type inflight struct {
	id        uint64
	final     bool
	triggered time.Time
	acks      map[int]ack
}

// coordinate triggers the checkpoints of one pipeline every interval, and
// a final one when every source reached its end or a graceful stop is
// asked (here, or by a node that runs some of the tasks). It commits a
// checkpoint to the catalog once every task acked, and only then tells
// sinks to commit and sources that positions are safe. It runs on the
// pipeline's home; the tasks on other nodes take part through messages
// (remote.go), so every step below is the same for a local and a remote
// task.
func (e *Engine) coordinate(ctx context.Context, p *pipelineRun) {
	r := p.run
	cc := r.ckpt
	par := p.pipeline.Parallelism
	next := e.cat.MaxCheckpointID(r.job.ID, p.pipeline.ID) + 1
	tick := time.NewTicker(cc.interval)
	defer tick.Stop()
	pending := map[uint64]*inflight{}
	finalTriggered, wantFinal, eofs := false, false, map[int]bool{}
	stop := r.stop // set to nil here once seen: a closed channel would spin

	trig := func(final bool) bool {
		f := &inflight{id: next, final: final, triggered: time.Now().UTC(), acks: map[int]ack{}}
		next++
		pending[f.id] = f
		finalTriggered = finalTriggered || final
		for s := 0; s < par; s++ {
			m := p.message(MsgTrigger, s)
			m.ID, m.Final = f.id, final
			if err := e.toTask(ctx, p, s, m); err != nil {
				if ctx.Err() == nil {
					r.fail(fmt.Errorf("trigger checkpoint %d: %w", f.id, err))
				}
				return false
			}
		}
		return true
	}
	// A pipeline without a completed checkpoint records where it starts
	// before its sources read anything (see sourceStage).
	var initial uint64
	select {
	case <-p.started:
	default:
		initial = next
		if !trig(false) {
			return
		}
	}
	for {
		// Invariant: one checkpoint in flight, the final one too: N+1 is
		// triggered only once N is committed (and its commits delivered to
		// every sink, local or remote) or failed, so a sink at barrier N+1
		// knows that a transaction it prepared for an earlier id it was not
		// told to commit will never be committed (see sinkStage).
		if wantFinal && !finalTriggered && len(pending) == 0 {
			if !trig(true) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for id, f := range pending {
				if now.Sub(f.triggered) > cc.timeout {
					delete(pending, id)
					e.failCheckpoint(ctx, p, f, fmt.Sprintf("not acknowledged by every task within checkpoint.timeout %s", cc.timeout))
					if id == initial {
						r.fail(fmt.Errorf("%w: checkpoint %d not acknowledged within checkpoint.timeout %s", errNoStart, id, cc.timeout))
						return
					}
				}
			}
			if !finalTriggered && len(pending) == 0 {
				if !trig(false) {
					return
				}
			}
		case s := <-p.eofs:
			if eofs[s] = true; len(eofs) == par {
				wantFinal = true
			}
		case <-stop:
			wantFinal = true
			stop = nil
		case node := <-p.stopAsked:
			e.log.Info("final checkpoint asked by a node that stops its tasks", "job", r.job.Name, "pipeline", p.pipeline.ID, "node", node)
			wantFinal = true
		case a := <-p.acks:
			f := pending[a.id]
			if f == nil {
				continue // a late ack of a failed checkpoint
			}
			f.acks[a.subtask] = a
			if len(f.acks) < par {
				continue
			}
			delete(pending, f.id)
			ok := e.commitCheckpoint(ctx, p, f)
			if f.id == initial {
				if !ok {
					r.fail(fmt.Errorf("%w: checkpoint %d was not committed", errNoStart, f.id))
					return
				}
				p.markStarted()
			}
			if ok && f.final {
				p.ended.Store(len(eofs) == par)
				return
			}
		}
	}
}

// commitCheckpoint records a complete checkpoint in the catalog, then lets
// sinks commit and sources release. It reports success.
func (e *Engine) commitCheckpoint(ctx context.Context, p *pipelineRun, f *inflight) bool {
	r := p.run
	cp := catalog.Checkpoint{JobID: r.job.ID, Job: r.job.Name, Pipeline: p.pipeline.ID, ID: f.id, Attempt: r.job.Attempt,
		Final: f.final, TriggeredAt: f.triggered}
	for _, a := range f.acks {
		cp.Tasks = append(cp.Tasks, catalog.TaskCheckpoint{Subtask: a.subtask, Position: a.pos, SinkState: a.state, SourceTime: a.at})
	}
	sort.Slice(cp.Tasks, func(i, j int) bool { return cp.Tasks[i].Subtask < cp.Tasks[j].Subtask })
	actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
	err := e.cat.CommitCheckpoint(actx, catalog.CommitCheckpoint{Checkpoint: cp, Retained: r.ckpt.retained})
	cancel()
	if err != nil {
		if errors.Is(err, catalog.ErrStaleAttempt) || errors.Is(err, catalog.ErrJobNotFound) {
			// Invariant: a fenced attempt commits nothing more; its run ends.
			r.fail(fmt.Errorf("checkpoint %d refused: %w", f.id, err))
			return false
		}
		e.failCheckpoint(ctx, p, f, "commit in catalog: "+err.Error())
		return false
	}
	e.ckptDur.observe(r.job.Name, time.Since(f.triggered))
	// Invariant: sinks commit only after the checkpoint is in the catalog.
	if err := failpoint.Hit(failpoint.BeforeSinkCommit); err != nil {
		r.fail(err)
		return false
	}
	for s := 0; s < p.pipeline.Parallelism; s++ {
		a := f.acks[s]
		m := p.message(MsgCommit, s)
		m.ID, m.State, m.Position = f.id, a.state, a.pos
		if err := e.toTask(ctx, p, s, m); err != nil {
			// The checkpoint is committed: a sink that did not hear of it
			// commits it when the next attempt recovers from it.
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("commit of checkpoint %d to task %d: %w", f.id, s, err))
			}
			return false
		}
	}
	return true
}

// watchStalls reports a task whose sink call has not returned for
// task.stall_timeout as STALLED (an event, and the state in sluice.tasks),
// and its recovery. It stops nothing: a slow sink is slow, not dead —
// node liveness is a different clock, and checkpoint.timeout (or the
// sink's own timeouts) decide failure.
func (e *Engine) watchStalls(ctx context.Context, p *pipelineRun) {
	limit := p.run.ckpt.stallTimeout
	tick := time.NewTicker(max(limit/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			e.checkStalls(ctx, p, limit, now)
		}
	}
}

func (e *Engine) checkStalls(ctx context.Context, p *pipelineRun, limit time.Duration, now time.Time) {
	for _, t := range p.tasks {
		since := t.sinkBusySince()
		stalled := !since.IsZero() && now.Sub(since) > limit
		switch {
		case stalled && t.stalled.CompareAndSwap(false, true):
			if t.getState() == TaskRunning {
				t.setState(TaskStalled)
			}
			e.event(ctx, p.run.job.Name, "TASK_STALLED", fmt.Sprintf("pipeline %d task %d on node %s: a sink call has not returned for %s (task.stall_timeout %s)",
				p.pipeline.ID, t.subtask, e.cfg.NodeID, now.Sub(since).Round(time.Millisecond), limit))
		case !stalled && t.stalled.CompareAndSwap(true, false):
			if t.getState() == TaskStalled {
				t.setState(TaskRunning)
			}
			e.event(ctx, p.run.job.Name, "TASK_RESUMED", fmt.Sprintf("pipeline %d task %d on node %s: the sink answers again", p.pipeline.ID, t.subtask, e.cfg.NodeID))
		}
	}
}

// failCheckpoint records a failed checkpoint; the last completed one stays.
func (e *Engine) failCheckpoint(ctx context.Context, p *pipelineRun, f *inflight, why string) {
	r := p.run
	actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
	defer cancel()
	err := e.cat.FailCheckpoint(actx, catalog.FailCheckpoint{Checkpoint: catalog.Checkpoint{JobID: r.job.ID, Job: r.job.Name,
		Pipeline: p.pipeline.ID, ID: f.id, Attempt: r.job.Attempt, Final: f.final, TriggeredAt: f.triggered, Error: why}})
	if err != nil {
		e.log.Warn("checkpoint failure not recorded", "job", r.job.Name, "checkpoint", f.id, "err", err)
	}
	if f.final {
		p.failFinal()
		for node, s := range p.remote() {
			if err := e.sendRemote(ctx, node, p.message(MsgFinalFailed, s)); err != nil {
				r.fail(fmt.Errorf("final checkpoint %d failed, and node %s was not told: %w", f.id, node, err))
			}
		}
	}
}
