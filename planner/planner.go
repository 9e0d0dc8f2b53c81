package planner

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"sluice/catalog"
	"sluice/connectors"
)

// JobOptions declares the WITH ( … ) options of a job.
var JobOptions = connectors.OptionSet{
	{Name: "parallelism", Type: connectors.TypeInt, Default: "1", Min: connectors.Int64(1), Max: connectors.Int64(256),
		Description: "parallel instances of each pipeline"},
	{Name: "checkpoint.interval", Type: connectors.TypeDuration, Default: "30s", MinDuration: 10_000_000,
		Description: "time between checkpoints (e.g. 500ms, 30s)"},
	{Name: "checkpoint.timeout", Type: connectors.TypeDuration, Default: "10m", MinDuration: 100_000_000,
		Description: "a checkpoint not complete after this long fails"},
	{Name: "checkpoint.retained", Type: connectors.TypeInt, Default: "3", Min: connectors.Int64(1), Max: connectors.Int64(100),
		Description: "completed checkpoints kept per pipeline"},
	{Name: "task.stall_timeout", Type: connectors.TypeDuration, Default: "5m", MinDuration: 10_000_000,
		Description: "a sink call not returned after this long reports its task STALLED (slow, not dead; it is not stopped)"},
	{Name: "retry.times", Type: connectors.TypeInt, Default: "3", Min: connectors.Int64(0), Max: connectors.Int64(1000),
		Description: "restarts of a failed pipeline before the job fails"},
	{Name: "retry.interval", Type: connectors.TypeDuration, Default: "10s",
		Description: "wait between restarts of a failed pipeline"},
	{Name: "read.limit.rows_per_second", Type: connectors.TypeInt, Default: "0", Min: connectors.Int64(0),
		Description: "rows per second read by the whole job; 0 is unlimited"},
	{Name: "read.limit.bytes_per_second", Type: connectors.TypeInt, Default: "0", Min: connectors.Int64(0),
		Description: "bytes per second read by the whole job; 0 is unlimited"},
	{Name: "tags", Type: connectors.TypeString,
		Description: "run only on nodes with these tags (k=v,…)"},
	{Name: "schedule.strategy", Type: connectors.TypeEnum, Enum: []string{"wait", "reject"}, Default: "wait",
		Description: "when slots are short: wait for them, or fail the job"},
}

// Planner validates statements against the connectors a server offers.
type Planner struct {
	reg *connectors.Registry
}

// New returns a planner over reg.
func New(reg *connectors.Registry) *Planner { return &Planner{reg: reg} }

// Create validates a CREATE SYNC JOB and returns the catalog command for it.
func (p *Planner) Create(stmt *CreateJob) (catalog.CreateJob, error) {
	spec := catalog.JobSpec{}
	var err error
	if spec.Source, err = p.validate(stmt.Source, connectors.KindSource); err != nil {
		return catalog.CreateJob{}, err
	}
	for _, t := range stmt.Transforms {
		ref, err := p.validate(t, connectors.KindTransform)
		if err != nil {
			return catalog.CreateJob{}, err
		}
		spec.Transforms = append(spec.Transforms, ref)
	}
	if spec.Sink, err = p.validate(stmt.Sink, connectors.KindSink); err != nil {
		return catalog.CreateJob{}, err
	}
	if spec.Options, err = validateJobOptions(optionMap(stmt.With)); err != nil {
		return catalog.CreateJob{}, err
	}
	if err := p.checkParallelism(spec); err != nil {
		return catalog.CreateJob{}, err
	}
	cmd := catalog.CreateJob{Name: stmt.Name, Spec: spec, Plan: Build(spec), IfNotExists: stmt.IfNotExists, Claims: p.claims(spec)}
	// The stored text never holds a secret (the spec's are sealed by the
	// catalog client before they are written).
	cmd.SQL = p.Render(stmt.Name, spec, true)
	return cmd, nil
}

// checkParallelism refuses a parallelism a connector of the job cannot run at.
func (p *Planner) checkParallelism(spec catalog.JobSpec) error {
	cfg, err := JobConfig(spec)
	if err != nil {
		return err
	}
	par := cfg.Int("parallelism")
	refs := append([]catalog.ConnectorRef{spec.Source, spec.Sink}, spec.Transforms...)
	kinds := append([]connectors.Kind{connectors.KindSource, connectors.KindSink}, make([]connectors.Kind, len(spec.Transforms))...)
	for i := 2; i < len(kinds); i++ {
		kinds[i] = connectors.KindTransform
	}
	for i, ref := range refs {
		cs, err := p.reg.Lookup(ref.Connector, kinds[i])
		if err != nil {
			return err
		}
		if cs.MaxParallelism > 0 && par > int64(cs.MaxParallelism) {
			return &connectors.OptionError{Owner: "job", Option: "parallelism", Err: connectors.ErrBadOptionValue,
				Detail: fmt.Sprintf("%s runs as at most %d parallel instance(s) per job, and the job asks for %d; leave parallelism out or set it to %d",
					cs.Name, cs.MaxParallelism, par, cs.MaxParallelism)}
		}
	}
	return nil
}

