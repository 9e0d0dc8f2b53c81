// Package datagen is the datagen source: deterministic generated rows for
// demos, tests and benchmarks.
//
// Every table has the same columns. Row values are a pure function of the id,
// so a test can recompute what any row must hold. With parallelism p,
// subtask i generates ids i+1, i+1+p, i+1+2p, … of every table; the subtasks
// together produce each id from 1 to rows exactly once.
package datagen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
)

// Database is the database name of every generated table.
const Database = "datagen"

// Spec declares the datagen connector.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "datagen",
		Kind:        connectors.KindSource,
		Description: "generated rows for demos and benchmarks: id BIGINT 1..rows (primary key), name, amount DECIMAL(12,2), created_at TIMESTAMP(6), note (nullable)",
		Options: connectors.OptionSet{
			{Name: "rows", Type: connectors.TypeInt, Default: "0", Min: connectors.Int64(0),
				Description: "rows per table; 0 generates rows forever"},
			{Name: "rate", Type: connectors.TypeInt, Default: "0", Min: connectors.Int64(0),
				Description: "rows per second for the whole job; 0 is as fast as possible"},
			{Name: "batch_size", Type: connectors.TypeInt, Default: "1024", Min: connectors.Int64(1), Max: connectors.Int64(1 << 20),
				Description: "rows per batch"},
			{Name: "tables", Type: connectors.TypeList, Default: "t1",
				Description: "comma-separated table names, all in database datagen"},
		},
		NewSource: func(cfg connectors.Config, env connectors.Env) (connectors.Source, error) {
			return New(Config{
				Rows:        cfg.Int("rows"),
				Rate:        cfg.Int("rate"),
				BatchSize:   int(cfg.Int("batch_size")),
				Tables:      cfg.List("tables"),
				Subtask:     env.Subtask,
				Parallelism: env.Parallelism,
			}, env.Alloc), nil
		},
		Tables: func(_ context.Context, cfg connectors.Config) ([]connectors.TableInfo, error) {
			var out []connectors.TableInfo
			for _, t := range cfg.List("tables") {
				out = append(out, connectors.TableInfo{ID: connectors.TableID{Database: "datagen", Table: t}, Key: []string{"id"}})
			}
			return out, nil
		},
	}
}

// Config configures one datagen subtask.
type Config struct {
	Rows        int64 // per table; 0 = unbounded
	Rate        int64 // rows/s for the whole job; 0 = unlimited
	BatchSize   int
	Tables      []string
	Subtask     int
	Parallelism int
}

// Schema is the schema of every datagen batch.
var Schema = arrow.NewSchema([]arrow.Field{
	connectors.RowKindField,
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}},
	{Name: "created_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
}, &datagenKey)

// datagenKey declares id the primary key, so sinks that create tables
// make it one (without it a replay after a crash appended rows twice).
var datagenKey = connectors.KeyMetadata("id")

// Epoch is created_at of id 0; id n is Epoch + n seconds.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Row values as a function of the id, exported so tests can check content.

// Name returns the name column of id.
func Name(id int64) string { return "name-" + strconv.FormatInt(id, 10) }

// AmountCents returns the amount column of id, in cents.
func AmountCents(id int64) int64 { return (id * 137) % 100_000_000 }

// CreatedAt returns the created_at column of id.
func CreatedAt(id int64) time.Time { return Epoch.Add(time.Duration(id) * time.Second) }

// Note returns the note column of id; ok is false for NULL.
func Note(id int64) (string, bool) {
	if id%7 == 0 {
		return "", false
	}
	return "note-" + strconv.FormatInt(id%100, 10), true
}

// Source is one datagen subtask.
type Source struct {
	cfg     Config
	alloc   memory.Allocator
	builder *array.RecordBuilder
	emitted []int64 // rows emitted per table, by index in cfg.Tables
	next    int     // table to emit next (round robin)
	started time.Time
	total   int64 // rows emitted since Open, for rate limiting
	scratch []byte
}

var _ connectors.Source = (*Source)(nil)

// New returns a datagen subtask.
func New(cfg Config, alloc memory.Allocator) *Source {
	if cfg.Parallelism < 1 {
		cfg.Parallelism = 1
	}
	if cfg.BatchSize < 1 {
		cfg.BatchSize = 1024
	}
	if len(cfg.Tables) == 0 {
		cfg.Tables = []string{"t1"}
	}
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	return &Source{cfg: cfg, alloc: alloc, emitted: make([]int64, len(cfg.Tables))}
}

// position is the JSON form of a datagen Position: rows emitted per table.
type position map[string]int64

