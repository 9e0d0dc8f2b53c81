package exec

import (
	"encoding/json"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"sluice/connectors"
)

// TableRow is one source table of a job as this node's tasks report it
// (sluice.job_tables before the job's state and checkpoints are applied).
type TableRow struct {
	Job         string    `json:"job"`
	JobID       uint64    `json:"job_id"`
	Table       string    `json:"table"`
	Phase       string    `json:"phase"`
	Snapshot    bool      `json:"snapshot,omitempty"`
	RowsDone    int64     `json:"rows_done,omitempty"`
	RowsTotal   int64     `json:"rows_total,omitempty"`
	ChunksDone  int64     `json:"chunks_done,omitempty"`
	ChunksTotal int64     `json:"chunks_total,omitempty"`
	Exact       bool      `json:"exact,omitempty"`
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	// Live: read from a running source now; otherwise the last report of
	// a source that has stopped (a paused or failed job).
	Live bool `json:"live,omitempty"`
}

// SourceRow is what one job's sources on this node say about themselves.
type SourceRow struct {
	Job       string    `json:"job"`
	JobID     uint64    `json:"job_id"`
	CurrentAt time.Time `json:"current_at,omitzero"` // the oldest subtask's
	Head      string    `json:"head,omitempty"`
	Live      bool      `json:"live,omitempty"`
	At        time.Time `json:"at"` // when the report was taken
}

// tableBoard keeps the last report of every job's sources on this node,
// so a paused or failed job still lists its tables (until the job is
// dropped). With a file, the reports of stopped runs are kept there too,
// so they survive a restart of the node.
type tableBoard struct {
	mu      sync.Mutex
	tables  map[uint64][]TableRow
	sources map[uint64]SourceRow
	file    string
	// the last computation of Engine.reports (the rows are not changed
	// after: callers may keep them)
	memoMu sync.Mutex
	stale  atomic.Bool // a run started or stopped since: compute again
	memoAt time.Time
	memoT  []TableRow
	memoS  []SourceRow
}

// boardFile is what the board's file holds.
type boardFile struct {
	Tables  map[uint64][]TableRow `json:"tables"`
	Sources map[uint64]SourceRow  `json:"sources"`
}

func newTableBoard(file string) *tableBoard {
	b := &tableBoard{tables: map[uint64][]TableRow{}, sources: map[uint64]SourceRow{}, file: file}
	if file == "" {
		return b
	}
	if data, err := os.ReadFile(file); err == nil {
		var f boardFile
		if json.Unmarshal(data, &f) == nil {
			for id, rows := range f.Tables {
				b.tables[id] = rows
			}
			for id, s := range f.Sources {
				s.Live = false
				b.sources[id] = s
			}
		}
	}
	return b
}

// save writes the board to its file (atomically: a temporary file renamed).
func (b *tableBoard) save() {
	if b.file == "" {
		return
	}
	b.mu.Lock()
	data, err := json.Marshal(boardFile{Tables: b.tables, Sources: b.sources})
	b.mu.Unlock()
	if err != nil {
		return
	}
	tmp := b.file + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		_ = os.Rename(tmp, b.file)
	}
}

// report builds one job's rows from its local tasks: a source that is a
// connectors.Reporter speaks for itself; any other's tables are those its
// batches named, STREAMING until the source ends (DONE).
func (r *jobRun) report() ([]TableRow, SourceRow, bool) {
	src := SourceRow{Job: r.job.Name, JobID: r.job.ID, Live: true}
	byTable := map[string]int{}
	var rows []TableRow
	reported := false
	for _, t := range r.tasks() {
		rep := t.reporter()
		if rep == nil {
			continue
		}
		reported = true
		st := rep.Status()
		if src.CurrentAt.IsZero() || (!st.CurrentAt.IsZero() && st.CurrentAt.Before(src.CurrentAt)) {
			src.CurrentAt = st.CurrentAt
		}
		if src.Head == "" {
			src.Head = st.Head
		}
		for _, ts := range rep.TableStates() {
			row := TableRow{Job: r.job.Name, JobID: r.job.ID, Table: ts.Table.String(), Phase: ts.Phase, Snapshot: ts.Snapshot,
				RowsDone: ts.RowsDone, RowsTotal: ts.RowsTotal, ChunksDone: ts.ChunksDone, ChunksTotal: ts.ChunksTotal,
				Exact: ts.Exact, LastEventAt: ts.LastEventAt.UTC(), Live: true}
			if i, ok := byTable[row.Table]; ok { // several subtasks read the table
				rows[i] = mergeTable(rows[i], row)
				continue
			}
			byTable[row.Table] = len(rows)
			rows = append(rows, row)
		}
	}
	// Tables of sources that are not Reporters: those their batches named;
	// such a source counts as current while it runs (as at a barrier).
	ended := true
	for _, t := range r.tasks() {
		ended = ended && t.eof.Load()
	}
	if !reported && !ended {
		src.CurrentAt = time.Now().UTC()
	}
	if reported {
		return rows, src, true // a Reporter names every table it reads
	}
	r.ctrs.Range(func(k, _ any) bool {
		id := k.(connectors.TableID)
		if _, ok := byTable[id.String()]; ok {
			return true
		}
		phase := connectors.PhaseStreaming
		if ended {
			phase = connectors.PhaseDone
		}
		byTable[id.String()] = len(rows)
		rows = append(rows, TableRow{Job: r.job.Name, JobID: r.job.ID, Table: id.String(), Phase: phase, Live: true})
		return true
	})
	sort.Slice(rows, func(i, k int) bool { return rows[i].Table < rows[k].Table })
	return rows, src, len(rows) > 0
}