// Check verifies a job about to be created against the world: options
// marked Unique against the existing jobs, then each connector's Check
// (reachability, credentials, server settings). CREATE runs it; EXPLAIN
// does not, so a plan can be shown without touching the source.
func (p *Planner) Check(ctx context.Context, spec catalog.JobSpec, existing []catalog.Job) error {
	for _, cl := range p.claims(spec) {
		for _, j := range existing {
			for _, o := range p.claims(j.Spec) {
				if o == cl {
					return &connectors.OptionError{Owner: cl.Connector, Option: cl.Option, Err: connectors.ErrBadOptionValue,
						Detail: fmt.Sprintf("%s is already used by job %s; each job needs its own (leave it out to have one allocated)", cl.Value, j.Name)}
				}
			}
		}
	}
	for _, u := range uses(spec) {
		cs, err := p.reg.Lookup(u.ref.Connector, u.kind)
		if err != nil {
			return err
		}
		if cs.Check == nil {
			continue
		}
		cfg, err := cs.Options.Validate(cs.Name, u.ref.Options)
		if err != nil {
			return err
		}
		if err := cs.Check(ctx, cfg); err != nil {
			return fmt.Errorf("%s %s: %w", u.kind, cs.Name, err)
		}
	}
	return p.checkTables(ctx, spec)
}

type use struct {
	ref  catalog.ConnectorRef
	kind connectors.Kind
}

func uses(s catalog.JobSpec) []use {
	out := []use{{s.Source, connectors.KindSource}, {s.Sink, connectors.KindSink}}
	for _, t := range s.Transforms {
		out = append(out, use{t, connectors.KindTransform})
	}
	return out
}

// claims lists the values of options marked Unique that a job sets: the
// state machine refuses a CREATE whose claim another job holds (Check
// refuses it earlier against this node's copy, with the same message).
func (p *Planner) claims(spec catalog.JobSpec) []catalog.Claim {
	var out []catalog.Claim
	for _, u := range uses(spec) {
		cs, err := p.reg.Lookup(u.ref.Connector, u.kind)
		if err != nil {
			continue
		}
		for _, opt := range cs.Options {
			if v, ok := u.ref.Options[opt.Name]; ok && opt.Unique {
				out = append(out, catalog.Claim{Kind: string(u.kind), Connector: cs.Name, Option: opt.Name, Value: v})
			}
		}
	}
	return out
}

// checkTables lets the sink refuse source tables it cannot serve as
// configured (a table without a key, at-least-once): a rule that needs
// both ends, checked at CREATE rather than at the first batch.
func (p *Planner) checkTables(ctx context.Context, spec catalog.JobSpec) error {
	src, err := p.reg.Lookup(spec.Source.Connector, connectors.KindSource)
	if err != nil {
		return err
	}
	snk, err := p.reg.Lookup(spec.Sink.Connector, connectors.KindSink)
	if err != nil {
		return err
	}
	if src.Tables == nil || snk.CheckTables == nil {
		return nil
	}
	srcCfg, err := src.Options.Validate(src.Name, spec.Source.Options)
	if err != nil {
		return err
	}
	snkCfg, err := snk.Options.Validate(snk.Name, spec.Sink.Options)
	if err != nil {
		return err
	}
	tables, err := src.Tables(ctx, srcCfg)
	if err != nil {
		return fmt.Errorf("source %s: %w", src.Name, err)
	}
	if err := snk.CheckTables(ctx, snkCfg, tables); err != nil {
		return fmt.Errorf("sink %s: %w", snk.Name, err)
	}
	return nil
}

