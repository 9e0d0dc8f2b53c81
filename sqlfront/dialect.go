package sqlfront

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/dolthub/vitess/go/vt/sqlparser"

	"sluice/catalog"
	"sluice/exec/coordinator"
	"sluice/planner"
)

// interceptor routes sync-job statements to sluice and everything else to
// the SQL engine. Over COM_STMT_PREPARE the dialect cannot work: vitess
// parses a prepared statement before any interceptor sees it.
type interceptor struct{ s *Server }

var _ server.Interceptor = (*interceptor)(nil)

func (i *interceptor) Priority() int { return 0 }

func (i *interceptor) Query(ctx context.Context, chain server.Chain, c *mysql.Conn, query string, cb func(*sqltypes.Result, bool) error) error {
	if !planner.IsDialect(query) {
		return chain.ComQuery(ctx, c, query, cb)
	}
	res, err := i.s.dialect(ctx, c, query)
	if err != nil {
		return toSQLError(err)
	}
	return cb(res, false)
}

// MultiQuery handles the first statement when it is ours and returns the
// rest; otherwise the engine handles it and returns the rest, and vitess
// calls back here with the remainder.
func (i *interceptor) MultiQuery(ctx context.Context, chain server.Chain, c *mysql.Conn, query string, cb func(*sqltypes.Result, bool) error) (string, error) {
	first, rest := planner.SplitFirst(query)
	if !planner.IsDialect(first) {
		return chain.ComMultiQuery(ctx, c, query, cb)
	}
	res, err := i.s.dialect(ctx, c, first)
	if err != nil {
		return "", toSQLError(err)
	}
	return rest, cb(res, rest != "")
}

func (i *interceptor) ParsedQuery(chain server.Chain, c *mysql.Conn, query string, parsed sqlparser.Statement, cb func(*sqltypes.Result, bool) error) error {
	return chain.ComQuery(context.Background(), c, query, cb)
}

func (i *interceptor) Prepare(ctx context.Context, chain server.Chain, c *mysql.Conn, query string, prepare *mysql.PrepareData) ([]*querypb.Field, error) {
	return chain.ComPrepare(ctx, c, query, prepare)
}

func (i *interceptor) StmtExecute(ctx context.Context, chain server.Chain, c *mysql.Conn, prepare *mysql.PrepareData, cb func(*sqltypes.Result) error) error {
	fixTemporalParams(prepare)
	return chain.ComStmtExecute(ctx, c, prepare, cb)
}

// privilege a statement needs on the sluice database.
func privilegeOf(st planner.Statement) sql.PrivilegeType {
	switch st.(type) {
	case *planner.CreateJob, *planner.CreateNotification:
		return sql.PrivilegeType_Create
	case *planner.DropJob, *planner.RemoveNode, *planner.DropNotification:
		return sql.PrivilegeType_Drop
	case *planner.PauseJob, *planner.ResumeJob, *planner.AlterJob:
		return sql.PrivilegeType_Alter
	}
	return sql.PrivilegeType_Select
}

// dialect parses, authorises and executes one sync-job statement.
func (s *Server) dialect(ctx context.Context, c *mysql.Conn, text string) (*sqltypes.Result, error) {
	st, err := planner.Parse(text)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, text, privilegeOf(st)); err != nil {
		return nil, err
	}
	switch st.(type) {
	case *planner.ShowJobs, *planner.ShowCreateJob, *planner.ExplainJob:
		sctx, err := s.sm.NewContextWithQuery(ctx, c, text)
		if err != nil {
			return nil, err
		}
		if err := s.readBarrier(sctx); err != nil {
			return nil, err
		}
	}
	if _, long := st.(*planner.ChecksumJob); long {
		// Reads both servers whole: as long as the tables take (its one
		// catalog write has the catalog's own bound).
		return s.Exec(ctx, st)
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	return s.Exec(actx, st)
}

