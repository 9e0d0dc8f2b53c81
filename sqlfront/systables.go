package sqlfront

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/exec"
	"sluice/planner"
	"sluice/raftstore"
)

var (
	tVarchar  = types.MustCreateStringWithDefaults(sqltypes.VarChar, 255)
	tText     = types.LongText
	tDatetime = types.MustCreateDatetimeType(sqltypes.Datetime, 6)
)

func col(table, name string, typ sql.Type, nullable bool) *sql.Column {
	return &sql.Column{Name: name, Type: typ, Nullable: nullable, Source: table, DatabaseSource: DatabaseName}
}

// schema builds a table schema; name, type and nullability per column.
type colDef struct {
	name     string
	typ      sql.Type
	nullable bool
}

func schema(table string, defs ...colDef) sql.Schema {
	s := make(sql.Schema, len(defs))
	for i, d := range defs {
		s[i] = col(table, d.name, d.typ, d.nullable)
	}
	return s
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullableInt is NULL for 0 (none).
func nullableInt(n int) any {
	if n == 0 {
		return nil
	}
	return int64(n)
}

func boolInt(b bool) int8 {
	if b {
		return 1
	}
	return 0
}

// Runtime is what the system tables read from the local executor.
// *exec.Engine implements it.
type Runtime interface {
	Tasks() []exec.TaskRow
	Slots() []exec.SlotRow
	SlotUsage() (total, used int)
	MetricRows() []exec.MetricRow
	TableRows() []exec.TableRow
	SourceRows() []exec.SourceRow
	RiskRows() []exec.RiskRow
}

// Members changes the cluster's membership (cluster.Peers implements it).
type Members interface {
	RemoveNode(ctx context.Context, id string) error
}

// Liveness is what sluice.nodes reads of the leader's heartbeat records
// (cluster.ClusterWork implements it): a node's last heartbeat, its status
// (UP, SUSPECT, DOWN) and the slots it reported in use.
type Liveness interface {
	NodeSeen(id string) (last time.Time, status string, slotsUsed int, ok bool)
}

// Cluster is what the system tables read from the local Raft node.
type Cluster interface {
	State() string
	Leader() (addr, id string)
	Servers() ([]raftstore.Server, error)
}

// Reads makes a read linearizable (cluster.Peers implements it): it
// returns once this node has applied every write acknowledged anywhere
// before the call.
type Reads interface {
	ReadBarrier(ctx context.Context) error
}

// ReadConsistencyVar is the session variable that chooses how system
// tables and SHOW statements read: 'local' (default: this node's copy, on
// a follower possibly a moment behind) or 'linearizable' (first catch up
// with the leader, which confirms it still leads).
const ReadConsistencyVar = "sluice_read_consistency"

// readBarrier waits for linearizable reads when the session asks for them.
func (s *Server) readBarrier(ctx *sql.Context) error {
	v, err := ctx.GetSessionVariable(ctx, ReadConsistencyVar)
	if err != nil || v != "linearizable" || s.cfg.Reads == nil {
		return nil
	}
	bctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if err := s.cfg.Reads.ReadBarrier(bctx); err != nil {
		return toSQLError(fmt.Errorf("a linearizable read needs the leader (set %s = 'local' to read this node's copy): %w", ReadConsistencyVar, err))
	}
	return nil
}

// systemTables builds the tables of the sluice database.
func (s *Server) systemTables() []*sysTable {
	tables := s.tableList()
	for _, t := range tables {
		t.barrier = s.readBarrier
	}
	return tables
}

func (s *Server) tableList() []*sysTable {
	cat := s.cfg.Catalog
	return []*sysTable{
		{
			name: "jobs", pk: []int{0},
			schema: schema("jobs",
				colDef{"job_id", types.Uint64, false}, colDef{"name", tVarchar, false}, colDef{"state", tVarchar, false},
				colDef{"source", tVarchar, false}, colDef{"transforms", tVarchar, true}, colDef{"sink", tVarchar, false},
				colDef{"parallelism", types.Int64, false}, colDef{"created_at", tDatetime, false},
				colDef{"updated_at", tDatetime, false}, colDef{"error", tText, true}, colDef{"restarts", types.Int64, false},
				colDef{"attempt", types.Int64, false}, colDef{"version", types.Uint64, false},
				colDef{"queue_position", types.Int64, true}, colDef{"lag_ms", types.Int64, false},
				colDef{"source_head", tText, true}, colDef{"applied_position", tText, true}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				jobs := cat.Jobs()
				queue := catalog.QueuePositions(jobs)
				statuses := s.jobStatuses(jobs)
				now := time.Now()
				for _, j := range jobs {
					st := statuses[j.ID]
					var par int64
					var tr []string
					for _, p := range j.Plan.Pipelines {
						par = max(par, int64(p.Parallelism))
					}
					for _, t := range j.Spec.Transforms {
						tr = append(tr, t.Connector)
					}
					rows = append(rows, sql.NewRow(j.ID, j.Name, string(j.State), j.Spec.Source.Connector,
						nullable(strings.Join(tr, ",")), j.Spec.Sink.Connector, par, j.CreatedAt, j.UpdatedAt, nullable(j.Error),
						int64(j.Restarts), int64(j.Attempt), j.Version, nullableInt(queue[j.ID]),
						st.jobLag(j, now), nullable(st.source.Head), nullable(st.applied)))
				}
				return rows
			},
		},
		s.jobTablesTable(),
		s.jobHistoryTable(),
		s.binlogRiskTable(),
		s.verificationsTable(),
		s.notificationsTable(),
		{
			name: "tasks", pk: []int{0, 1, 2},
			schema: schema("tasks",
				colDef{"job", tVarchar, false}, colDef{"pipeline_id", types.Int64, false}, colDef{"task_id", types.Int64, false},
				colDef{"node_id", tVarchar, false}, colDef{"slot_id", types.Int64, false}, colDef{"attempt", types.Int64, false},
				colDef{"state", tVarchar, false}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				for _, t := range s.cfg.Runtime.Tasks() {
					rows = append(rows, sql.NewRow(t.Job, int64(t.Pipeline), int64(t.TaskID), t.Node, int64(t.Slot), int64(t.Attempt), t.State))
				}
				return rows
			},
		},
		{
			name: "nodes", pk: []int{0},
			schema: schema("nodes",
				colDef{"node_id", tVarchar, false}, colDef{"address", tVarchar, false}, colDef{"raft_address", tVarchar, false},
				colDef{"http_address", tVarchar, false}, colDef{"role", tVarchar, false}, colDef{"raft_state", tVarchar, false},
				colDef{"alive", types.Boolean, false}, colDef{"last_heartbeat", tDatetime, true},
				colDef{"slots_total", types.Int64, true}, colDef{"slots_used", types.Int64, false}, colDef{"tags", tVarchar, true}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				_, leaderID := s.cfg.Cluster.Leader()
				// Another member's state as the Raft configuration has it
				// (no heartbeats yet): a voter follows, a non-voter
				// receives the log, a node outside it was removed.
				member := map[string]string{}
				if svs, err := s.cfg.Cluster.Servers(); err == nil {
					for _, sv := range svs {
						member[sv.ID] = "Non-voter"
						if sv.Voter {
							member[sv.ID] = "Follower"
						}
					}
				}
				for _, n := range cat.Nodes() {
					raftState, alive, used := "Unknown", false, int64(0)
					var hb any
					var total any = nil
					if n.Slots > 0 {
						total = int64(n.Slots)
					}
					// Liveness as the leader judged it: its last heartbeat
					// from the view this node holds, else the status the
					// catalog recorded at the last change.
					status := n.Status
					if !n.LastSeen.IsZero() {
						hb = n.LastSeen
					}
					if s.cfg.Liveness != nil {
						if last, st, u, ok := s.cfg.Liveness.NodeSeen(n.ID); ok {
							status, used = st, int64(u)
							if !last.IsZero() {
								hb = last
							}
						}
					}
					alive = status == catalog.NodeUp
					if n.ID == s.cfg.NodeID {
						raftState, alive = s.cfg.Cluster.State(), true
						_, u := s.cfg.Runtime.SlotUsage()
						used = int64(u)
						if hb == nil {
							hb = time.Now().UTC()
						}
					} else if n.ID == leaderID {
						raftState = "Leader"
					} else if st, ok := member[n.ID]; ok {
						raftState = st
					} else if len(member) > 0 {
						raftState = "Removed"
					}
					rows = append(rows, sql.NewRow(n.ID, n.MySQLAddr, n.RaftAddr, n.HTTPAddr, n.Role, raftState,
						boolInt(alive), hb, total, used, nullable(n.Tags)))
				}
				return rows
			},
		},
		{
			name: "slots", pk: []int{0, 1},
			schema: schema("slots",
				colDef{"node_id", tVarchar, false}, colDef{"slot_id", types.Int64, false}, colDef{"job", tVarchar, true},
				colDef{"task_id", types.Int64, true}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				for _, sl := range s.cfg.Runtime.Slots() {
					var task any
					if sl.Task >= 0 {
						task = int64(sl.Task)
					}
					rows = append(rows, sql.NewRow(sl.Node, int64(sl.Slot), nullable(sl.Job), task))
				}
				return rows
			},
		},
		{
			name: "metrics", pk: []int{0, 1},
			schema: schema("metrics",
				colDef{"job", tVarchar, false}, colDef{"table_name", tVarchar, false},
				colDef{"source_received_count", types.Int64, false}, colDef{"source_received_bytes", types.Int64, false},
				colDef{"source_received_qps", types.Float64, false}, colDef{"sink_write_count", types.Int64, false},
				colDef{"sink_write_bytes", types.Int64, false}, colDef{"sink_write_qps", types.Float64, false},
				colDef{"lag_ms", types.Int64, false}, colDef{"updated_at", tDatetime, false}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				for _, m := range s.cfg.Runtime.MetricRows() {
					rows = append(rows, sql.NewRow(m.Job, m.Table, m.SourceReceivedCount, m.SourceReceivedBytes,
						m.SourceReceivedQPS, m.SinkWriteCount, m.SinkWriteBytes, m.SinkWriteQPS, m.LagMs, m.UpdatedAt))
				}
				return rows
			},
		},
		{
			name: "checkpoints", pk: []int{0, 1, 2},
			schema: schema("checkpoints",
				colDef{"job", tVarchar, false}, colDef{"pipeline_id", types.Int64, false}, colDef{"checkpoint_id", types.Uint64, false},
				colDef{"attempt", types.Int64, false}, colDef{"state", tVarchar, false}, colDef{"final", types.Boolean, false},
				colDef{"triggered_at", tDatetime, false}, colDef{"completed_at", tDatetime, false},
				colDef{"duration_ms", types.Int64, false}, colDef{"position", tText, true}, colDef{"error", tText, true}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				for _, c := range cat.Checkpoints() {
					var pos []string
					for _, t := range c.Tasks {
						pos = append(pos, fmt.Sprintf("%d:%s", t.Subtask, t.Position))
					}
					rows = append(rows, sql.NewRow(c.Job, int64(c.Pipeline), c.ID, int64(c.Attempt), c.State, boolInt(c.Final),
						c.TriggeredAt, c.CompletedAt, c.Duration().Milliseconds(), nullable(strings.Join(pos, " ")), nullable(c.Error)))
				}
				return rows
			},
		},
		{
			name: "events", pk: []int{0},
			schema: schema("events",
				colDef{"seq", types.Uint64, false}, colDef{"time", tDatetime, false}, colDef{"job", tVarchar, true},
				colDef{"kind", tVarchar, false}, colDef{"message", tText, false}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				for _, e := range cat.Events() {
					rows = append(rows, sql.NewRow(e.Seq, e.Time, nullable(e.Job), e.Kind, e.Message))
				}
				return rows
			},
		},
		{
			name: "connectors", pk: []int{0, 2},
			schema: schema("connectors",
				colDef{"connector", tVarchar, false}, colDef{"kind", tVarchar, false}, colDef{"option", tVarchar, false},
				colDef{"type", tVarchar, false}, colDef{"required", types.Boolean, false}, colDef{"default_value", tVarchar, true},
				colDef{"description", tText, false}),
			rows: func(*sql.Context) []sql.Row {
				var rows []sql.Row
				add := func(conn, kind string, opts connectors.OptionSet, desc string) {
					if len(opts) == 0 {
						rows = append(rows, sql.NewRow(conn, kind, "", "", int8(0), nil, desc+" (no options)"))
					}
					for _, o := range opts {
						typ := string(o.Type)
						if o.Type == connectors.TypeEnum {
							typ += "(" + strings.Join(o.Enum, ",") + ")"
						}
						rows = append(rows, sql.NewRow(conn, kind, o.Name, typ, boolInt(o.Required), nullable(o.Default), o.Description))
					}
				}
				for _, c := range s.cfg.Registry.All() {
					add(c.Name, string(c.Kind), c.Options, c.Description)
				}
				add("(job)", "job", planner.JobOptions, "WITH options of CREATE SYNC JOB")
				return rows
			},
		},
	}
}

// jobsLike is SHOW SYNC JOBS: the jobs whose name matches a LIKE pattern.
func jobsLike(jobs []catalog.Job, pattern string, has bool) []catalog.Job {
	if !has {
		return jobs
	}
	var out []catalog.Job
	for _, j := range jobs {
		if likeMatch(pattern, j.Name) {
			out = append(out, j)
		}
	}
	return out
}

// likeMatch implements SQL LIKE (% and _, backslash escapes), case-insensitive.
func likeMatch(pattern, s string) bool {
	p, t := []rune(strings.ToLower(pattern)), []rune(strings.ToLower(s))
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			switch p[i] {
			case '%':
				for k := j; k <= len(t); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			case '_':
				if j >= len(t) {
					return false
				}
			case '\\':
				if i+1 < len(p) {
					i++
				}
				fallthrough
			default:
				if j >= len(t) || t[j] != p[i] {
					return false
				}
			}
			i++
			j++
		}
		return j == len(t)
	}
	return match(0, 0)
}
