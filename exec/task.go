package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/failpoint"
)

// Task states shown in sluice.tasks.
const (
	TaskStarting = "STARTING"
	TaskRunning  = "RUNNING"
	TaskDraining = "DRAINING"
	TaskFinished = "FINISHED"
	TaskStopped  = "STOPPED"
	TaskFailed   = "FAILED"
	// TaskStalled: a sink call has not returned for task.stall_timeout.
	TaskStalled = "STALLED"
)

// errFinalAborted ends a task whose final checkpoint failed.
var errFinalAborted = errors.New("final checkpoint failed")

// trigger asks a source stage to emit a barrier.
type trigger struct {
	id    uint64
	final bool // the source stops after this barrier
}

// barrier travels in-band between batches.
type barrier struct {
	id    uint64
	pos   connectors.Position // position of the last batch before the barrier
	at    time.Time           // source time the position is current to (connectors.SourceClock)
	final bool
}

// commitMsg tells a sink stage that a checkpoint is committed in the catalog.
type commitMsg struct {
	id    uint64
	state []byte
	pos   connectors.Position // the task's source position at the checkpoint
}

// task is one subtask of one pipeline: source → transforms → sink.
type task struct {
	pipeline, subtask int
	slot              int
	attempt           int
	state             atomic.Value // string

	// restored from the last completed checkpoint
	startPos     connectors.Position
	startAt      time.Time // the checkpoint's source time
	restoreID    uint64
	restoreState []byte

	trigger chan trigger
	commits chan commitMsg

	eof atomic.Bool // the source reached the end of its input
	rep atomic.Pointer[repHolder]

	// rx orders the delivery of remote messages (Engine.Deliver): the
	// last checkpoint id triggered and committed through it.
	rx                      sync.Mutex
	lastTrigger, lastCommit uint64

	busy    atomic.Int64 // unix nanos when the current sink call began; 0 between calls
	stalled atomic.Bool  // reported STALLED (see Engine.watchStalls)
}

// repHolder holds the task's source as a Reporter: live while it runs,
// then a copy of its last report.
type repHolder struct{ r connectors.Reporter }

func (t *task) reporter() connectors.Reporter {
	if h := t.rep.Load(); h != nil {
		return h.r
	}
	return nil
}

// frozen is a stopped source's last report.
type frozen struct {
	tables []connectors.TableState
	status connectors.SourceStatus
}

func freeze(r connectors.Reporter) frozen { return frozen{r.TableStates(), r.Status()} }

func (f frozen) TableStates() []connectors.TableState { return f.tables }
func (f frozen) Status() connectors.SourceStatus      { return f.status }

// inSink runs one call into the sink, recording how long it has been in it.
func (t *task) inSink(f func() error) error {
	t.busy.Store(time.Now().UnixNano())
	defer t.busy.Store(0)
	return f()
}

