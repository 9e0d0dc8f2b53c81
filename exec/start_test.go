package exec

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"sluice/catalog"
	"sluice/connectors"
)

// clockSource stands for a source whose fresh start position is "now"
// (a binlog reader with startup.mode latest or initial): each fresh Open
// starts at a later point of an ever-growing log, so a restart that does
// not find the first attempt's position skips what lies between.
type clockSource struct {
	log   *atomic.Int64 // the head of the shared log, advanced by each fresh Open
	opens *[]string     // the position each Open started from
	mu    *sync.Mutex
	env   connectors.Env
	next  int64
}

func (s *clockSource) Open(_ context.Context, from connectors.Position) error {
	if len(from) == 0 {
		s.next = s.log.Add(1000) // time passed since any earlier start
	} else {
		n, err := strconv.ParseInt(string(from), 10, 64)
		if err != nil {
			return err
		}
		s.next = n
	}
	s.mu.Lock()
	*s.opens = append(*s.opens, strconv.FormatInt(s.next, 10))
	s.mu.Unlock()
	return nil
}

func (s *clockSource) Read(ctx context.Context) (connectors.Batch, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Batch{}, err
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: connectors.RowKindColumn, Type: arrow.PrimitiveTypes.Int8},
		{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(s.env.Alloc, schema)
	defer b.Release()
	for i := 0; i < 10; i++ {
		b.Field(0).(*array.Int8Builder).Append(int8(connectors.Insert))
		b.Field(1).(*array.Int64Builder).Append(s.next)
		s.next++
	}
	return connectors.Batch{Table: connectors.TableID{Database: "log", Table: "t"}, Record: b.NewRecord(),
		Position: connectors.Position(strconv.FormatInt(s.next, 10))}, nil
}

// Position is the position before anything was read: where Open started.
func (s *clockSource) Position() connectors.Position {
	return connectors.Position(strconv.FormatInt(s.next, 10))
}

func (s *clockSource) Close() error { return nil }

// A job that fails before its first regular checkpoint restarts from the
// position its first attempt started at, not from a new "now": the start
// position is durable before the first row reaches the sink (issue 10,
// defect 1: deletes in that window were never replayed).
func TestRestartBeforeFirstCheckpointReplaysFromTheStart(t *testing.T) {
	h := newHarness(t, 0)
	var head atomic.Int64
	var opens []string
	var mu sync.Mutex
	h.eng.cfg.Registry.MustRegister(connectors.Spec{Name: "clock", Kind: connectors.KindSource,
		NewSource: func(_ connectors.Config, env connectors.Env) (connectors.Source, error) {
			return &clockSource{log: &head, opens: &opens, mu: &mu, env: env}, nil
		}})
	var sawCheckpoint atomic.Bool
	var jobID atomic.Uint64
	h.rec.onWrite = func() {
		if _, ok := h.cat.LastCheckpoint(jobID.Load(), 1); ok {
			sawCheckpoint.Store(true)
		}
	}
	h.rec.failAt = 1005 // the first attempt fails after writing rows, before any regular checkpoint
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "clock"}, Sink: catalog.ConnectorRef{Connector: "record"},
		Options: map[string]string{"checkpoint.interval": "1h", "retry.times": "1", "retry.interval": "10ms"}}
	plan := catalog.Plan{Vertices: []catalog.Vertex{{ID: 1, Kind: "source", Connector: "clock", Ref: catalog.RefSource},
		{ID: 2, Kind: "sink", Connector: "record", Ref: catalog.RefSink}},
		Pipelines: []catalog.Pipeline{{ID: 1, Vertices: []int{1, 2}, Parallelism: 1}}}
	res, err := h.cat.CreateJob(context.Background(), catalog.CreateJob{Name: "clk", Spec: spec, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	jobID.Store(res.Job.ID)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(opens)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opens) != 2 || opens[0] != "1000" || opens[1] != "1000" {
		t.Fatalf("attempts opened at %v, want both at 1000 (the first attempt's start)", opens)
	}
	if !sawCheckpoint.Load() {
		t.Fatal("the sink received rows before the start position was in the catalog")
	}
}

// ackingClock is a clockSource that logs the positions it is told are safe.
type ackingClock struct {
	clockSource
	order *orderLog
}

func (s *ackingClock) Ack(_ context.Context, pos connectors.Position) error {
	s.order.add("ack " + string(pos))
	return nil
}

type orderLog struct {
	mu  sync.Mutex
	log []string
}

func (o *orderLog) add(s string) {
	o.mu.Lock()
	o.log = append(o.log, s)
	o.mu.Unlock()
}

// twoPhaseLog is a two-phase sink that logs its commits, slowly.
type twoPhaseLog struct {
	recSink
	order *orderLog
}

func (s *twoPhaseLog) Recover(context.Context, uint64, []byte) error { return nil }
func (s *twoPhaseLog) PreCommit(context.Context, uint64) ([]byte, error) {
	return nil, nil
}
func (s *twoPhaseLog) Commit(_ context.Context, id uint64, _ []byte) error {
	time.Sleep(5 * time.Millisecond) // an ack racing the commit would overtake it
	s.order.add("commit " + strconv.FormatUint(id, 10))
	return nil
}

// A source learns a position is safe only after the sink committed the
// checkpoint that holds it (issue 10, defect 13: the ack overtook the
// commit through a buffered channel).
func TestSourceAckFollowsSinkCommit(t *testing.T) {
	h := newHarness(t, 0)
	var head atomic.Int64
	var opens []string
	var mu sync.Mutex
	order := &orderLog{}
	h.eng.cfg.Registry.MustRegister(connectors.Spec{Name: "ackclock", Kind: connectors.KindSource,
		NewSource: func(_ connectors.Config, env connectors.Env) (connectors.Source, error) {
			return &ackingClock{clockSource: clockSource{log: &head, opens: &opens, mu: &mu, env: env}, order: order}, nil
		}}, connectors.Spec{Name: "tplog", Kind: connectors.KindSink,
		NewSink: func(connectors.Config, connectors.Env) (connectors.Sink, error) {
			return &twoPhaseLog{recSink: recSink{r: h.rec}, order: order}, nil
		}})
	spec := catalog.JobSpec{Source: catalog.ConnectorRef{Connector: "ackclock"}, Sink: catalog.ConnectorRef{Connector: "tplog"},
		Options: map[string]string{"checkpoint.interval": "20ms"}}
	plan := catalog.Plan{Vertices: []catalog.Vertex{{ID: 1, Kind: "source", Connector: "ackclock", Ref: catalog.RefSource},
		{ID: 2, Kind: "sink", Connector: "tplog", Ref: catalog.RefSink}},
		Pipelines: []catalog.Pipeline{{ID: 1, Vertices: []int{1, 2}, Parallelism: 1}}}
	if _, err := h.cat.CreateJob(context.Background(), catalog.CreateJob{Name: "ack", Spec: spec, Plan: plan}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		order.mu.Lock()
		n := len(order.log)
		order.mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	order.mu.Lock()
	defer order.mu.Unlock()
	commits, acks := 0, 0
	for _, e := range order.log {
		if e[:3] == "ack" {
			if acks++; acks > commits {
				t.Fatalf("ack %d came before its commit: %v", acks, order.log)
			}
		} else {
			commits++
		}
	}
	if acks < 5 {
		t.Fatalf("only %d acks: %v", acks, order.log)
	}
}
