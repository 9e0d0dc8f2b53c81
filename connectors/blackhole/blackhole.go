// Package blackhole is the blackhole sink: it discards every batch and counts
// rows and bytes. Benchmarks use it to measure everything but the target.
package blackhole

import (
	"context"
	"sync/atomic"

	"sluice/connectors"
)

// Spec declares the blackhole connector.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "blackhole",
		Kind:        connectors.KindSink,
		Description: "discards every row and counts them (benchmarks)",
		NewSink: func(connectors.Config, connectors.Env) (connectors.Sink, error) {
			return &Sink{}, nil
		},
	}
}

// Sink discards batches. Its counters may be read while it runs.
type Sink struct {
	rows, bytes atomic.Int64
}

var _ connectors.Sink = (*Sink)(nil)

func (s *Sink) Open(context.Context) error { return nil }

// Write counts the batch and forgets it.
func (s *Sink) Write(_ context.Context, b connectors.Batch) error {
	s.rows.Add(b.Rows())
	s.bytes.Add(b.Bytes())
	return nil
}

func (s *Sink) Flush(context.Context) error { return nil }
func (s *Sink) Close() error                { return nil }

// Rows is the number of rows written so far.
func (s *Sink) Rows() int64 { return s.rows.Load() }
