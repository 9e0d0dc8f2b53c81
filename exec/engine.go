package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/catalog"
	"sluice/connectors"
)

// Catalog is what the engine needs of the replicated catalog.
// *catalog.Catalog implements it.
type Catalog interface {
	Jobs() []catalog.Job
	Nodes() []catalog.Node
	Changed() <-chan struct{}
	SetJobState(ctx context.Context, cmd catalog.SetJobState) (catalog.Result, error)
	AddEvent(ctx context.Context, e catalog.Event) error
	LastCheckpoint(jobID uint64, pipeline int) (catalog.Checkpoint, bool)
	MaxCheckpointID(jobID uint64, pipeline int) uint64
	CommitCheckpoint(ctx context.Context, cmd catalog.CommitCheckpoint) error
	FailCheckpoint(ctx context.Context, cmd catalog.FailCheckpoint) error
	// OpenOptions opens a connector's sealed secret options.
	OpenOptions(opts map[string]string) (map[string]string, error)
}

// Config configures an Engine.
type Config struct {
	NodeID   string
	Slots    int // 0 = dynamic (as many as tasks need)
	Registry *connectors.Registry
	// JobOptions validates a job's WITH options and fills in defaults
	// (planner.JobConfig); without it the built-in defaults apply.
	JobOptions func(catalog.JobSpec) (connectors.Config, error)
	Alloc      memory.Allocator
	Logger     *slog.Logger
	// QueueDepth is the number of batches buffered between a task's source
	// and sink stages; it bounds memory and carries backpressure.
	QueueDepth int
	// Incarnation is this start of the node, as registered in the catalog:
	// the worker runs only tasks placed on it.
	Incarnation string
	// Connected says whether this node is in touch with the leader (its
	// heartbeats answered within the session timeout); a worker that is
	// not stops its tasks, which the leader moves elsewhere. nil: always.
	Connected func() bool
	// Resync is the period of a reconcile pass without a catalog change.
	Resync time.Duration
	// ApplyTimeout bounds each catalog write the engine makes.
	ApplyTimeout time.Duration
	// StopGrace bounds a graceful stop (final checkpoint) before it turns abrupt.
	StopGrace time.Duration
	// IsLeader says whether this node leads the catalog: the leader checks
	// the binlog purge forecast of every job (risk.go). nil: always.
	IsLeader func() bool
	// RiskInterval is the period of those checks (default 30s).
	RiskInterval time.Duration
	// BoardFile keeps the last table reports of stopped runs across
	// restarts of the node (sluice.job_tables of a paused job); "": memory only.
	BoardFile string
	// Transport carries checkpoint messages to the nodes that run the other
	// subtasks of a pipeline (nil: a single node).
	Transport Transport
	// RPCTimeout bounds the retries of one such message.
	RPCTimeout time.Duration
}

// Engine reconciles catalog jobs with local tasks.
type Engine struct {
	cfg     Config
	cat     Catalog
	log     *slog.Logger
	metrics *Metrics
	board   *tableBoard
	risk    riskBoard
	ckptDur durations
	events  chan catalog.Event // written to the catalog off the data path (eventAsync)
	wake    chan struct{}

	mu    sync.Mutex // guards runs and slots (read by system tables)
	runs  map[uint64]*jobRun
	slots *slotPool
	ran   map[uint64]int // the last attempt of each job this process ran (guarded by mu)
}

