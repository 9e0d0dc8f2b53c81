package connectors

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Kind says where a connector stands in a job.
type Kind string

// Connector kinds.
const (
	KindSource    Kind = "source"
	KindSink      Kind = "sink"
	KindTransform Kind = "transform"
)

// Spec declares a connector: its name (part of the product), kind, options,
// and the factory for its kind.
type Spec struct {
	Name         string
	Kind         Kind
	Description  string
	Options      OptionSet
	NewSource    SourceFactory
	NewSink      SinkFactory
	NewTransform TransformFactory
	Check        Checker // optional, run at CREATE SYNC JOB
	// MaxParallelism is the most parallel instances the connector can run
	// as (0: no limit); the planner refuses a job asking for more.
	MaxParallelism int
	// Tables (sources, optional) lists the tables the source will deliver,
	// as known at CREATE (after Check passed).
	Tables func(ctx context.Context, cfg Config) ([]TableInfo, error)
	// CheckTables (sinks, optional) refuses at CREATE a job whose source
	// tables the sink cannot serve as configured (ErrPrecondition).
	CheckTables func(ctx context.Context, cfg Config, tables []TableInfo) error
	// Retention (sources, optional) says how long the source server keeps
	// what a position needs (a binlog's purge forecast); called for
	// paused jobs too, with the last committed checkpoint's position.
	Retention func(ctx context.Context, cfg Config, pos Position) (RetentionInfo, error)
	// Target (sinks, optional) says how to read what the sink wrote over
	// the MySQL protocol (CHECKSUM SYNC JOB).
	Target func(cfg Config) (SQLTarget, error)
	// SourceSQL (sources, optional) is the same for the source's server.
	SourceSQL func(cfg Config) (SQLTarget, error)
}

// SQLTarget is a server readable over the MySQL protocol, and where a
// table of the job's source lands on it.
type SQLTarget struct {
	Addr, User, Password string
	// Table is the table that holds source table id's rows (for a
	// source: id itself).
	Table func(id TableID) TableID
}

// TableInfo is what a source knows at CREATE about one of its tables.
type TableInfo struct {
	ID  TableID
	Key []string // primary key columns; empty: the table has none
}

// RefuseKeyless is the one rule of at-least-once sinks that deduplicate by
// key: a table without one is refused (ErrPrecondition), saying what a
// replay would do to it (consequence) and the three ways out. nil when
// every table has a key.
func RefuseKeyless(tables []TableInfo, consequence string) error {
	var keyless []string
	for _, t := range tables {
		if len(t.Key) == 0 {
			keyless = append(keyless, t.ID.String())
		}
	}
	if len(keyless) == 0 {
		return nil
	}
	if len(keyless) > 5 {
		keyless = append(keyless[:5], fmt.Sprintf("and %d more", len(keyless)-5))
	}
	return fmt.Errorf("%w: %s has no primary key, so %s; give it a primary key, use 'semantic'='exactly-once', or accept duplicates with 'keyless'='append'",
		ErrPrecondition, strings.Join(keyless, ", "), consequence)
}

// Registry holds the connectors a server offers. It is filled once at start
// (by cmd/sluice) and read-only afterwards, so it needs no lock.
type Registry struct {
	specs map[string]*Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{specs: map[string]*Spec{}} }

// Register adds a connector. It refuses a duplicate name or a spec whose
// factory does not match its kind.
func (r *Registry) Register(s Spec) error {
	name := strings.ToLower(s.Name)
	if _, ok := r.specs[name]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateRegister, s.Name)
	}
	ok := (s.Kind == KindSource && s.NewSource != nil) ||
		(s.Kind == KindSink && s.NewSink != nil) ||
		(s.Kind == KindTransform && s.NewTransform != nil)
	if !ok {
		return fmt.Errorf("connector %s: kind %q without its factory", s.Name, s.Kind)
	}
	s.Name = name
	r.specs[name] = &s
	return nil
}

// MustRegister is Register for wiring code, where an error is a bug.
func (r *Registry) MustRegister(specs ...Spec) *Registry {
	for _, s := range specs {
		if err := r.Register(s); err != nil {
			panic(err)
		}
	}
	return r
}

// Lookup finds a connector of the given kind by case-insensitive name. The
// error wraps ErrUnknownConnector and lists the valid names of that kind.
func (r *Registry) Lookup(name string, kind Kind) (*Spec, error) {
	s, ok := r.specs[strings.ToLower(name)]
	if ok && s.Kind == kind {
		return s, nil
	}
	var valid []string
	for _, c := range r.All() {
		if c.Kind == kind {
			valid = append(valid, c.Name)
		}
	}
	what := "no such connector"
	if ok {
		what = fmt.Sprintf("%s is a %s, not a %s", s.Name, s.Kind, kind)
	}
	return nil, fmt.Errorf("%w %q (%s); valid %ss are %s", ErrUnknownConnector, name, what, kind, strings.Join(valid, ", "))
}

// All lists every connector, sorted by kind then name.
func (r *Registry) All() []*Spec {
	out := make([]*Spec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}