// Alter validates ALTER SYNC JOB … SET against job and returns the command.
// Only WITH options can change; connector options are fixed at CREATE.
func (p *Planner) Alter(job catalog.Job, stmt *AlterJob) (catalog.AlterJob, error) {
	merged := map[string]string{}
	for k, v := range job.Spec.Options {
		merged[k] = v
	}
	for _, o := range stmt.Options {
		opt, ok := JobOptions.Lookup(o.Key)
		if !ok {
			return catalog.AlterJob{}, &connectors.OptionError{Owner: "job", Option: o.Key, Err: connectors.ErrUnknownOption,
				Detail: "ALTER SYNC JOB changes job options only; valid options are " + strings.Join(JobOptions.Names(), ", ")}
		}
		if opt.Name == "parallelism" && o.Value != effective(job.Spec.Options, opt) {
			return catalog.AlterJob{}, &connectors.OptionError{Owner: "job", Option: opt.Name, Err: connectors.ErrBadOptionValue,
				Detail: "parallelism is fixed at CREATE: source positions are kept per parallel task; drop and re-create the job to change it"}
		}
		merged[opt.Name] = o.Value
	}
	opts, err := validateJobOptions(merged)
	if err != nil {
		return catalog.AlterJob{}, err
	}
	spec := job.Spec
	spec.Options = opts
	return catalog.AlterJob{Name: job.Name, Options: opts, Plan: Build(spec), SQL: p.Render(job.Name, spec, true)}, nil
}

// effective is an option's value in opts, or its default.
func effective(opts map[string]string, opt connectors.Option) string {
	if v, ok := opts[opt.Name]; ok {
		return v
	}
	return opt.Default
}

func optionMap(opts []Option) map[string]string {
	m := make(map[string]string, len(opts))
	for _, o := range opts {
		m[o.Key] = o.Value
	}
	return m
}

// validateJobOptions checks WITH options and returns them with canonical
// keys. Defaults are not stored: a job keeps only what the user chose, so a
// later change of a default reaches it.
func validateJobOptions(raw map[string]string) (map[string]string, error) {
	if _, err := JobOptions.Validate("job", raw); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		opt, _ := JobOptions.Lookup(k)
		out[opt.Name] = v
	}
	return out, nil
}

func (p *Planner) validate(c ConnectorClause, kind connectors.Kind) (catalog.ConnectorRef, error) {
	spec, err := p.reg.Lookup(c.Name, kind)
	if err != nil {
		return catalog.ConnectorRef{}, err
	}
	raw := optionMap(c.Options)
	if _, err := spec.Options.Validate(spec.Name, raw); err != nil {
		return catalog.ConnectorRef{}, err
	}
	canon := make(map[string]string, len(raw))
	for k, v := range raw {
		opt, _ := spec.Options.Lookup(k)
		canon[opt.Name] = v
	}
	return catalog.ConnectorRef{Connector: spec.Name, Options: canon}, nil
}

// RetryInterval is a job's retry.interval (validated at CREATE; the
// default when its options no longer validate).
func RetryInterval(spec catalog.JobSpec) time.Duration {
	if cfg, err := JobConfig(spec); err == nil {
		return cfg.Duration("retry.interval")
	}
	return 10 * time.Second
}

// JobConfig returns a job's validated WITH options with defaults filled in.
func JobConfig(spec catalog.JobSpec) (connectors.Config, error) {
	return JobOptions.Validate("job", spec.Options)
}

// Build derives the logical DAG and pipelines of a validated spec. There is
// no repartitioning yet, so the whole chain is one pipeline (operator
// chaining, as in Zeta) run `parallelism` times.
func Build(spec catalog.JobSpec) catalog.Plan {
	cfg, err := JobConfig(spec)
	par := 1
	if err == nil {
		par = int(cfg.Int("parallelism"))
	}
	var plan catalog.Plan
	add := func(kind, conn string, ref int) {
		id := len(plan.Vertices) + 1
		plan.Vertices = append(plan.Vertices, catalog.Vertex{ID: id, Kind: kind, Connector: conn, Ref: ref})
		if id > 1 {
			plan.Edges = append(plan.Edges, [2]int{id - 1, id})
		}
	}
	add(string(connectors.KindSource), spec.Source.Connector, catalog.RefSource)
	for i, t := range spec.Transforms {
		add(string(connectors.KindTransform), t.Connector, i)
	}
	add(string(connectors.KindSink), spec.Sink.Connector, catalog.RefSink)
	ids := make([]int, len(plan.Vertices))
	for i, v := range plan.Vertices {
		ids[i] = v.ID
	}
	plan.Pipelines = []catalog.Pipeline{{ID: 1, Vertices: ids, Parallelism: par}}
	return plan
}

// Mask is what a secret option shows instead of its value.
const Mask = "******"