// New returns an engine. Call Run to start it.
func New(cfg Config, cat Catalog) *Engine {
	if cfg.Alloc == nil {
		cfg.Alloc = memory.DefaultAllocator
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueueDepth <= 0 {
		cfg.QueueDepth = 4
	}
	if cfg.Connected == nil {
		cfg.Connected = func() bool { return true }
	}
	if cfg.Resync <= 0 {
		cfg.Resync = time.Second
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 5 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 30 * time.Second
	}
	if cfg.IsLeader == nil {
		cfg.IsLeader = func() bool { return true }
	}
	if cfg.RiskInterval <= 0 {
		cfg.RiskInterval = 30 * time.Second
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = 30 * time.Second
	}
	return &Engine{
		cfg: cfg, cat: cat, log: cfg.Logger, metrics: newMetrics(), board: newTableBoard(cfg.BoardFile),
		wake: make(chan struct{}, 1), runs: map[uint64]*jobRun{},
		risk:   riskBoard{rows: map[uint64]RiskRow{}, levels: map[uint64]string{}},
		events: make(chan catalog.Event, 256),
		slots:  newSlotPool(cfg.Slots), ran: map[uint64]int{},
	}
}

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *Metrics { return e.metrics }

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends, then stops every job gracefully.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(e.cfg.Resync)
	defer tick.Stop()
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	rctx, stopRisk := context.WithCancel(ctx)
	riskDone := make(chan struct{})
	go func() { defer close(riskDone); e.watchRetention(rctx) }()
	evDone := make(chan struct{})
	go func() { defer close(evDone); e.writeEvents(rctx) }()
	defer func() { stopRisk(); <-evDone }() // rctx ends both
	defer func() { stopRisk(); <-riskDone }()
	for {
		changed := e.cat.Changed()
		e.reconcile(ctx)
		select {
		case <-ctx.Done():
			e.stopAll()
			return nil
		case <-changed:
		case <-e.wake:
		case <-tick.C:
		case now := <-sample.C:
			e.metrics.sample(now)
		}
	}
}

// jobRun is the local execution of one attempt of one job.
type jobRun struct {
	job       catalog.Job // as when started, with this run's attempt
	ckpt      checkpointConfig
	pipelines []*pipelineRun
	limit     *limiter
	stop      chan struct{}   // closed for a graceful stop
	ctx       context.Context // ends when the run does
	cancel    context.CancelFunc
	done      chan struct{}
	// coordinates: every pipeline of the job is coordinated here, so this
	// node records the job FINISHED (its final checkpoints committed).
	coordinates bool
	errOnce     sync.Once
	err         error // first failure; valid after done
	metrics     *Metrics
	ctrs        sync.Map // connectors.TableID → *counters
}

// fail records the run's first failure and stops all its tasks.
func (r *jobRun) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		r.cancel()
	})
}

func (r *jobRun) counters(t connectors.TableID) *counters {
	if c, ok := r.ctrs.Load(t); ok {
		return c.(*counters)
	}
	c := r.metrics.get(r.job.Name, t)
	r.ctrs.Store(t, c)
	return c
}

func (r *jobRun) pipelineOf(id int) *pipelineRun {
	for _, p := range r.pipelines {
		if p.pipeline.ID == id {
			return p
		}
	}
	return nil
}

func (r *jobRun) tasks() []*task {
	var out []*task
	for _, p := range r.pipelines {
		out = append(out, p.tasks...)
	}
	return out
}

// finished: this node coordinates every pipeline of the job, and each
// one's final checkpoint, taken because every source (on every node)
// reached its end, committed.
func (r *jobRun) finished() bool {
	if !r.coordinates {
		return false
	}
	for _, p := range r.pipelines {
		if !p.ended.Load() {
			return false
		}
	}
	return true
}

