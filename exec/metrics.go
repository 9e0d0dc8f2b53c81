package exec

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"sluice/connectors"
)

// counters are one job × table's figures. Stage goroutines add to them
// without locks; the sampler derives QPS once a second.
type counters struct {
	srcCount, srcBytes   atomic.Int64
	sinkCount, sinkBytes atomic.Int64
	lagMs                atomic.Int64
	updated              atomic.Int64  // unix nanoseconds
	srcQPS, sinkQPS      atomic.Uint64 // float64 bits
	// sampler state, touched only by the sampler goroutine
	lastSrc, lastSink int64
	lastAt            time.Time
}

func (c *counters) source(rows, bytes int64) {
	c.srcCount.Add(rows)
	c.srcBytes.Add(bytes)
	c.updated.Store(time.Now().UnixNano())
}

func (c *counters) sink(rows, bytes int64, eventTime time.Time) {
	c.sinkCount.Add(rows)
	c.sinkBytes.Add(bytes)
	now := time.Now()
	if !eventTime.IsZero() {
		c.lagMs.Store(max(0, now.Sub(eventTime).Milliseconds()))
	}
	c.updated.Store(now.UnixNano())
}

type metricKey struct {
	job   string
	table string
}

// Metrics holds the counters of every job × source table on this node.
type Metrics struct {
	mu sync.RWMutex
	m  map[metricKey]*counters
}

func newMetrics() *Metrics { return &Metrics{m: map[metricKey]*counters{}} }

func (m *Metrics) get(job string, t connectors.TableID) *counters {
	k := metricKey{job: job, table: t.String()}
	m.mu.RLock()
	c := m.m[k]
	m.mu.RUnlock()
	if c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c = m.m[k]; c == nil {
		c = &counters{lastAt: time.Now()}
		m.m[k] = c
	}
	return c
}

// dropJob forgets a job's counters (after DROP).
func (m *Metrics) dropJob(job string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.m {
		if k.job == job {
			delete(m.m, k)
		}
	}
}

// sinkRows is how many rows a job's sinks on this node wrote since it
// started.
func (m *Metrics) sinkRows(job string) int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var n int64
	for k, c := range m.m {
		if k.job == job {
			n += c.sinkCount.Load()
		}
	}
	return n
}

// sample updates QPS figures; called about once a second.
func (m *Metrics) sample(now time.Time) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.m {
		dt := now.Sub(c.lastAt).Seconds()
		if dt <= 0 {
			continue
		}
		src, sink := c.srcCount.Load(), c.sinkCount.Load()
		c.srcQPS.Store(math.Float64bits(float64(src-c.lastSrc) / dt))
		c.sinkQPS.Store(math.Float64bits(float64(sink-c.lastSink) / dt))
		c.lastSrc, c.lastSink, c.lastAt = src, sink, now
	}
}

// MetricRow is one row of sluice.metrics.
type MetricRow struct {
	Job                 string
	Table               string
	SourceReceivedCount int64
	SourceReceivedBytes int64
	SourceReceivedQPS   float64
	SinkWriteCount      int64
	SinkWriteBytes      int64
	SinkWriteQPS        float64
	LagMs               int64
	UpdatedAt           time.Time
}

// Rows returns the current figures, ordered by job and table.
func (m *Metrics) Rows() []MetricRow {
	m.mu.RLock()
	out := make([]MetricRow, 0, len(m.m))
	for k, c := range m.m {
		out = append(out, MetricRow{
			Job: k.job, Table: k.table,
			SourceReceivedCount: c.srcCount.Load(), SourceReceivedBytes: c.srcBytes.Load(),
			SourceReceivedQPS: math.Float64frombits(c.srcQPS.Load()),
			SinkWriteCount:    c.sinkCount.Load(), SinkWriteBytes: c.sinkBytes.Load(),
			SinkWriteQPS: math.Float64frombits(c.sinkQPS.Load()),
			LagMs:        c.lagMs.Load(), UpdatedAt: time.Unix(0, c.updated.Load()).UTC(),
		})
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Job != out[j].Job {
			return out[i].Job < out[j].Job
		}
		return out[i].Table < out[j].Table
	})
	return out
}

// MetricRows returns the engine's current figures (see Metrics.Rows).
func (e *Engine) MetricRows() []MetricRow { return e.metrics.Rows() }
