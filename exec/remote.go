package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sluice/catalog"
	"sluice/connectors"
)

// A pipeline's subtasks may run on several nodes. Its checkpoint
// coordinator runs on the node of subtask 0 (the pipeline's home); the
// coordinator and each task exchange the same few messages whether the
// task is local (channels) or remote (Transport, an RPC between nodes):
//
//	coordinator → task: trigger(id, final), commit(id, state, pos), final-failed
//	task → coordinator: ack(id, pos, state), eof, stop (the task's node stops it gracefully)
//
// Every message names the job, the pipeline, the subtask and the attempt;
// a node delivers it only to its run of exactly that attempt, so a
// zombie's messages (an older attempt) reach nothing.

// Message kinds.
const (
	MsgTrigger     = "trigger"
	MsgCommit      = "commit"
	MsgFinalFailed = "final-failed"
	MsgAck         = "ack"
	MsgEOF         = "eof"
	MsgStop        = "stop"
)

// TaskMessage is one message between a pipeline's coordinator and one of
// its tasks on another node.
type TaskMessage struct {
	Kind     string              `json:"kind"`
	JobID    uint64              `json:"job_id"`
	Attempt  int                 `json:"attempt"`
	Pipeline int                 `json:"pipeline"`
	Subtask  int                 `json:"subtask"`
	From     string              `json:"from,omitempty"` // the sending node
	ID       uint64              `json:"id,omitempty"`   // checkpoint id
	Final    bool                `json:"final,omitempty"`
	Position connectors.Position `json:"position,omitempty"`
	State    []byte              `json:"state,omitempty"`
	// SourceTime goes with Position in an ack (connectors.SourceClock).
	SourceTime time.Time `json:"source_time,omitempty"`
}

// Transport carries task messages to another node. Send returns once the
// node has delivered the message to its run (or refused it).
type Transport interface {
	Send(ctx context.Context, node string, m TaskMessage) error
}

// Delivery errors. ErrNoRunYet is worth retrying (the node has not started
// that attempt yet); ErrFenced is final (the attempt ended there or an
// older one was addressed).
var (
	ErrNoRunYet = errors.New("no run of that attempt on this node yet")
	ErrFenced   = errors.New("that attempt is not running on this node any more")
)

// Deliver hands a message from another node to the local run it names.
func (e *Engine) Deliver(ctx context.Context, m TaskMessage) error {
	e.mu.Lock()
	r := e.runs[m.JobID]
	ran := e.ran[m.JobID]
	e.mu.Unlock()
	// Invariant (fencing): a message reaches only the run of exactly the
	// attempt it names.
	if r == nil || r.job.Attempt != m.Attempt {
		if (r != nil && r.job.Attempt > m.Attempt) || ran >= m.Attempt || e.jobAttempt(m.JobID) > m.Attempt {
			return fmt.Errorf("%w: job %d attempt %d", ErrFenced, m.JobID, m.Attempt)
		}
		return fmt.Errorf("%w: job %d attempt %d", ErrNoRunYet, m.JobID, m.Attempt)
	}
	p := r.pipelineOf(m.Pipeline)
	if p == nil {
		return fmt.Errorf("%w: job %d has no pipeline %d here", ErrFenced, m.JobID, m.Pipeline)
	}
	// push reports how a hand-over into the run ended: delivered, the run
	// ended (fenced), or the caller gave up.
	push := func(delivered bool) error {
		switch {
		case delivered:
			return nil
		case r.ctx.Err() != nil:
			return fmt.Errorf("%w: job %d attempt %d ended", ErrFenced, m.JobID, m.Attempt)
		}
		return ctx.Err()
	}
	switch m.Kind {
	case MsgTrigger, MsgCommit:
		t := p.local(m.Subtask)
		if t == nil {
			return fmt.Errorf("%w: task %d of pipeline %d does not run here", ErrFenced, m.Subtask, m.Pipeline)
		}
		// Invariant: each checkpoint's trigger and commit reach a task once
		// (a message retried after a lost answer arrives twice).
		t.rx.Lock()
		defer t.rx.Unlock()
		last := &t.lastTrigger
		if m.Kind == MsgCommit {
			last = &t.lastCommit
		}
		if m.ID <= *last {
			return nil
		}
		if m.Kind == MsgCommit {
			p.markStarted() // a committed checkpoint of this attempt: the start is durable
		}
		err := push(t.take(m, r.ctx.Done(), ctx.Done()))
		if err == nil {
			*last = m.ID
		}
		return err
	case MsgFinalFailed:
		p.failFinal()
		return nil
	}
	if !p.home {
		return fmt.Errorf("%w: pipeline %d is not coordinated here", ErrFenced, m.Pipeline)
	}
	switch m.Kind {
	case MsgAck:
		return push(offer(p.acks, ack{subtask: m.Subtask, id: m.ID, pos: m.Position, at: m.SourceTime, state: m.State}, r.ctx.Done(), ctx.Done()))
	case MsgEOF:
		return push(offer(p.eofs, m.Subtask, r.ctx.Done(), ctx.Done()))
	case MsgStop:
		p.askStop(m.From)
		return nil
	}
	return fmt.Errorf("unknown task message %q", m.Kind)
}

