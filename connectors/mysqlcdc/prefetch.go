package mysqlcdc

// Pipelined snapshot reads: with snapshot.parallelism P > 1, up to P chunks
// after the one in progress are read ahead over a connection of their own,
// each inside its own consistent-snapshot transaction with its own
// watermark, and converted to Arrow there, while the foreground merges the
// binlog and emits the chunk in progress. Chunks are still taken up,
// patched by the binlog and emitted one at a time and in key order,
// exactly as without read-ahead (DESIGN.md): a chunk read ahead is only a
// SELECT that ran earlier, and it is used only if its watermark is not
// behind the reader when it is taken up (else it is read again), so the
// merge, the restart position and the skip count are unchanged.

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"sluice/connectors"
)

// chunkRange is a chunk's key range (lo, hi] in text form; lo nil is the
// table's start, open means no upper bound (the table's last chunk).
type chunkRange struct {
	lo, hi [][]byte
	open   bool
}

// scanned is one chunk read ahead. Its rows are also converted to Arrow
// there, in batches, so the foreground only hands them on when no change
// patched the chunk (most chunks); recs is nil when conversion failed (the
// foreground converts the rows and reports the error).
type scanned struct {
	r    chunkRange
	h    binlogPos
	list []*bufRow
	recs []arrow.Record
	err  error
	done chan struct{}
}

// release gives back the Arrow batches of a chunk read ahead and not used.
func (sc *scanned) release() { sc.recs = releaseAll(sc.recs) }

// releaseAll releases recs and returns nil, for the field that held them.
func releaseAll(recs []arrow.Record) []arrow.Record {
	for _, r := range recs {
		r.Release()
	}
	return nil
}

// scannedRange is the range a SELECT of at most limit rows after lo
// covered: up to its last key when it came back full, else to the end.
func scannedRange(lo [][]byte, n, limit int, last [][]byte) chunkRange {
	if n < limit {
		return chunkRange{lo: lo, open: true}
	}
	return chunkRange{lo: lo, hi: last}
}

// prefetcher reads ahead the chunks of one table after a given key.
type prefetcher struct {
	t       *table
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	planned chan *scanned // in key order; closed when the table is planned to its end or planning failed
	head    *scanned      // taken from planned, waiting for its read
	slots   chan struct{} // one per chunk read ahead and not yet taken up
}

// startPrefetch begins reading ahead the chunks of t after key after.
func (s *Source) startPrefetch(t *table, after [][]byte) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prefetcher{t: t, cancel: cancel, planned: make(chan *scanned, s.set.parallelism),
		slots: make(chan struct{}, s.set.parallelism)}
	s.pf = p
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(p.planned)
		s.plan(ctx, p, after)
	}()
}

// plan reads the chunks of p.t after key lo one after another, each
// starting where the one before ended, while up to parallelism of them
// wait to be taken up; each chunk's rows are converted to Arrow beside the
// next chunk's read. One SELECT of the table runs at a time: ranges fixed
// in advance (a boundary query per chunk, LIMIT 1 OFFSET chunk.size) would
// let several run at once, but that query costs MariaDB 8.6 ms against
// 29 ms for the chunk's own SELECT per 8192 rows, and two readers measured
// no faster here (DESIGN.md).
func (s *Source) plan(ctx context.Context, p *prefetcher, lo [][]byte) {
	for {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		sc := &scanned{done: make(chan struct{})}
		p.planned <- sc // buffered: the slots bound it
		q, args := chunkQuery(p.t, selectList(p.t), chunkRange{lo: lo, open: true}, s.set.chunkSize)
		w := &chunkWork{t: p.t}
		// The read itself is not cancelled: a cancel on a connection in
		// use races go-sql-driver's cleanup with the statement (go test
		// -race showed it), so stop waits for the chunk in flight instead.
		n, last, h, err := s.scan(context.WithoutCancel(ctx), p.t, q, args, w)
		sc.h, sc.err, sc.list, sc.r = h, err, w.list, scannedRange(lo, n, s.set.chunkSize, last)
		if err != nil {
			close(sc.done)
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer close(sc.done)
			sc.recs = s.convert(p.t, sc.list)
		}()
		if sc.r.open {
			return
		}
		lo = sc.r.hi
	}
}

// take returns the chunk of t read ahead that starts after key after,
// waiting for its read; nil when there is none or it failed (the caller
// reads the chunk itself, which handles every case). A cancelled wait
// consumes nothing: the chunk stays for the next call.
func (p *prefetcher) take(ctx context.Context, t *table, after [][]byte) (*scanned, error) {
	if p == nil || p.t != t {
		return nil, nil
	}
	if p.head == nil {
		select {
		case p.head = <-p.planned:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.head == nil {
			return nil, nil // planned to the end, or planning failed
		}
	}
	select {
	case <-p.head.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	sc := p.head
	p.head = nil
	<-p.slots
	if sc.err != nil || !sameKey(sc.r.lo, after) {
		sc.release()
		return nil, nil
	}
	return sc, nil
}

// convert builds the Arrow batches of a chunk's rows as appendCells
// does, at most batchRows rows each; nil if a value does not convert.
func (s *Source) convert(t *table, list []*bufRow) []arrow.Record {
	var recs []arrow.Record
	rb := array.NewRecordBuilder(s.env.Alloc, t.schema)
	defer rb.Release()
	kinds := rb.Field(0).(*array.Int8Builder)
	n := 0
	for _, r := range list {
		kinds.Append(int8(connectors.Insert))
		if err := appendTextCells(rb, t, r.cells); err != nil {
			return releaseAll(recs)
		}
		if n++; n == s.batchRows {
			recs, n = append(recs, rb.NewRecord()), 0
		}
	}
	if n > 0 {
		recs = append(recs, rb.NewRecord())
	}
	return recs
}

// stop ends the read-ahead and waits until its reads have given their
// connections back.
func (p *prefetcher) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
	if p.head != nil {
		p.head.release()
	}
	for sc := range p.planned {
		sc.release()
	}
}

func sameKey(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}