// start launches the tasks of job that its placement gives this node
// (mine), each restored from its pipeline's last completed checkpoint,
// and the checkpoint coordinator of every pipeline whose subtask 0 is here.
func (e *Engine) start(ctx context.Context, job catalog.Job, mine []catalog.TaskPlacement) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &jobRun{job: job, ckpt: e.checkpointConfig(job.Spec), limit: newLimiter(), stop: make(chan struct{}),
		ctx: runCtx, cancel: cancel, done: make(chan struct{}), metrics: e.metrics, coordinates: true}
	r.limit.set(optInt(job.Spec.Options, "read.limit.rows_per_second"), optInt(job.Spec.Options, "read.limit.bytes_per_second"))
	placed := placedTasks(job)
	for _, pl := range job.Plan.Pipelines {
		p := &pipelineRun{run: r, pipeline: pl, nodes: placed[pl.ID], acks: make(chan ack, pl.Parallelism), eofs: make(chan int, pl.Parallelism),
			stopAsked: make(chan string, 1), finalFailed: make(chan struct{}), started: make(chan struct{})}
		p.home = p.nodes[0] == e.cfg.NodeID
		r.coordinates = r.coordinates && p.home
		last, restored := e.cat.LastCheckpoint(job.ID, pl.ID)
		if restored {
			p.markStarted() // the start position is already durable
		}
		for _, tp := range mine {
			if tp.Pipeline != pl.ID {
				continue
			}
			t := &task{pipeline: pl.ID, subtask: tp.Subtask, slot: tp.Slot, attempt: job.Attempt,
				trigger: make(chan trigger, 4), commits: make(chan commitMsg, 4)}
			if restored {
				t.restoreID = last.ID
				for _, tc := range last.Tasks {
					if tc.Subtask == tp.Subtask {
						t.startPos, t.startAt, t.restoreState = tc.Position, tc.SourceTime, tc.SinkState
					}
				}
			}
			t.setState(TaskStarting)
			p.tasks = append(p.tasks, t)
		}
		if len(p.tasks) > 0 {
			r.pipelines = append(r.pipelines, p)
		}
	}
	e.mu.Lock()
	e.runs[job.ID] = r
	e.mu.Unlock()
	e.board.stale.Store(true)

	var wg sync.WaitGroup
	for _, p := range r.pipelines {
		if p.home {
			wg.Add(1)
			go func(p *pipelineRun) {
				defer wg.Done()
				e.coordinate(runCtx, p)
			}(p)
		} else {
			go e.forward(runCtx, p) // ends with the run
		}
		go e.watchStalls(runCtx, p) // ends with the run
		for _, t := range p.tasks {
			wg.Add(1)
			go func(p *pipelineRun, t *task) {
				defer wg.Done()
				st, err := e.build(job, p.pipeline, t.subtask)
				if err == nil {
					err = e.runTask(runCtx, p, t, st)
				}
				switch {
				case err == nil && t.eof.Load():
					t.setState(TaskFinished)
				case err == nil || (runCtx.Err() != nil && r.err == nil):
					t.setState(TaskStopped)
				default:
					t.setState(TaskFailed)
					r.fail(fmt.Errorf("pipeline %d task %d: %w", t.pipeline, t.subtask, err))
				}
			}(p, t)
		}
	}
	// Coordinators end after their final checkpoint commits or when runCtx
	// ends (a task failed: fail cancels; or an abrupt stop); tasks elsewhere
	// than their coordinator end after the final commit reaches them.
	go func() {
		wg.Wait()
		cancel()
		close(r.done)
		e.poke()
	}()
	e.log.Info("job started", "job", job.Name, "attempt", job.Attempt, "tasks", len(mine))
}

// stopRun stops a run. Graceful takes a final checkpoint first (bounded by
// StopGrace), so RESUME continues exactly where the flow stopped.
func (e *Engine) stopRun(r *jobRun, graceful bool) {
	if graceful {
		close(r.stop)
		select {
		case <-r.done:
		case <-time.After(e.cfg.StopGrace):
			e.log.Warn("graceful stop timed out; stopping abruptly", "job", r.job.Name)
		}
	}
	r.cancel()
	<-r.done
	e.forget(r)
}

// forget removes a finished run and frees its slots.
func (e *Engine) forget(r *jobRun) {
	if rows, src, ok := r.report(); ok { // what sluice.job_tables shows until the job runs again
		e.board.remember(r.job.ID, rows, src)
		e.board.save()
	}
	defer e.board.stale.Store(true) // after the run is gone from e.runs
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs[r.job.ID] != r {
		return
	}
	delete(e.runs, r.job.ID)
	e.slots.release(jobRef{r.job.ID, r.job.Name})
}

func (e *Engine) stopAll() {
	e.mu.Lock()
	runs := make([]*jobRun, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func(r *jobRun) { defer wg.Done(); e.stopRun(r, true) }(r)
	}
	wg.Wait()
}