// sinkBusySince is when the current sink call began (zero when none runs).
func (t *task) sinkBusySince() time.Time {
	if n := t.busy.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (t *task) setState(s string) { t.state.Store(s) }
func (t *task) getState() string {
	s, _ := t.state.Load().(string)
	return s
}

// item is a batch in flight with the source table it came from (transforms
// may rename Batch.Table; metrics count by source table), or a barrier.
type item struct {
	b       connectors.Batch
	origin  connectors.TableID
	barrier *barrier
}

// stages are the connector instances of a task.
type stages struct {
	src        connectors.Source
	transforms []connectors.Transform
	sink       connectors.Sink
}

func (e *Engine) build(job catalog.Job, pl catalog.Pipeline, subtask int) (stages, error) {
	var st stages
	env := connectors.Env{Job: job.Name, JobID: job.ID, Attempt: job.Attempt, Pipeline: pl.ID, Subtask: subtask, Parallelism: pl.Parallelism, Alloc: e.cfg.Alloc, Logger: e.log,
		LastCheckpointID: e.cat.MaxCheckpointID(job.ID, pl.ID)}
	byID := map[int]catalog.Vertex{}
	for _, v := range job.Plan.Vertices {
		byID[v.ID] = v
	}
	for _, id := range pl.Vertices {
		v := byID[id]
		ref := job.Spec.Ref(v)
		kind := connectors.Kind(v.Kind)
		spec, err := e.cfg.Registry.Lookup(ref.Connector, kind)
		if err != nil {
			return st, err
		}
		opts, err := e.cat.OpenOptions(ref.Options) // sealed secrets, opened only here
		if err != nil {
			return st, err
		}
		cfg, err := spec.Options.Validate(spec.Name, opts)
		if err != nil {
			return st, err
		}
		switch kind {
		case connectors.KindSource:
			st.src, err = spec.NewSource(cfg, env)
		case connectors.KindTransform:
			var t connectors.Transform
			t, err = spec.NewTransform(cfg, env)
			st.transforms = append(st.transforms, t)
		case connectors.KindSink:
			st.sink, err = spec.NewSink(cfg, env)
		}
		if err != nil {
			return st, fmt.Errorf("%s %s: %w", kind, spec.Name, err)
		}
	}
	if st.src == nil || st.sink == nil {
		return st, fmt.Errorf("pipeline %d has no source or no sink", pl.ID)
	}
	return st, nil
}

// runTask runs one task until its final checkpoint is committed (end of
// input, or a graceful stop) or ctx ends. It returns nil only in the first
// case.
func (e *Engine) runTask(ctx context.Context, p *pipelineRun, t *task, st stages) (err error) {
	defer func() {
		if cerr := st.src.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close source: %w", cerr)
		}
		if cerr := st.sink.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close sink: %w", cerr)
		}
	}()
	if err := st.src.Open(ctx, t.startPos); err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	if rep, ok := st.src.(connectors.Reporter); ok {
		t.rep.Store(&repHolder{rep})
		defer func() { t.rep.Store(&repHolder{freeze(rep)}) }() // runs before Close
	}
	if err := st.sink.Open(ctx); err != nil {
		return fmt.Errorf("open sink: %w", err)
	}
	tp, _ := st.sink.(connectors.TwoPhaseSink)
	if tp != nil {
		// Invariant (I7): before writing, the sink commits what the catalog
		// committed and discards what it did not.
		if err := tp.Recover(ctx, t.restoreID, t.restoreState); err != nil {
			return fmt.Errorf("recover sink at checkpoint %d: %w", t.restoreID, err)
		}
	}
	t.setState(TaskRunning)

	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()
	queue := make(chan item, e.cfg.QueueDepth)
	srcErr := make(chan error, 1)
	go func() {
		defer close(queue)
		srcErr <- e.sourceStage(srcCtx, p, t, st, queue)
	}()
	err = e.sinkStage(ctx, p, t, st, tp, queue)
	cancelSrc()
	for it := range queue { // release what the source still queued
		it.b.Release()
	}
	if serr := <-srcErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	return err
}

