package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"sluice/catalog"
	"sluice/connectors"
)

// Task states shown in sluice.tasks.
const (
	TaskStarting = "STARTING"
	TaskRunning  = "RUNNING"
	TaskDraining = "DRAINING"
	TaskFinished = "FINISHED"
	TaskStopped  = "STOPPED"
	TaskFailed   = "FAILED"
)

// task is one subtask of one pipeline: source → transforms → sink.
type task struct {
	pipeline, subtask int
	slot              int
	attempt           int
	state             atomic.Value // string

	mu  sync.Mutex
	pos connectors.Position // position of the last batch the sink accepted
	eof bool                // the source reached the end of its input
}

func (t *task) setState(s string) { t.state.Store(s) }
func (t *task) getState() string {
	s, _ := t.state.Load().(string)
	return s
}

func (t *task) position() connectors.Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// item is a batch in flight with the source table it came from (transforms
// may rename Batch.Table; metrics count by source table).
type item struct {
	b      connectors.Batch
	origin connectors.TableID
}

// stages are the connector instances of a task.
type stages struct {
	src        connectors.Source
	transforms []connectors.Transform
	sink       connectors.Sink
}

func (e *Engine) build(job catalog.Job, pl catalog.Pipeline, subtask int) (stages, error) {
	var st stages
	env := connectors.Env{Job: job.Name, Subtask: subtask, Parallelism: pl.Parallelism, Alloc: e.cfg.Alloc, Logger: e.log}
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
		cfg, err := spec.Options.Validate(spec.Name, ref.Options)
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

// runTask runs one task until its source ends, stop is closed (graceful:
// the source stops reading, everything read is written and flushed), or
// ctx ends (abrupt). It returns nil when the task ended by EOF or stop.
func (e *Engine) runTask(ctx context.Context, stop <-chan struct{}, r *jobRun, t *task, st stages) (err error) {
	defer func() {
		if cerr := st.src.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close source: %w", cerr)
		}
		if cerr := st.sink.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close sink: %w", cerr)
		}
	}()
	if err := st.src.Open(ctx, t.position()); err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	if err := st.sink.Open(ctx); err != nil {
		return fmt.Errorf("open sink: %w", err)
	}
	t.setState(TaskRunning)

	// The source stage reads under srcCtx, which ends on stop or ctx.
	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()
	go func() {
		select {
		case <-stop:
			cancelSrc()
		case <-srcCtx.Done():
		}
	}()

	queue := make(chan item, e.cfg.QueueDepth)
	srcErr := make(chan error, 1)
	go func() {
		defer close(queue)
		srcErr <- e.sourceStage(ctx, srcCtx, r, t, st, queue)
	}()

	var sinkErr error
	for it := range queue {
		if sinkErr == nil {
			sinkErr = st.sink.Write(ctx, it.b)
			if sinkErr == nil {
				r.counters(it.origin).sink(it.b.Rows(), it.b.Bytes(), it.b.EventTime)
				t.mu.Lock()
				t.pos = it.b.Position
				t.mu.Unlock()
			} else {
				cancelSrc() // stop reading; drain and release the rest
			}
		}
		it.b.Release()
	}
	serr := <-srcErr
	if sinkErr != nil {
		return fmt.Errorf("sink %s: %w", r.job.Spec.Sink.Connector, sinkErr)
	}
	if serr != nil {
		return serr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := st.sink.Flush(ctx); err != nil {
		return fmt.Errorf("flush sink: %w", err)
	}
	return nil
}

// sourceStage reads, rate-limits and transforms batches onto queue.
func (e *Engine) sourceStage(ctx, srcCtx context.Context, r *jobRun, t *task, st stages, queue chan<- item) error {
	for {
		b, err := st.src.Read(srcCtx)
		if errors.Is(err, io.EOF) {
			t.mu.Lock()
			t.eof = true
			t.mu.Unlock()
			return nil
		}
		if err != nil {
			if srcCtx.Err() != nil && ctx.Err() == nil {
				return nil // stopped on purpose
			}
			return fmt.Errorf("source %s: %w", r.job.Spec.Source.Connector, err)
		}
		origin := b.Table
		rows, bytes := b.Rows(), b.Bytes()
		r.counters(origin).source(rows, bytes)
		// A batch already read is always passed on, even when the wait is
		// cut short by a stop: its position has been consumed.
		_ = r.limit.wait(srcCtx, rows, bytes)
		for _, tr := range st.transforms {
			if b, err = tr.Apply(ctx, b); err != nil {
				b.Release()
				return fmt.Errorf("transform: %w", err)
			}
		}
		select {
		case queue <- item{b: b, origin: origin}:
		case <-ctx.Done():
			b.Release()
			return ctx.Err()
		}
	}
}
