package exec

import (
	"sort"
	"sync"
	"time"
)

// CheckpointBuckets are the upper bounds, in seconds, of the checkpoint
// duration histogram (trigger to catalog commit).
var CheckpointBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Histogram is one job's checkpoint durations on this node (its
// coordinator's): cumulative counts per CheckpointBuckets bound.
type Histogram struct {
	Job     string
	Buckets []uint64
	Sum     float64
	Count   uint64
}

type durations struct {
	mu   sync.Mutex
	jobs map[string]*Histogram
}

func (d *durations) observe(job string, took time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.jobs == nil {
		d.jobs = map[string]*Histogram{}
	}
	h := d.jobs[job]
	if h == nil {
		h = &Histogram{Job: job, Buckets: make([]uint64, len(CheckpointBuckets))}
		d.jobs[job] = h
	}
	s := took.Seconds()
	for i, le := range CheckpointBuckets {
		if s <= le {
			h.Buckets[i]++
		}
	}
	h.Sum += s
	h.Count++
}

func (d *durations) drop(job string) {
	d.mu.Lock()
	delete(d.jobs, job)
	d.mu.Unlock()
}

// CheckpointDurations lists the checkpoint duration histograms of the
// jobs this node coordinates, by job.
func (e *Engine) CheckpointDurations() []Histogram {
	d := &e.ckptDur
	d.mu.Lock()
	out := make([]Histogram, 0, len(d.jobs))
	for _, h := range d.jobs {
		c := *h
		c.Buckets = append([]uint64(nil), h.Buckets...)
		out = append(out, c)
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, k int) bool { return out[i].Job < out[k].Job })
	return out
}