// MergeReports joins the reports of several nodes: for each job, the
// rows of every node whose report is live (several subtasks of one
// source, merged per table), else of the node with the newest report (a
// paused job lists the tables where it last ran).
func MergeReports(tables [][]TableRow, sources [][]SourceRow) ([]TableRow, []SourceRow) {
	best := map[uint64]SourceRow{}
	use := map[uint64]map[int]bool{} // job → the reports (by index) to use
	for i, list := range sources {
		for _, s := range list {
			b, seen := best[s.JobID]
			switch {
			case !seen || (s.Live && !b.Live) || (!s.Live && !b.Live && s.At.After(b.At)):
				best[s.JobID] = s
				use[s.JobID] = map[int]bool{i: true}
			case s.Live && b.Live:
				use[s.JobID][i] = true
				if !s.CurrentAt.IsZero() && (b.CurrentAt.IsZero() || s.CurrentAt.Before(b.CurrentAt)) {
					b.CurrentAt = s.CurrentAt
				}
				if b.Head == "" {
					b.Head = s.Head
				}
				best[s.JobID] = b
			}
		}
	}
	var outT []TableRow
	at := map[[2]string]int{}
	for i, list := range tables {
		for _, t := range list {
			if !use[t.JobID][i] {
				continue
			}
			k := [2]string{t.Job, t.Table}
			if j, ok := at[k]; ok {
				outT[j] = mergeTable(outT[j], t)
				continue
			}
			at[k] = len(outT)
			outT = append(outT, t)
		}
	}
	outS := make([]SourceRow, 0, len(best))
	for _, s := range best {
		outS = append(outS, s)
	}
	sortReports(outT, outS)
	return outT, outS
}

func sortReports(tables []TableRow, sources []SourceRow) {
	sort.Slice(tables, func(i, k int) bool {
		if tables[i].Job != tables[k].Job {
			return tables[i].Job < tables[k].Job
		}
		return tables[i].Table < tables[k].Table
	})
	sort.Slice(sources, func(i, k int) bool { return sources[i].Job < sources[k].Job })
}

func mergeTable(a, b TableRow) TableRow {
	if a.Phase != b.Phase && b.Phase == connectors.PhaseSnapshot {
		a.Phase = b.Phase
	}
	a.Snapshot = a.Snapshot || b.Snapshot
	a.RowsDone += b.RowsDone
	a.RowsTotal += b.RowsTotal
	a.ChunksDone += b.ChunksDone
	a.ChunksTotal += b.ChunksTotal
	a.Exact = a.Exact && b.Exact
	if b.LastEventAt.After(a.LastEventAt) {
		a.LastEventAt = b.LastEventAt
	}
	return a
}

// remember stores a run's report (called as the run's tasks end, and at
// every read while it runs).
func (b *tableBoard) remember(jobID uint64, rows []TableRow, src SourceRow) {
	b.mu.Lock()
	defer b.mu.Unlock()
	src.At = time.Now().UTC()
	b.tables[jobID] = rows
	b.sources[jobID] = src
}

// keep forgets jobs that are no longer in the catalog.
func (b *tableBoard) keep(alive map[uint64]bool) {
	b.mu.Lock()
	gone := false
	for id := range b.tables {
		if !alive[id] {
			delete(b.tables, id)
			delete(b.sources, id)
			gone = true
		}
	}
	b.mu.Unlock()
	if gone {
		b.save()
	}
}

// TableRows lists the source tables of every job this node runs or ran
// (see TableRow), by job and table.
func (e *Engine) TableRows() []TableRow {
	tables, _ := e.reports()
	return tables
}

// SourceRows lists what every job's sources on this node say about
// themselves (see SourceRow), by job.
func (e *Engine) SourceRows() []SourceRow {
	_, sources := e.reports()
	return sources
}

// reportsMaxAge is how long one computation of the reports answers: a
// heartbeat asks for tables and sources in turn, and with ten thousand
// tables each computation costs milliseconds.
const reportsMaxAge = 500 * time.Millisecond

func (e *Engine) reports() ([]TableRow, []SourceRow) {
	b := e.board
	b.memoMu.Lock()
	defer b.memoMu.Unlock()
	if !b.stale.Swap(false) && time.Since(b.memoAt) < reportsMaxAge {
		return b.memoT, b.memoS
	}
	t, s := e.computeReports()
	b.memoT, b.memoS, b.memoAt = t, s, time.Now()
	return t, s
}

func (e *Engine) computeReports() ([]TableRow, []SourceRow) {
	e.mu.Lock()
	runs := make([]*jobRun, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		if rows, src, ok := r.report(); ok {
			e.board.remember(r.job.ID, rows, src)
		}
	}
	b := e.board
	b.mu.Lock()
	var tables []TableRow
	var sources []SourceRow
	live := map[uint64]bool{}
	for _, r := range runs {
		live[r.job.ID] = true
	}
	for id, rows := range b.tables {
		for _, row := range rows {
			row.Live = row.Live && live[id]
			tables = append(tables, row)
		}
		src := b.sources[id]
		src.Live = src.Live && live[id]
		sources = append(sources, src)
	}
	b.mu.Unlock()
	sortReports(tables, sources)
	return tables, sources
}