// Open resumes after from (nil starts at the first row).
func (s *Source) Open(_ context.Context, from connectors.Position) error {
	for i := range s.emitted {
		s.emitted[i] = 0
	}
	if len(from) > 0 {
		var p position
		if err := json.Unmarshal(from, &p); err != nil {
			return fmt.Errorf("datagen: bad position %q: %w", from, err)
		}
		for i, t := range s.cfg.Tables {
			s.emitted[i] = p[t]
		}
	}
	if s.builder == nil {
		s.builder = array.NewRecordBuilder(s.alloc, Schema)
	}
	s.started = time.Now()
	s.total = 0
	return nil
}

// share is how many rows of one table this subtask generates (-1: unbounded).
func (s *Source) share() int64 {
	if s.cfg.Rows <= 0 {
		return -1
	}
	i, p := int64(s.cfg.Subtask), int64(s.cfg.Parallelism)
	if s.cfg.Rows <= i {
		return 0
	}
	return (s.cfg.Rows - i + p - 1) / p
}

// Read returns the next batch, io.EOF once every table is complete.
func (s *Source) Read(ctx context.Context) (connectors.Batch, error) {
	if s.builder == nil {
		return connectors.Batch{}, fmt.Errorf("datagen: Read before Open")
	}
	share := s.share()
	// Pick the next table that still has rows, round robin.
	table := -1
	for k := 0; k < len(s.cfg.Tables); k++ {
		i := (s.next + k) % len(s.cfg.Tables)
		if share < 0 || s.emitted[i] < share {
			table = i
			break
		}
	}
	if table < 0 {
		return connectors.Batch{}, io.EOF
	}
	s.next = (table + 1) % len(s.cfg.Tables)

	n := int64(s.cfg.BatchSize)
	perSubtaskRate := int64(0)
	if s.cfg.Rate > 0 {
		perSubtaskRate = max(1, s.cfg.Rate/int64(s.cfg.Parallelism))
		// Keep batches flowing about ten times a second at low rates.
		n = min(n, max(1, perSubtaskRate/10))
	}
	if share >= 0 {
		n = min(n, share-s.emitted[table])
	}
	if perSubtaskRate > 0 {
		due := s.started.Add(time.Duration(float64(s.total+n) / float64(perSubtaskRate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return connectors.Batch{}, ctx.Err()
			case <-t.C:
			}
		}
	}

	first := s.emitted[table]
	rec := s.build(first, n)
	s.emitted[table] += n
	s.total += n
	pos, err := json.Marshal(s.position())
	if err != nil {
		rec.Release()
		return connectors.Batch{}, err
	}
	return connectors.Batch{
		Table:     connectors.TableID{Database: Database, Table: s.cfg.Tables[table]},
		Record:    rec,
		Position:  pos,
		EventTime: time.Now(),
	}, nil
}

func (s *Source) position() position {
	p := make(position, len(s.cfg.Tables))
	for i, t := range s.cfg.Tables {
		p[t] = s.emitted[i]
	}
	return p
}

// build generates rows first..first+n-1 of this subtask's share.
func (s *Source) build(first, n int64) arrow.Record {
	b := s.builder
	b.Reserve(int(n))
	kinds := b.Field(0).(*array.Int8Builder)
	ids := b.Field(1).(*array.Int64Builder)
	names := b.Field(2).(*array.StringBuilder)
	amounts := b.Field(3).(*array.Decimal128Builder)
	created := b.Field(4).(*array.TimestampBuilder)
	notes := b.Field(5).(*array.StringBuilder)
	names.ReserveData(int(n) * 12)
	notes.ReserveData(int(n) * 7)
	p, sub := int64(s.cfg.Parallelism), int64(s.cfg.Subtask)
	for k := int64(0); k < n; k++ {
		id := sub + 1 + (first+k)*p
		kinds.UnsafeAppend(int8(connectors.Insert))
		ids.UnsafeAppend(id)
		s.scratch = strconv.AppendInt(append(s.scratch[:0], "name-"...), id, 10)
		names.BinaryBuilder.Append(s.scratch)
		amounts.UnsafeAppend(decimal128.FromI64(AmountCents(id)))
		created.UnsafeAppend(arrow.Timestamp(CreatedAt(id).UnixMicro()))
		if id%7 == 0 {
			notes.AppendNull()
		} else {
			s.scratch = strconv.AppendInt(append(s.scratch[:0], "note-"...), id%100, 10)
			notes.BinaryBuilder.Append(s.scratch)
		}
	}
	return b.NewRecord()
}

// Close releases the builder.
func (s *Source) Close() error {
	if s.builder != nil {
		s.builder.Release()
		s.builder = nil
	}
	return nil
}
