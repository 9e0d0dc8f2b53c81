package connectors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Stop returns promptly even while a flush waits on a hung target, and a
// failed flush is reported and stops the ticks.
func TestFlusher(t *testing.T) {
	defer goleak.VerifyNone(t)
	var mu sync.Mutex
	started := make(chan struct{}, 1)
	f := StartFlusher(&mu, time.Millisecond, time.Hour, func(ctx context.Context) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done() // a target that never answers
		return ctx.Err()
	})
	<-started
	t0 := time.Now()
	f.Stop()
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Stop took %s with a flush in flight", d)
	}
	mu.Lock()
	if f.Err() != nil {
		t.Fatalf("a flush cancelled by Stop is not a failure: %v", f.Err())
	}
	mu.Unlock()
	f.Stop() // twice is fine

	calls := 0
	boom := errors.New("boom")
	f = StartFlusher(&mu, time.Millisecond, time.Second, func(context.Context) error { calls++; return boom })
	time.Sleep(30 * time.Millisecond)
	mu.Lock()
	err, n := f.Err(), calls
	mu.Unlock()
	f.Stop()
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("after a failed flush: err %v, %d calls; want boom once", err, n)
	}
	var none *Flusher
	none.Stop()
	if none.Err() != nil {
		t.Fatal("nil flusher has an error")
	}
}