// IsSecret reports whether a connector option must never be shown or
// stored in clear: declared Secret, or named like a password whatever the
// connector says.
func (p *Planner) IsSecret(connector, option string) bool {
	if strings.Contains(strings.ToLower(option), "password") || strings.Contains(strings.ToLower(option), "secret") {
		return true
	}
	for _, kind := range []connectors.Kind{connectors.KindSource, connectors.KindSink, connectors.KindTransform} {
		if s, err := p.reg.Lookup(connector, kind); err == nil {
			if o, ok := s.Options.Lookup(option); ok {
				return o.Secret
			}
		}
	}
	return false
}

// MaskedOptions returns a connector's options with secrets masked.
func (p *Planner) MaskedOptions(ref catalog.ConnectorRef) map[string]string {
	out := make(map[string]string, len(ref.Options))
	for k, v := range ref.Options {
		if p.IsSecret(ref.Connector, k) {
			v = Mask
		}
		out[k] = v
	}
	return out
}

// Render writes the canonical CREATE SYNC JOB text of a job; with mask,
// secret values are replaced by Mask.
func (p *Planner) Render(name string, spec catalog.JobSpec, mask bool) string {
	var b strings.Builder
	b.WriteString("CREATE SYNC JOB ")
	b.WriteString(QuoteIdent(name))
	conn := func(kw string, ref catalog.ConnectorRef) {
		opts := ref.Options
		if mask {
			opts = p.MaskedOptions(ref)
		}
		fmt.Fprintf(&b, "\n  %s %s (%s)", kw, ref.Connector, renderOptions(opts))
	}
	conn("FROM", spec.Source)
	for _, t := range spec.Transforms {
		conn("TRANSFORM", t)
	}
	conn("TO", spec.Sink)
	if len(spec.Options) > 0 {
		fmt.Fprintf(&b, "\n  WITH (%s)", renderOptions(spec.Options))
	}
	return b.String()
}

func renderOptions(opts map[string]string) string {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = QuoteString(k) + "=" + QuoteString(opts[k])
	}
	return strings.Join(parts, ", ")
}

// QuoteIdent backquotes a name when it is not a plain identifier.
func QuoteIdent(s string) string {
	plain := s != "" && !isAllDigits(s)
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			plain = false
		}
	}
	if plain && !reserved[strings.ToUpper(s)] {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

var reserved = map[string]bool{"FROM": true, "TO": true, "WITH": true, "TRANSFORM": true, "SET": true,
	"IF": true, "NOT": true, "EXISTS": true, "LIKE": true, "SYNC": true, "JOB": true, "JOBS": true}

// QuoteString single-quotes a value the way the lexer reads it back.
func QuoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)
	return "'" + r.Replace(s) + "'"
}

// Assignment is where a task runs, for EXPLAIN.
type Assignment struct {
	Pipeline, Subtask int
	Node              string
	Slot              int
	Attempt           int
	State             string
}

// Explain renders a job's plan at its three levels: logical DAG, pipelines,
// tasks (with their slots when the job runs).
func (p *Planner) Explain(spec catalog.JobSpec, plan catalog.Plan, tasks []Assignment) []string {
	var out []string
	out = append(out, "== Logical DAG ==")
	byID := map[int]catalog.Vertex{}
	for _, v := range plan.Vertices {
		byID[v.ID] = v
		ref := spec.Ref(v)
		out = append(out, fmt.Sprintf("[%d] %s %s (%s)", v.ID, v.Kind, v.Connector, renderOptions(p.MaskedOptions(ref))))
	}
	for _, e := range plan.Edges {
		out = append(out, fmt.Sprintf("[%d] -> [%d]", e[0], e[1]))
	}
	out = append(out, "== Pipelines ==")
	for _, pl := range plan.Pipelines {
		var chain []string
		for _, id := range pl.Vertices {
			chain = append(chain, fmt.Sprintf("[%d] %s", id, byID[id].Connector))
		}
		out = append(out, fmt.Sprintf("pipeline %d: %s; parallelism %d", pl.ID, strings.Join(chain, " -> "), pl.Parallelism))
	}
	out = append(out, "== Tasks ==")
	at := map[[2]int]Assignment{}
	for _, a := range tasks {
		at[[2]int{a.Pipeline, a.Subtask}] = a
	}
	for _, pl := range plan.Pipelines {
		for s := 0; s < pl.Parallelism; s++ {
			line := fmt.Sprintf("pipeline %d task %d: ", pl.ID, s)
			if a, ok := at[[2]int{pl.ID, s}]; ok {
				line += fmt.Sprintf("node %s slot %d attempt %d %s", a.Node, a.Slot, a.Attempt, a.State)
				if s == 0 {
					line += " (coordinates the pipeline's checkpoints)"
				}
			} else {
				line += "not scheduled"
			}
			out = append(out, line)
		}
	}
	return out
}
