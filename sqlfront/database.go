package sqlfront

import (
	"io"
	"sort"
	"strings"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
)

// DatabaseName is the name of the system database.
const DatabaseName = "sluice"

// sysDB is the read-only `sluice` database. Once authentication is on, GMS
// wraps every database in a privilege checker that claims the view, trigger,
// procedure and event interfaces; a database without them fails every
// SELECT. So sysDB implements them: reads are empty, writes are refused.
type sysDB struct {
	tables map[string]*sysTable // lower-case name → table
}

var (
	_ sql.Database                = (*sysDB)(nil)
	_ sql.ReadOnlyDatabase        = (*sysDB)(nil)
	_ sql.ViewDatabase            = (*sysDB)(nil)
	_ sql.TriggerDatabase         = (*sysDB)(nil)
	_ sql.StoredProcedureDatabase = (*sysDB)(nil)
	_ sql.EventDatabase           = (*sysDB)(nil)
	_ sql.Table                   = (*sysTable)(nil)
	_ sql.PrimaryKeyTable         = (*sysTable)(nil)
)

func newSysDB(tables ...*sysTable) *sysDB {
	db := &sysDB{tables: map[string]*sysTable{}}
	for _, t := range tables {
		db.tables[strings.ToLower(t.name)] = t
	}
	return db
}

func (d *sysDB) Name() string     { return DatabaseName }
func (d *sysDB) IsReadOnly() bool { return true }

func (d *sysDB) GetTableInsensitive(_ *sql.Context, name string) (sql.Table, bool, error) {
	t, ok := d.tables[strings.ToLower(name)]
	if !ok {
		return nil, false, nil
	}
	return t, true, nil
}

func (d *sysDB) GetTableNames(*sql.Context) ([]string, error) {
	names := make([]string, 0, len(d.tables))
	for _, t := range d.tables {
		names = append(names, t.name)
	}
	sort.Strings(names)
	return names, nil
}

func (d *sysDB) CreateView(*sql.Context, string, string, string) error {
	return sql.ErrViewsNotSupported.New(d.Name())
}
func (d *sysDB) DropView(*sql.Context, string) error { return sql.ErrViewsNotSupported.New(d.Name()) }
func (d *sysDB) GetViewDefinition(*sql.Context, string) (sql.ViewDefinition, bool, error) {
	return sql.ViewDefinition{}, false, nil
}
func (d *sysDB) AllViews(*sql.Context) ([]sql.ViewDefinition, error) { return nil, nil }
func (d *sysDB) GetTriggers(*sql.Context) ([]sql.TriggerDefinition, error) {
	return nil, nil
}
func (d *sysDB) CreateTrigger(*sql.Context, sql.TriggerDefinition) error {
	return sql.ErrTriggersNotSupported.New(d.Name())
}
func (d *sysDB) DropTrigger(*sql.Context, string) error {
	return sql.ErrTriggersNotSupported.New(d.Name())
}
func (d *sysDB) GetStoredProcedure(*sql.Context, string) (sql.StoredProcedureDetails, bool, error) {
	return sql.StoredProcedureDetails{}, false, nil
}
func (d *sysDB) GetStoredProcedures(*sql.Context) ([]sql.StoredProcedureDetails, error) {
	return nil, nil
}
func (d *sysDB) SaveStoredProcedure(*sql.Context, sql.StoredProcedureDetails) error {
	return sql.ErrStoredProceduresNotSupported.New(d.Name())
}
func (d *sysDB) DropStoredProcedure(*sql.Context, string) error {
	return sql.ErrStoredProceduresNotSupported.New(d.Name())
}
func (d *sysDB) GetEvent(*sql.Context, string) (sql.EventDefinition, bool, error) {
	return sql.EventDefinition{}, false, nil
}
func (d *sysDB) GetEvents(*sql.Context) ([]sql.EventDefinition, interface{}, error) {
	return nil, nil, nil
}
func (d *sysDB) SaveEvent(*sql.Context, sql.EventDefinition) (bool, error) {
	return false, sql.ErrEventsNotSupported.New(d.Name())
}
func (d *sysDB) DropEvent(*sql.Context, string) error { return sql.ErrEventsNotSupported.New(d.Name()) }
func (d *sysDB) UpdateEvent(*sql.Context, string, sql.EventDefinition) (bool, error) {
	return false, sql.ErrEventsNotSupported.New(d.Name())
}
func (d *sysDB) UpdateLastExecuted(*sql.Context, string, time.Time) error {
	return sql.ErrEventsNotSupported.New(d.Name())
}
func (d *sysDB) NeedsToReloadEvents(*sql.Context, interface{}) (bool, error) { return false, nil }

// sysTable is a read-only table whose rows are computed on each scan from a
// copy of live state (never holding a lock while GMS iterates).
type sysTable struct {
	name   string
	schema sql.Schema
	pk     []int // ordinals of primary-key columns (documentation for BI tools)
	rows   func(ctx *sql.Context) []sql.Row
	// barrier runs before each scan (a linearizable read waits there).
	barrier func(ctx *sql.Context) error
}

func (t *sysTable) Name() string               { return t.name }
func (t *sysTable) String() string             { return t.name }
func (t *sysTable) Schema() sql.Schema         { return t.schema }
func (t *sysTable) Collation() sql.CollationID { return sql.Collation_Default }
func (t *sysTable) PrimaryKeySchema() sql.PrimaryKeySchema {
	return sql.NewPrimaryKeySchema(t.schema, t.pk...)
}

func (t *sysTable) Partitions(*sql.Context) (sql.PartitionIter, error) {
	return sql.PartitionsToPartitionIter(onePartition{}), nil
}

func (t *sysTable) PartitionRows(ctx *sql.Context, _ sql.Partition) (sql.RowIter, error) {
	if t.barrier != nil {
		if err := t.barrier(ctx); err != nil {
			return nil, err
		}
	}
	return &rowIter{rows: t.rows(ctx)}, nil
}

type onePartition struct{}

func (onePartition) Key() []byte { return []byte("all") }

type rowIter struct {
	rows []sql.Row
	i    int
}

func (r *rowIter) Next(*sql.Context) (sql.Row, error) {
	if r.i >= len(r.rows) {
		return nil, io.EOF
	}
	r.i++
	return r.rows[r.i-1], nil
}

func (r *rowIter) Close(*sql.Context) error { return nil }