func (s *Server) authorize(ctx context.Context, c *mysql.Conn, text string, priv sql.PrivilegeType) error {
	mdb := s.engine.Analyzer.Catalog.MySQLDb
	if !mdb.Enabled() {
		return nil
	}
	sctx, err := s.sm.NewContextWithQuery(ctx, c, text)
	if err != nil {
		return err
	}
	op := sql.NewPrivilegedOperation(sql.PrivilegeCheckSubject{Database: DatabaseName}, priv)
	if !mdb.UserHasPrivileges(sctx, op) {
		return accessDenied(c.User, strings.ToUpper(priv.String()))
	}
	return nil
}

var pauseFrom = []catalog.JobState{catalog.Created, catalog.Scheduled, catalog.Running, catalog.Restarting, catalog.Waiting}
var resumeFrom = []catalog.JobState{catalog.Paused, catalog.Failed}

// Exec executes a parsed dialect statement (no authorisation: callers
// check). It is exported for in-process use by tests and tools.
func (s *Server) Exec(ctx context.Context, st planner.Statement) (*sqltypes.Result, error) {
	cat := s.cfg.Catalog
	switch st := st.(type) {
	case *planner.CreateJob:
		cmd, err := s.cfg.Planner.Create(st)
		if err != nil {
			return nil, err
		}
		if _, exists := cat.Job(st.Name); !exists {
			if err := s.cfg.Planner.Check(ctx, cmd.Spec, cat.Jobs()); err != nil {
				return nil, err
			}
			if cmd.Spec.Options["schedule.strategy"] == "reject" {
				if err := coordinator.Check(catalog.Job{Name: cmd.Name, Spec: cmd.Spec, Plan: cmd.Plan}, cat.Jobs(), cat.Nodes()); err != nil {
					return nil, err
				}
			}
		}
		res, err := cat.CreateJob(ctx, cmd)
		if err != nil {
			return nil, err
		}
		return okResult(res.Applied), nil
	case *planner.DropJob:
		var rows int64 // for the job's history entry: what the cluster's metrics counted
		for _, m := range s.cfg.Runtime.MetricRows() {
			if strings.EqualFold(m.Job, st.Name) {
				rows += m.SinkWriteCount
			}
		}
		res, err := cat.DropJob(ctx, catalog.DropJob{Name: st.Name, IfExists: st.IfExists, Rows: rows})
		if err != nil {
			return nil, err
		}
		return okResult(res.Applied), nil
	case *planner.PauseJob:
		_, err := cat.SetJobState(ctx, catalog.SetJobState{Name: st.Name, From: pauseFrom, To: catalog.Paused, Reason: "PAUSE SYNC JOB"})
		if err != nil {
			return nil, err
		}
		return okResult(true), nil
	case *planner.ResumeJob:
		_, err := cat.SetJobState(ctx, catalog.SetJobState{Name: st.Name, From: resumeFrom, To: catalog.Scheduled, Reason: "RESUME SYNC JOB"})
		if err != nil {
			return nil, err
		}
		return okResult(true), nil
	case *planner.AlterJob:
		// A compare-and-set on the version the options were merged from:
		// a refused attempt has been applied here by the time it returns
		// (the catalog waits for its index), so the next one reads fresh.
		for attempt := 0; ; attempt++ {
			job, ok := cat.Job(st.Name)
			if !ok {
				return nil, fmt.Errorf("%w: %s", catalog.ErrJobNotFound, st.Name)
			}
			cmd, err := s.cfg.Planner.Alter(job, st)
			if err != nil {
				return nil, err
			}
			cmd.Version = job.Version
			_, err = cat.AlterJob(ctx, cmd)
			if errors.Is(err, catalog.ErrConflict) && attempt < 3 {
				continue
			}
			if err != nil {
				return nil, err
			}
			return okResult(true), nil
		}
	case *planner.RemoveNode:
		if s.cfg.Members == nil {
			return nil, fmt.Errorf("REMOVE NODE: this server runs without cluster membership")
		}
		if err := s.cfg.Members.RemoveNode(ctx, st.ID); err != nil {
			return nil, err
		}
		return okResult(true), nil
	case *planner.ChecksumJob:
		return s.checksum(ctx, st)
	case *planner.CreateNotification, *planner.DropNotification, *planner.ShowNotifications:
		return s.notificationStatement(ctx, st)
	case *planner.ShowJobs:
		return s.showJobs(st), nil
	case *planner.ShowCreateJob:
		job, ok := cat.Job(st.Name)
		if !ok {
			return nil, fmt.Errorf("%w: %s", catalog.ErrJobNotFound, st.Name)
		}
		return &sqltypes.Result{
			Fields: []*querypb.Field{strField("Job"), strField("Create Sync Job")},
			Rows:   [][]sqltypes.Value{{sqltypes.NewVarChar(job.Name), sqltypes.NewVarChar(s.cfg.Planner.Render(job.Name, job.Spec, true))}},
		}, nil
	case *planner.ExplainJob:
		job, ok := cat.Job(st.Name)
		if !ok {
			return nil, fmt.Errorf("%w: %s", catalog.ErrJobNotFound, st.Name)
		}
		var tasks []planner.Assignment
		for _, t := range s.cfg.Runtime.Tasks() {
			if t.Job == job.Name {
				tasks = append(tasks, planner.Assignment{Pipeline: t.Pipeline, Subtask: t.TaskID, Node: t.Node, Slot: t.Slot, Attempt: t.Attempt, State: t.State})
			}
		}
		return planResult(s.cfg.Planner.Explain(job.Spec, job.Plan, tasks)), nil
	case *planner.ExplainCreate:
		cmd, err := s.cfg.Planner.Create(st.Create)
		if err != nil {
			return nil, err
		}
		return planResult(s.cfg.Planner.Explain(cmd.Spec, cmd.Plan, nil)), nil
	}
	return nil, fmt.Errorf("statement %T is not implemented", st)
}

