package connectors

import (
	"context"
	"sync"
	"time"
)

// Flusher runs a sink's time-based flushes in the background: every tick
// it takes the sink's lock and calls flush, which writes whatever waited
// long enough. A failed flush stops the ticks; the sink reports Err from
// its next call. Stop cancels a flush in flight (its context ends) and
// waits for the goroutine, so a sink's Close returns promptly even when
// the target hangs.
type Flusher struct {
	mu     *sync.Mutex
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

// StartFlusher starts ticking every tick. flush is called with mu held
// and a context that ends after timeout or at Stop.
func StartFlusher(mu *sync.Mutex, tick, timeout time.Duration, flush func(ctx context.Context) error) *Flusher {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Flusher{mu: mu, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			if f.err == nil && ctx.Err() == nil {
				fctx, fcancel := context.WithTimeout(ctx, timeout)
				if err := flush(fctx); err != nil && ctx.Err() == nil {
					f.err = err
				}
				fcancel()
			}
			mu.Unlock()
		}
	}()
	return f
}

// Err is the error of a failed background flush; call it with the lock
// held. A nil Flusher has none.
func (f *Flusher) Err() error {
	if f == nil {
		return nil
	}
	return f.err
}

// Stop ends the flusher: a flush in flight sees its context cancelled.
// Call it without the lock. Stop on a nil or stopped Flusher does nothing.
func (f *Flusher) Stop() {
	if f == nil {
		return
	}
	f.cancel()
	<-f.done
}
