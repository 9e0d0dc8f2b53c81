package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/mysqlconn"
)

// Catalog is what a verification reads and writes of the catalog.
// *catalog.Catalog implements it.
type Catalog interface {
	Job(name string) (catalog.Job, bool)
	OpenOptions(opts map[string]string) (map[string]string, error)
	VisibleAt(j catalog.Job) time.Time
	SetVerifications(ctx context.Context, cmd catalog.SetVerifications) error
}

// Config configures a Verifier.
type Config struct {
	Registry *connectors.Registry
	// ChunkRows is the rows per chunk (default 10,000; the job's
	// snapshot.chunk.size when it has one).
	ChunkRows int
	// Rechecks is how many times a chunk that differs is compared again
	// (default 3), each after the job's target has caught up with the
	// source read (at most CatchUp, default 30s).
	Rechecks int
	CatchUp  time.Duration
}

// Verifier runs CHECKSUM SYNC JOB.
type Verifier struct {
	cfg Config
	cat Catalog
}

// New returns a Verifier.
func New(cfg Config, cat Catalog) *Verifier {
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = 10000
	}
	if cfg.Rechecks <= 0 {
		cfg.Rechecks = 3
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = 30 * time.Second
	}
	return &Verifier{cfg: cfg, cat: cat}
}

// Errors a verification refuses with.
var (
	ErrJobNotFound = catalog.ErrJobNotFound
	ErrUnsupported = errors.New("cannot be verified")
)

// Request is one CHECKSUM SYNC JOB statement.
type Request struct {
	Job   string
	Table *connectors.TableID // nil: every table of the job
	Where string              // a condition for both servers ("": all rows)
}

// TableResult is one table's outcome.
type TableResult struct {
	Table                  string
	Chunks, Different      int
	SourceRows, TargetRows int64
}

// Run compares the job's source and target chunk by chunk, records the
// chunks in sluice.verifications and returns one result per table.
func (v *Verifier) Run(ctx context.Context, req Request) ([]TableResult, error) {
	job, ok := v.cat.Job(req.Job)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrJobNotFound, req.Job)
	}
	if len(job.Spec.Transforms) > 0 {
		return nil, fmt.Errorf("%w: job %s has transforms, so its target rows are not the source's; CHECKSUM compares jobs without transforms", ErrUnsupported, job.Name)
	}
	srcSpec, srcCfg, err := v.open(job.Spec.Source, connectors.KindSource)
	if err != nil {
		return nil, err
	}
	sinkSpec, sinkCfg, err := v.open(job.Spec.Sink, connectors.KindSink)
	if err != nil {
		return nil, err
	}
	if srcSpec.SourceSQL == nil || srcSpec.Tables == nil || sinkSpec.Target == nil {
		return nil, fmt.Errorf("%w: CHECKSUM compares a source and a sink both readable over SQL (%s → %s is not)", ErrUnsupported, srcSpec.Name, sinkSpec.Name)
	}
	src, err := srcSpec.SourceSQL(srcCfg)
	if err != nil {
		return nil, err
	}
	dst, err := sinkSpec.Target(sinkCfg)
	if err != nil {
		return nil, err
	}
	tables, err := srcSpec.Tables(ctx, srcCfg)
	if err != nil {
		return nil, err
	}
	if req.Table != nil {
		var only []connectors.TableInfo
		for _, t := range tables {
			if strings.EqualFold(t.ID.Database, req.Table.Database) && strings.EqualFold(t.ID.Table, req.Table.Table) {
				only = append(only, t)
			}
		}
		if len(only) == 0 {
			return nil, fmt.Errorf("%w: job %s does not capture table %s", ErrUnsupported, job.Name, req.Table)
		}
		tables = only
	}
	chunkRows := v.cfg.ChunkRows
	if n := srcCfg.Int("snapshot.chunk.size"); n > 0 {
		chunkRows = int(n)
	}
	sdb, err := openSQL(src)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	tdb, err := openSQL(dst)
	if err != nil {
		return nil, err
	}
	defer tdb.Close()
	var results []TableResult
	var chunks []catalog.Verification
	var names []string
	for _, t := range tables {
		if len(t.Key) == 0 {
			return nil, fmt.Errorf("%w: table %s has no primary key to chunk by", ErrUnsupported, t.ID)
		}
		c := &comparison{v: v, job: job, src: sdb, dst: tdb, id: t.ID, target: dst.Table(t.ID), key: t.Key, where: req.Where, chunkRows: chunkRows}
		res, err := c.run(ctx)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t.ID, err)
		}
		results = append(results, res)
		chunks = append(chunks, c.records()...)
		names = append(names, t.ID.String())
	}
	if err := v.cat.SetVerifications(ctx, catalog.SetVerifications{JobID: job.ID, Tables: names, Chunks: chunks}); err != nil {
		return results, fmt.Errorf("record the verification: %w", err)
	}
	return results, nil
}

func (v *Verifier) open(ref catalog.ConnectorRef, kind connectors.Kind) (*connectors.Spec, connectors.Config, error) {
	spec, err := v.cfg.Registry.Lookup(ref.Connector, kind)
	if err != nil {
		return spec, connectors.Config{}, err
	}
	opts, err := v.cat.OpenOptions(ref.Options)
	if err != nil {
		return spec, connectors.Config{}, err
	}
	cfg, err := spec.Options.Validate(spec.Name, opts)
	return spec, cfg, err
}

func openSQL(t connectors.SQLTarget) (*sql.DB, error) {
	return mysqlconn.Open(mysqlconn.Config{Addr: t.Addr, User: t.User, Password: t.Password, MaxOpen: 2, ReadTimeout: 10 * time.Minute,
		Params: map[string]string{"time_zone": "'+00:00'", "charset": "utf8mb4"}, InterpolateParams: true})
}

// caughtUp waits until the job's target holds everything committed at the
// source before t (its last committed checkpoint's source time), for a
// running job; a job that is not running has nothing on the way.
func (v *Verifier) caughtUp(ctx context.Context, jobName string, t time.Time) {
	deadline := time.Now().Add(v.cfg.CatchUp)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		job, ok := v.cat.Job(jobName)
		if !ok || job.State != catalog.Running {
			return
		}
		if visible := v.cat.VisibleAt(job); !visible.IsZero() && visible.After(t) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