func okResult(applied bool) *sqltypes.Result {
	var n uint64
	if applied {
		n = 1
	}
	return &sqltypes.Result{RowsAffected: n}
}

func strField(name string) *querypb.Field {
	return &querypb.Field{Name: name, Type: querypb.Type_VARCHAR, Charset: uint32(sql.CharacterSet_utf8mb4)}
}

func intField(name string) *querypb.Field {
	return &querypb.Field{Name: name, Type: querypb.Type_INT64, Charset: uint32(sql.CharacterSet_binary)}
}

func timeField(name string) *querypb.Field {
	return &querypb.Field{Name: name, Type: querypb.Type_DATETIME, Charset: uint32(sql.CharacterSet_binary), Decimals: 6}
}

func timeValue(t time.Time) sqltypes.Value {
	return sqltypes.MakeTrusted(querypb.Type_DATETIME, []byte(t.UTC().Format("2006-01-02 15:04:05.000000")))
}

func nullableString(s string) sqltypes.Value {
	if s == "" {
		return sqltypes.NULL
	}
	return sqltypes.NewVarChar(s)
}

func planResult(lines []string) *sqltypes.Result {
	res := &sqltypes.Result{Fields: []*querypb.Field{strField("plan")}}
	for _, l := range lines {
		res.Rows = append(res.Rows, []sqltypes.Value{sqltypes.NewVarChar(l)})
	}
	return res
}

func (s *Server) showJobs(st *planner.ShowJobs) *sqltypes.Result {
	res := &sqltypes.Result{Fields: []*querypb.Field{
		strField("Name"), strField("State"), strField("Source"), strField("Sink"), intField("Parallelism"),
		intField("Restarts"), timeField("Created"), timeField("Updated"), strField("Error")}}
	for _, j := range jobsLike(s.cfg.Catalog.Jobs(), st.Like, st.HasLike) {
		par := 0
		for _, p := range j.Plan.Pipelines {
			par = max(par, p.Parallelism)
		}
		res.Rows = append(res.Rows, []sqltypes.Value{
			sqltypes.NewVarChar(j.Name), sqltypes.NewVarChar(string(j.State)), sqltypes.NewVarChar(j.Spec.Source.Connector),
			sqltypes.NewVarChar(j.Spec.Sink.Connector), sqltypes.NewInt64(int64(par)), sqltypes.NewInt64(int64(j.Restarts)),
			timeValue(j.CreatedAt), timeValue(j.UpdatedAt), nullableString(j.Error)})
	}
	return res
}
