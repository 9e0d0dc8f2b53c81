package conformance

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"go.uber.org/goleak"

	"sluice/connectors"
)

// SourceDriver says how the suite gets instances of one source.
type SourceDriver struct {
	// New returns an unopened instance for env (the suite sets the
	// allocator). Every instance reads the same upstream.
	New func(t *testing.T, env connectors.Env) connectors.Source
	// Initial is the number of rows the source delivers before More is
	// called (its snapshot, or all of a bounded source's rows).
	Initial int
	// More makes the upstream change (nil: nothing more comes); it returns
	// how many rows the changes deliver.
	More func(t *testing.T) int
	// Bounded: Read ends with io.EOF after the last row.
	Bounded bool
	// Deterministic: every reading yields the same rows in the same order
	// (a generator). Otherwise only positions after the initial rows must
	// replay exactly (a snapshot re-read later sees the upstream as it is
	// then).
	Deterministic bool
}

// reading is one instance being read, with the state its changes describe.
type reading struct {
	t     *testing.T
	src   connectors.Source
	alloc *memory.CheckedAllocator
	state *State
	rows  int
	eof   bool
	// marks are the positions batches carried, with the state and row
	// count right after each.
	marks []mark
}

type mark struct {
	pos   connectors.Position
	state *State
	rows  int
}

func (d SourceDriver) open(t *testing.T, from connectors.Position, state *State) *reading {
	t.Helper()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	src := d.New(t, connectors.Env{Job: "conf", JobID: 1, Parallelism: 1, Alloc: alloc})
	if err := src.Open(context.Background(), from); err != nil {
		t.Fatalf("Open(%q): %v", from, err)
	}
	return &reading{t: t, src: src, alloc: alloc, state: state}
}

// read reads one batch; cut, when set, first makes a Read whose context
// is already done, which must consume nothing.
func (r *reading) read(cut bool) {
	r.t.Helper()
	if cut {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if b, err := r.src.Read(ctx); err == nil {
			// A batch that was ready may be returned; it counts as read.
			r.take(b)
			return
		} else if !errors.Is(err, context.Canceled) {
			r.t.Fatalf("Read with a cancelled context: %v, want context.Canceled", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	b, err := r.src.Read(ctx)
	switch {
	case err == nil:
		r.take(b)
	case errors.Is(err, io.EOF):
		r.eof = true
	case errors.Is(err, context.DeadlineExceeded):
	default:
		r.t.Fatalf("Read: %v", err)
	}
}

func (r *reading) take(b connectors.Batch) {
	if err := r.state.Apply(b); err != nil {
		r.t.Fatal(err)
	}
	r.rows += int(b.Rows())
	if b.Position != nil {
		r.marks = append(r.marks, mark{pos: append(connectors.Position(nil), b.Position...), state: r.state.Clone(), rows: r.rows})
	}
	b.Release()
}

// until reads until cond holds, or fails after 30 s.
func (r *reading) until(what string, cut bool, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; !cond(); i++ {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out reading %s after %d rows", what, r.rows)
		}
		if r.eof {
			r.t.Fatalf("EOF before %s, after %d rows", what, r.rows)
		}
		r.read(cut && i%2 == 0)
	}
}

func (r *reading) close() {
	r.t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.src.Close() }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("Close did not return within 10s")
	}
	r.alloc.AssertSize(r.t, 0)
}

// RunSource runs the source checks.
func RunSource(t *testing.T, d SourceDriver) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// The reference reading: everything once, positions noted.
	ref := d.open(t, nil, NewState())
	ref.until("the initial rows", false, func() bool { return ref.rows >= d.Initial })
	want := d.Initial
	if d.More != nil {
		want += d.More(t)
	}
	ref.until("the changes", false, func() bool { return ref.rows >= want })
	if d.Bounded {
		ref.until("EOF", false, func() bool { return ref.eof })
	}
	final := ref.state.Lines()
	ref.close()
	if len(ref.marks) == 0 {
		t.Fatal("no batch carried a position")
	}

	t.Run("ReopenAtEachPositionYieldsWhatFollowed", func(t *testing.T) {
		picks := []int{0, len(ref.marks) / 3, len(ref.marks) / 2, 2 * len(ref.marks) / 3, len(ref.marks) - 1}
		seen := map[int]bool{}
		for _, i := range picks {
			if seen[i] {
				continue
			}
			seen[i] = true
			m := ref.marks[i]
			r := d.open(t, m.pos, m.state.Clone())
			r.until("the rest after position "+string(m.pos), false, func() bool {
				return diff(final, r.state.Lines()) == "" || d.Bounded && r.eof
			})
			if d.Bounded {
				r.until("EOF", false, func() bool { return r.eof })
			}
			if df := diff(final, r.state.Lines()); df != "" {
				t.Fatalf("reopened at batch %d of %d (%s): %s", i+1, len(ref.marks), m.pos, df)
			}
			// The state hides a change delivered twice; the count does not.
			if (d.Deterministic || d.More != nil && m.rows >= d.Initial) && r.rows != ref.rows-m.rows {
				t.Fatalf("reopened at batch %d of %d (%s): %d rows followed, want the %d that followed it before",
					i+1, len(ref.marks), m.pos, r.rows, ref.rows-m.rows)
			}
			r.close()
		}
	})
	t.Run("CancelledReadConsumesNothing", func(t *testing.T) {
		r := d.open(t, nil, NewState())
		r.until("everything, with cancelled reads between", true, func() bool {
			return diff(final, r.state.Lines()) == "" || d.Bounded && r.eof
		})
		if df := diff(final, r.state.Lines()); df != "" {
			t.Fatalf("with cancelled reads: %s", df)
		}
		if d.Deterministic && r.rows != ref.rows {
			t.Fatalf("with cancelled reads: %d rows, want %d", r.rows, ref.rows)
		}
		r.close()
	})
}

// RunTransform checks a transform: a batch in, a batch out of the same
// rows, ownership handed over, nothing leaked.
func RunTransform(t *testing.T, tr connectors.Transform) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	g := newGen(5)
	in := build(alloc, connectors.TableID{Database: "db", Table: "t"}, testSchema, "", g.changes(50))
	n := in.Rows()
	out, err := tr.Apply(context.Background(), in)
	if err != nil {
		out.Release()
		t.Fatalf("Apply: %v", err)
	}
	if out.Rows() != n {
		t.Fatalf("Apply returned %d rows of %d", out.Rows(), n)
	}
	out.Release()
	alloc.AssertSize(t, 0)
}
