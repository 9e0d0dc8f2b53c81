package exec

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket shared by every task of a job: it enforces
// read.limit.rows_per_second and read.limit.bytes_per_second for the job as
// a whole. The burst is one second's worth. Limits change live on ALTER.
type limiter struct {
	mu         sync.Mutex
	rowsPerSec float64
	bytesPerS  float64
	rows       float64 // available tokens
	bytes      float64
	last       time.Time
}

func newLimiter() *limiter { return &limiter{last: time.Now()} }

func (l *limiter) set(rowsPerSec, bytesPerSec int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rowsPerSec, l.bytesPerS = float64(rowsPerSec), float64(bytesPerSec)
	l.rows = min(l.rows, l.rowsPerSec)
	l.bytes = min(l.bytes, l.bytesPerS)
}

// wait takes rows and bytes from the buckets, sleeping while they are in
// debt. A batch larger than the burst is let through and paid off after.
func (l *limiter) wait(ctx context.Context, rows, bytes int64) error {
	l.mu.Lock()
	now := time.Now()
	el := now.Sub(l.last).Seconds()
	l.last = now
	var delay time.Duration
	if l.rowsPerSec > 0 {
		l.rows = min(l.rows+el*l.rowsPerSec, l.rowsPerSec) - float64(rows)
		if l.rows < 0 {
			delay = max(delay, time.Duration(-l.rows/l.rowsPerSec*float64(time.Second)))
		}
	}
	if l.bytesPerS > 0 {
		l.bytes = min(l.bytes+el*l.bytesPerS, l.bytesPerS) - float64(bytes)
		if l.bytes < 0 {
			delay = max(delay, time.Duration(-l.bytes/l.bytesPerS*float64(time.Second)))
		}
	}
	l.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