// transition changes a job's state for attempt (fenced: refused if the
// job has moved to another attempt meanwhile).
func (e *Engine) transition(ctx context.Context, job catalog.Job, attempt int, from []catalog.JobState, to catalog.JobState, errText, reason string) (catalog.Result, error) {
	if job.State == to && errText == job.Error {
		return catalog.Result{Job: &job}, nil
	}
	actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
	defer cancel()
	cmd := catalog.SetJobState{Name: job.Name, JobID: job.ID, From: from, To: to, Error: errText, Reason: reason,
		Attempt: catalog.AtAttempt(attempt)}
	if to == catalog.Failed || to == catalog.Finished {
		cmd.Rows = e.metrics.sinkRows(job.Name) // for the job's history entry
	}
	res, err := e.cat.SetJobState(actx, cmd)
	if err != nil && !errors.Is(err, catalog.ErrBadTransition) && !errors.Is(err, catalog.ErrJobNotFound) {
		e.log.Warn("job state change failed", "job", job.Name, "to", to, "err", err)
	}
	return res, err
}

// eventAsync records an event without waiting for the catalog (from the
// data path); with 256 waiting it is dropped, and logged.
func (e *Engine) eventAsync(job, kind, msg string) {
	select {
	case e.events <- catalog.Event{Job: job, Kind: kind, Message: msg}:
	default:
		e.log.Warn("event dropped: the catalog is not keeping up", "job", job, "kind", kind, "message", msg)
	}
}

func (e *Engine) writeEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-e.events:
			e.event(ctx, ev.Job, ev.Kind, ev.Message)
		}
	}
}

func (e *Engine) event(ctx context.Context, job, kind, msg string) {
	actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
	defer cancel()
	if err := e.cat.AddEvent(actx, catalog.Event{Job: job, Kind: kind, Message: msg}); err != nil {
		e.log.Warn("event not recorded", "job", job, "err", err)
	}
}

func optInt(opts map[string]string, k string) int64 {
	n, _ := strconv.ParseInt(opts[k], 10, 64) // validated by the planner; absent is 0
	return n
}

// TaskRow is one row of sluice.tasks.
type TaskRow struct {
	Job                    string
	Pipeline, TaskID, Slot int
	Node                   string
	Attempt                int
	State                  string
}

// Tasks lists the tasks running on this node.
func (e *Engine) Tasks() []TaskRow {
	e.mu.Lock()
	var out []TaskRow
	for _, r := range e.runs {
		for _, t := range r.tasks() {
			out = append(out, TaskRow{Job: r.job.Name, Pipeline: t.pipeline, TaskID: t.subtask, Slot: t.slot,
				Node: e.cfg.NodeID, Attempt: t.attempt, State: t.getState()})
		}
	}
	e.mu.Unlock()
	SortTasks(out)
	return out
}

// SortTasks orders task rows by job, pipeline and subtask.
func SortTasks(rows []TaskRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Job != b.Job {
			return a.Job < b.Job
		}
		if a.Pipeline != b.Pipeline {
			return a.Pipeline < b.Pipeline
		}
		return a.TaskID < b.TaskID
	})
}

// SlotRow is one row of sluice.slots.
type SlotRow struct {
	Node string
	Slot int
	Job  string // "" when free
	Task int    // -1 when free
}

// Slots lists this node's slots: every slot when the count is fixed, the
// used ones when dynamic.
func (e *Engine) Slots() []SlotRow {
	e.mu.Lock()
	defer e.mu.Unlock()
	taskOf := map[int]int{}
	for _, r := range e.runs {
		for _, t := range r.tasks() {
			taskOf[t.slot] = t.subtask
		}
	}
	var out []SlotRow
	for _, s := range e.slots.list() {
		row := SlotRow{Node: e.cfg.NodeID, Slot: s.id, Job: s.job, Task: -1}
		if s.job != "" {
			row.Task = taskOf[s.id]
		}
		out = append(out, row)
	}
	return out
}

// SlotUsage returns (total, used); total is 0 for dynamic slots.
func (e *Engine) SlotUsage() (int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slots.total, e.slots.used()
}