func (e *Engine) jobAttempt(id uint64) int {
	for _, j := range e.cat.Jobs() {
		if j.ID == id {
			return j.Attempt
		}
	}
	return 0
}

// sendRemote sends m to node, retrying while the node is unreachable or
// has not started the attempt yet, for at most RPCTimeout.
func (e *Engine) sendRemote(ctx context.Context, node string, m TaskMessage) error {
	if e.cfg.Transport == nil {
		return fmt.Errorf("task %d of pipeline %d is placed on node %s, but this node has no transport to other nodes", m.Subtask, m.Pipeline, node)
	}
	m.From = e.cfg.NodeID
	deadline := time.Now().Add(e.cfg.RPCTimeout)
	wait := 20 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
		err := e.cfg.Transport.Send(sctx, node, m)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrFenced):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("%s to node %s for pipeline %d task %d: %w", m.Kind, node, m.Pipeline, m.Subtask, err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, time.Second)
	}
}

// offer sends v on ch unless a or b closes first, and reports whether it
// sent (a nil channel never closes).
func offer[T any](ch chan<- T, v T, a, b <-chan struct{}) bool {
	select {
	case ch <- v:
		return true
	case <-a:
	case <-b:
	}
	return false
}

// take hands a trigger or commit to the task, as its coordinator does
// (locally, or for a remote one through Deliver), unless a or b closes first.
func (t *task) take(m TaskMessage, a, b <-chan struct{}) bool {
	switch m.Kind {
	case MsgTrigger:
		return offer(t.trigger, trigger{id: m.ID, final: m.Final}, a, b)
	case MsgCommit:
		return offer(t.commits, commitMsg{id: m.ID, state: m.State, pos: m.Position}, a, b)
	}
	return true
}

// message is m addressed to this run's job, attempt and pipeline.
func (p *pipelineRun) message(kind string, subtask int) TaskMessage {
	return TaskMessage{Kind: kind, JobID: p.run.job.ID, Attempt: p.run.job.Attempt, Pipeline: p.pipeline.ID, Subtask: subtask}
}

// toTask delivers a coordinator message to a subtask, local or remote.
func (e *Engine) toTask(ctx context.Context, p *pipelineRun, subtask int, m TaskMessage) error {
	if t := p.local(subtask); t != nil {
		if !t.take(m, ctx.Done(), nil) {
			return ctx.Err()
		}
		return nil
	}
	return e.sendRemote(ctx, p.nodes[subtask], m)
}

// forward runs on a node that holds some of a pipeline's tasks but not its
// coordinator: it sends the local tasks' acks and end-of-input notices to
// the pipeline's home, and asks it for a final checkpoint when this node
// stops the run gracefully. It ends with the run.
func (e *Engine) forward(ctx context.Context, p *pipelineRun) {
	home := p.nodes[0]
	stop := p.run.stop
	for {
		var m TaskMessage
		select {
		case <-ctx.Done():
			return
		case a := <-p.acks:
			m = p.message(MsgAck, a.subtask)
			m.ID, m.Position, m.State, m.SourceTime = a.id, a.pos, a.state, a.at
		case s := <-p.eofs:
			m = p.message(MsgEOF, s)
		case <-stop:
			stop = nil
			m = p.message(MsgStop, -1)
		}
		if err := e.sendRemote(ctx, home, m); err != nil && ctx.Err() == nil {
			if m.Kind == MsgStop {
				continue // the home stops on its own, or the run is aborted
			}
			p.run.fail(fmt.Errorf("pipeline %d: lost the checkpoint coordinator on node %s: %w", p.pipeline.ID, home, err))
			return
		}
	}
}

// placedTasks returns the subtask → node map of each pipeline in job's
// placement.
func placedTasks(job catalog.Job) map[int]map[int]string {
	out := map[int]map[int]string{}
	for _, t := range job.Placement {
		if out[t.Pipeline] == nil {
			out[t.Pipeline] = map[int]string{}
		}
		out[t.Pipeline][t.Subtask] = t.Node
	}
	return out
}