// sourceStage reads, rate-limits and transforms batches onto queue, and
// turns checkpoint triggers into barriers. A trigger interrupts a Read that
// is waiting for data (sources consume nothing on a cancelled Read), so an
// idle or slow source does not hold checkpoints back.
func (e *Engine) sourceStage(ctx context.Context, p *pipelineRun, t *task, st stages, queue chan<- item) error {
	triggers := make(chan trigger, cap(t.trigger))
	var mu sync.Mutex
	var cancelRead context.CancelFunc
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() { // forwards triggers and interrupts the current Read
		for {
			select {
			case tr := <-t.trigger:
				select {
				case triggers <- tr:
				case <-watchDone:
					return
				}
				mu.Lock()
				if cancelRead != nil {
					cancelRead()
				}
				mu.Unlock()
			case <-watchDone:
				return
			}
		}
	}()

	lastPos := t.startPos
	send := func(it item) error {
		select {
		case queue <- it:
			return nil
		case <-ctx.Done():
			it.b.Release()
			return ctx.Err()
		}
	}
	positioner, _ := st.src.(connectors.Positioner)
	clock, _ := st.src.(connectors.SourceClock)
	lastAt := t.startAt
	onTrigger := func(tr trigger) (stop bool, err error) {
		pos, at := lastPos, lastAt
		if positioner != nil {
			if p := positioner.Position(); p != nil {
				pos = p
			}
		}
		switch {
		case clock != nil:
			if c := clock.SourceTime(); !c.IsZero() {
				at = c
			}
		case !t.eof.Load():
			at = time.Now() // a source without a clock is taken as current
		}
		return tr.final, send(item{barrier: &barrier{id: tr.id, pos: pos, at: at.UTC(), final: tr.final}})
	}
	started := false
	for {
		select { // a pending trigger goes first: the barrier follows everything read so far
		case tr := <-triggers:
			if stop, err := onTrigger(tr); stop || err != nil {
				return err
			}
			continue
		default:
		}
		if !started || t.eof.Load() {
			// Invariant (I1): nothing is read before the position the
			// pipeline starts from is durable in the catalog, so a crash
			// before the first regular checkpoint replays from that
			// position instead of starting afresh at a later one.
			var wait <-chan struct{}
			if !started {
				wait = p.started
			}
			select {
			case <-wait:
				started = true
			case tr := <-triggers:
				if stop, err := onTrigger(tr); stop || err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		mu.Lock()
		cancelRead = cancel
		mu.Unlock()
		b, err := st.src.Read(rctx)
		mu.Lock()
		cancelRead = nil
		mu.Unlock()
		interrupted := err != nil && rctx.Err() != nil && ctx.Err() == nil
		cancel()
		if interrupted {
			continue // a trigger arrived: the loop emits its barrier
		}
		if errors.Is(err, io.EOF) {
			t.eof.Store(true)
			select {
			case p.eofs <- t.subtask:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("source %s: %w", p.run.job.Spec.Source.Connector, err)
		}
		origin := b.Table
		if b.DDL != "" {
			e.eventAsync(p.run.job.Name, "SCHEMA_CHANGE", fmt.Sprintf("table %s: %s", origin, b.DDL))
		}
		rows, bytes := b.Rows(), b.Bytes()
		p.run.counters(origin).source(rows, bytes)
		_ = p.run.limit.wait(ctx, rows, bytes)
		for _, tr := range st.transforms {
			if b, err = tr.Apply(ctx, b); err != nil {
				b.Release()
				return fmt.Errorf("transform: %w", err)
			}
		}
		lastPos = b.Position
		if !b.EventTime.IsZero() {
			lastAt = b.EventTime
		}
		if err := send(item{b: b, origin: origin}); err != nil {
			return err
		}
	}
}

// sinkStage writes batches, pre-commits at barriers and commits when the
// coordinator says a checkpoint is committed in the catalog.
func (e *Engine) sinkStage(ctx context.Context, p *pipelineRun, t *task, st stages, tp connectors.TwoPhaseSink, queue <-chan item) error {
	var finalID uint64
	var finalFailed <-chan struct{} // watched only once the final barrier passed
	acker, _ := st.src.(connectors.PositionAcker)
	commit := func(c commitMsg) (done bool, err error) {
		if tp != nil {
			if err := t.inSink(func() error { return tp.Commit(ctx, c.id, c.state) }); err != nil {
				return false, fmt.Errorf("commit checkpoint %d: %w", c.id, err)
			}
		}
		// Invariant: a source learns a position is safe only after the
		// catalog committed its checkpoint and this task's sink committed.
		if acker != nil {
			if err := acker.Ack(ctx, c.pos); err != nil {
				e.log.Warn("source ack failed", "job", p.run.job.Name, "task", t.subtask, "err", err)
			}
		}
		return finalID != 0 && c.id >= finalID, nil
	}
	// drainCommits handles the commits already sent.
	drainCommits := func() (done bool, err error) {
		for {
			select {
			case c := <-t.commits:
				if done, err := commit(c); done || err != nil {
					return done, err
				}
			default:
				return false, nil
			}
		}
	}
	for {
		select {
		case it, ok := <-queue:
			if !ok {
				if finalID != 0 {
					queue = nil // wait for the final commit
					continue
				}
				return ctx.Err() // the source stage failed; runTask reports why
			}
			if it.barrier == nil {
				err := t.inSink(func() error { return st.sink.Write(ctx, it.b) })
				if err == nil {
					p.run.counters(it.origin).sink(it.b.Rows(), it.b.Bytes(), it.b.EventTime)
				}
				it.b.Release()
				if err != nil {
					return fmt.Errorf("sink %s: %w", p.run.job.Spec.Sink.Connector, err)
				}
				continue
			}
			// Invariant: a sink sees Commit(N) before barrier N+1 whenever
			// the catalog committed N: the coordinator sent the commit
			// before it triggered N+1, so it is in t.commits by now.
			if done, err := drainCommits(); done || err != nil {
				return err
			}
			bar := it.barrier
			flush := st.sink.Flush
			if d, ok := st.sink.(connectors.Drainer); ok && bar.final {
				flush = d.Drain
			}
			if err := t.inSink(func() error { return flush(ctx) }); err != nil {
				return fmt.Errorf("flush sink at checkpoint %d: %w", bar.id, err)
			}
			var state []byte
			if tp != nil {
				var err error
				if err = t.inSink(func() error { state, err = tp.PreCommit(ctx, bar.id); return err }); err != nil {
					return fmt.Errorf("pre-commit checkpoint %d: %w", bar.id, err)
				}
			}
			if err := failpoint.Hit(failpoint.AfterSinkPreCommit); err != nil {
				return err
			}
			if bar.final {
				finalID = bar.id
				finalFailed = p.finalFailed
				t.setState(TaskDraining)
			}
			select {
			case p.acks <- ack{subtask: t.subtask, id: bar.id, pos: bar.pos, at: bar.at, state: state}:
			case <-ctx.Done():
				return ctx.Err()
			}
		case c := <-t.commits:
			if done, err := commit(c); done || err != nil {
				return err
			}
		case <-finalFailed:
			return errFinalAborted
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ack is a task's answer to a barrier.
type ack struct {
	subtask int
	id      uint64
	pos     connectors.Position
	at      time.Time
	state   []byte
}

// pipelineRun is this node's part of one pipeline of a running job: the
// tasks placed here and, on the pipeline's home (the node of subtask 0),
// its checkpoint coordinator.
type pipelineRun struct {
	run      *jobRun
	pipeline catalog.Pipeline
	tasks    []*task        // the subtasks placed on this node
	nodes    map[int]string // subtask → node, every subtask of the pipeline
	home     bool           // this node coordinates the pipeline's checkpoints
	// acks and eofs come from the local tasks and, on the home, from the
	// remote ones (Deliver); elsewhere forward sends them home.
	acks        chan ack
	eofs        chan int
	stopAsked   chan string   // a node holding some of the tasks stops them gracefully (home only)
	finalFailed chan struct{} // closed when the final checkpoint failed
	failOnce    sync.Once
	// started is closed once the pipeline has a completed checkpoint: at
	// once when it was restored from one, else when its initial checkpoint
	// (taken before any Read) committed. Sources read only after it.
	started     chan struct{}
	startedOnce sync.Once
	// ended: the final checkpoint, taken because every subtask's source
	// reached its end, committed (set by the coordinator).
	ended atomic.Bool
}

// local returns the subtask when it runs on this node, else nil.
func (p *pipelineRun) local(subtask int) *task {
	for _, t := range p.tasks {
		if t.subtask == subtask {
			return t
		}
	}
	return nil
}

func (p *pipelineRun) markStarted() { p.startedOnce.Do(func() { close(p.started) }) }
func (p *pipelineRun) failFinal()   { p.failOnce.Do(func() { close(p.finalFailed) }) }

func (p *pipelineRun) askStop(node string) {
	select {
	case p.stopAsked <- node:
	default: // one request is enough
	}
}

// remote lists the nodes other than this one that run some of the
// pipeline's tasks, and one subtask of each.
func (p *pipelineRun) remote() map[string]int {
	out := map[string]int{}
	for s, n := range p.nodes {
		if p.local(s) == nil {
			if o, ok := out[n]; !ok || s < o {
				out[n] = s
			}
		}
	}
	return out
}
