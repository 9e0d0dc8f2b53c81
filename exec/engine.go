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
	Changed() <-chan struct{}
	SetJobState(ctx context.Context, cmd catalog.SetJobState) (catalog.Result, error)
	AddEvent(ctx context.Context, e catalog.Event) error
}

// Config configures an Engine.
type Config struct {
	NodeID   string
	Slots    int // 0 = dynamic (as many as tasks need)
	Registry *connectors.Registry
	Alloc    memory.Allocator
	Logger   *slog.Logger
	// QueueDepth is the number of batches buffered between a task's source
	// and sink stages; it bounds memory and carries backpressure.
	QueueDepth int
	// IsLeader says whether this node coordinates (runs jobs) now.
	IsLeader func() bool
	// Resync is the period of a reconcile pass without a catalog change.
	Resync time.Duration
	// ApplyTimeout bounds each catalog write the engine makes.
	ApplyTimeout time.Duration
}

// Engine reconciles catalog jobs with local tasks.
type Engine struct {
	cfg     Config
	cat     Catalog
	log     *slog.Logger
	metrics *Metrics
	wake    chan struct{}

	mu        sync.Mutex // guards runs, slots and positions (read by system tables)
	runs      map[uint64]*jobRun
	slots     *slotPool
	positions map[uint64]map[[2]int]connectors.Position // last positions of stopped jobs, for RESUME
	waiting   map[uint64]bool                           // jobs told to wait for slots (event sent once)
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
	if cfg.IsLeader == nil {
		cfg.IsLeader = func() bool { return true }
	}
	if cfg.Resync <= 0 {
		cfg.Resync = time.Second
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 5 * time.Second
	}
	return &Engine{
		cfg: cfg, cat: cat, log: cfg.Logger, metrics: newMetrics(),
		wake: make(chan struct{}, 1), runs: map[uint64]*jobRun{},
		slots: newSlotPool(cfg.Slots), positions: map[uint64]map[[2]int]connectors.Position{},
		waiting: map[uint64]bool{},
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

// jobRun is the local execution of one job.
type jobRun struct {
	job     catalog.Job // as when started
	tasks   []*task
	limit   *limiter
	stop    chan struct{} // closed for a graceful stop
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // first task error; valid after done
	metrics *Metrics
	ctrs    sync.Map // connectors.TableID → *counters
}

func (r *jobRun) counters(t connectors.TableID) *counters {
	if c, ok := r.ctrs.Load(t); ok {
		return c.(*counters)
	}
	c := r.metrics.get(r.job.Name, t)
	r.ctrs.Store(t, c)
	return c
}

func (r *jobRun) finished() bool {
	for _, t := range r.tasks {
		t.mu.Lock()
		eof := t.eof
		t.mu.Unlock()
		if !eof {
			return false
		}
	}
	return true
}

func (e *Engine) reconcile(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if !e.cfg.IsLeader() {
		e.stopAll()
		return
	}
	jobs := e.cat.Jobs()
	seen := map[uint64]bool{}
	for _, job := range jobs {
		seen[job.ID] = true
		e.reconcileJob(ctx, job)
	}
	e.mu.Lock()
	var gone []*jobRun
	for id, r := range e.runs {
		if !seen[id] {
			gone = append(gone, r)
		}
	}
	for id := range e.positions {
		if !seen[id] {
			delete(e.positions, id)
		}
	}
	e.mu.Unlock()
	for _, r := range gone { // dropped jobs
		e.stopRun(r, false)
		e.metrics.dropJob(r.job.Name)
	}
}

func (e *Engine) reconcileJob(ctx context.Context, job catalog.Job) {
	e.mu.Lock()
	r := e.runs[job.ID]
	e.mu.Unlock()

	if r != nil {
		select {
		case <-r.done:
			e.complete(ctx, job, r)
			return
		default:
		}
	}
	if !job.State.Active() {
		if r != nil {
			e.stopRun(r, true)
		}
		return
	}
	if r != nil {
		r.limit.set(optInt(job.Spec.Options, "read.limit.rows_per_second"), optInt(job.Spec.Options, "read.limit.bytes_per_second"))
		if job.State != catalog.Running {
			e.transition(ctx, job, []catalog.JobState{job.State}, catalog.Running, "", "tasks running")
		}
		return
	}
	// Not running here: schedule it.
	n := 0
	for _, pl := range job.Plan.Pipelines {
		n += pl.Parallelism
	}
	e.mu.Lock()
	slots, ok := e.slots.allocate(jobRef{job.ID, job.Name}, n)
	free := e.slots.free()
	e.mu.Unlock()
	if !ok {
		if job.Spec.Options["schedule.strategy"] == "reject" {
			e.transition(ctx, job, []catalog.JobState{job.State}, catalog.Failed,
				fmt.Sprintf("needs %d slots, %d free on node %s (schedule.strategy=reject)", n, free, e.cfg.NodeID), "")
			return
		}
		if !e.waiting[job.ID] {
			e.waiting[job.ID] = true
			e.event(ctx, job.Name, "WAITING", fmt.Sprintf("needs %d slots, %d free; waiting (schedule.strategy=wait)", n, free))
		}
		return
	}
	delete(e.waiting, job.ID)
	if job.State == catalog.Created {
		res, err := e.transition(ctx, job, []catalog.JobState{catalog.Created}, catalog.Scheduled, "", fmt.Sprintf("%d tasks on node %s", n, e.cfg.NodeID))
		if err != nil {
			e.mu.Lock()
			e.slots.release(jobRef{job.ID, job.Name})
			e.mu.Unlock()
			return
		}
		job = *res.Job
	}
	e.start(ctx, job, slots)
	e.transition(ctx, job, []catalog.JobState{catalog.Scheduled, catalog.Restarting, catalog.Running}, catalog.Running, "", "tasks running")
}

// start launches every task of job on the given slots.
func (e *Engine) start(ctx context.Context, job catalog.Job, slots []int) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &jobRun{job: job, limit: newLimiter(), stop: make(chan struct{}), cancel: cancel,
		done: make(chan struct{}), metrics: e.metrics}
	r.limit.set(optInt(job.Spec.Options, "read.limit.rows_per_second"), optInt(job.Spec.Options, "read.limit.bytes_per_second"))
	e.mu.Lock()
	saved := e.positions[job.ID]
	delete(e.positions, job.ID)
	i := 0
	for _, pl := range job.Plan.Pipelines {
		for s := 0; s < pl.Parallelism; s++ {
			t := &task{pipeline: pl.ID, subtask: s, slot: slots[i], attempt: job.Restarts + 1, pos: saved[[2]int{pl.ID, s}]}
			t.setState(TaskStarting)
			r.tasks = append(r.tasks, t)
			i++
		}
	}
	e.runs[job.ID] = r
	e.mu.Unlock()

	var wg sync.WaitGroup
	var once sync.Once
	fail := func(err error) {
		once.Do(func() {
			r.err = err
			cancel() // one failed task stops its siblings
		})
	}
	pipelines := map[int]catalog.Pipeline{}
	for _, pl := range job.Plan.Pipelines {
		pipelines[pl.ID] = pl
	}
	for _, t := range r.tasks {
		wg.Add(1)
		go func(t *task) {
			defer wg.Done()
			st, err := e.build(job, pipelines[t.pipeline], t.subtask)
			if err == nil {
				err = e.runTask(runCtx, r.stop, r, t, st)
			}
			switch {
			case err != nil && runCtx.Err() == nil:
				t.setState(TaskFailed)
				fail(fmt.Errorf("pipeline %d task %d: %w", t.pipeline, t.subtask, err))
			case err != nil:
				t.setState(TaskStopped)
			case t.eof:
				t.setState(TaskFinished)
			default:
				t.setState(TaskStopped)
			}
		}(t)
	}
	go func() {
		wg.Wait()
		close(r.done)
		e.poke()
	}()
	e.log.Info("job started", "job", job.Name, "tasks", len(r.tasks))
}

// complete handles a run whose tasks have all ended on their own.
func (e *Engine) complete(ctx context.Context, job catalog.Job, r *jobRun) {
	e.forget(r, true)
	switch {
	case r.err != nil:
		e.transition(ctx, job, []catalog.JobState{catalog.Running, catalog.Scheduled, catalog.Restarting}, catalog.Failed, r.err.Error(), "")
	case r.finished():
		e.transition(ctx, job, []catalog.JobState{catalog.Running, catalog.Scheduled, catalog.Restarting}, catalog.Finished, "", "every source reached its end")
	}
}

// stopRun stops a run; graceful lets every batch already read reach the
// sink and keeps the positions for a later RESUME.
func (e *Engine) stopRun(r *jobRun, graceful bool) {
	if graceful {
		for _, t := range r.tasks {
			if t.getState() == TaskRunning {
				t.setState(TaskDraining)
			}
		}
		close(r.stop)
	} else {
		r.cancel()
	}
	<-r.done
	r.cancel()
	e.forget(r, graceful)
}

// forget removes a finished run, keeping its positions when asked.
func (e *Engine) forget(r *jobRun, keep bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs[r.job.ID] != r {
		return
	}
	delete(e.runs, r.job.ID)
	e.slots.release(jobRef{r.job.ID, r.job.Name})
	if keep {
		pos := map[[2]int]connectors.Position{}
		for _, t := range r.tasks {
			pos[[2]int{t.pipeline, t.subtask}] = t.position()
		}
		e.positions[r.job.ID] = pos
	}
}

func (e *Engine) stopAll() {
	e.mu.Lock()
	runs := make([]*jobRun, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		e.stopRun(r, true)
	}
}

func (e *Engine) transition(ctx context.Context, job catalog.Job, from []catalog.JobState, to catalog.JobState, errText, reason string) (catalog.Result, error) {
	if job.State == to && errText == job.Error {
		return catalog.Result{Job: &job}, nil
	}
	actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
	defer cancel()
	res, err := e.cat.SetJobState(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID, From: from, To: to, Error: errText, Reason: reason})
	if err != nil && !errors.Is(err, catalog.ErrBadTransition) && !errors.Is(err, catalog.ErrJobNotFound) {
		e.log.Warn("job state change failed", "job", job.Name, "to", to, "err", err)
	}
	return res, err
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
		for _, t := range r.tasks {
			out = append(out, TaskRow{Job: r.job.Name, Pipeline: t.pipeline, TaskID: t.subtask, Slot: t.slot,
				Node: e.cfg.NodeID, Attempt: t.attempt, State: t.getState()})
		}
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Job != b.Job {
			return a.Job < b.Job
		}
		if a.Pipeline != b.Pipeline {
			return a.Pipeline < b.Pipeline
		}
		return a.TaskID < b.TaskID
	})
	return out
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
		for _, t := range r.tasks {
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
