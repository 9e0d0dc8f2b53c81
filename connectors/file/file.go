// Package file is the file sink: JSON lines in a directory, exactly-once
// through checkpoints.
//
// Each task writes to <path>/<job>/<task>.inprogress, <task> being
// j<job id>-p<pipeline>-t<subtask> (a re-created job of the same name has a
// new id, so it never overwrites or adopts its predecessor's files). At a
// checkpoint barrier the file is synced and renamed <task>-<id>.pending;
// when the checkpoint is committed in the catalog, pending files up to that
// id are renamed <task>-<id>.jsonl. Renames are atomic, so a reader of *.jsonl
// never sees a row twice or a torn file, whatever crashes in between:
// Recover commits what the catalog committed and deletes the rest.
//
// Each line is one row: {"_table":"db.t","_op":"INSERT","col":value,…}.
package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sluice/connectors"
	"sluice/connectors/failpoint"
)

// Spec declares the file connector.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "file",
		Kind:        connectors.KindSink,
		Description: "JSON lines in a directory; files become visible (*.jsonl) only when their checkpoint commits: exactly-once",
		Options: connectors.OptionSet{
			{Name: "path", Type: connectors.TypeString, Required: true,
				Description: "directory on the server; one sub-directory per job"},
		},
		NewSink: func(cfg connectors.Config, env connectors.Env) (connectors.Sink, error) {
			dir := filepath.Join(cfg.String("path"), sanitize(env.Job))
			return &Sink{dir: dir, task: fmt.Sprintf("j%d-p%d-t%d", env.JobID, env.Pipeline, env.Subtask)}, nil
		},
	}
}

// sanitize makes a job name one safe path element: no separators, no NUL,
// not "." or "..".
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, s)
	if s == "." || s == ".." {
		s = strings.Repeat("_", len(s))
	}
	return s
}

// Sink is one task's writer.
type Sink struct {
	dir  string
	task string // file name stem: job id, pipeline, subtask
	f    *os.File
	w    *bufio.Writer
	line []byte
}

var (
	_ connectors.Sink         = (*Sink)(nil)
	_ connectors.TwoPhaseSink = (*Sink)(nil)
)

func (s *Sink) inprogress() string {
	return filepath.Join(s.dir, s.task+".inprogress")
}
func (s *Sink) pending(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%d.pending", s.task, id))
}
func (s *Sink) committed(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%d.jsonl", s.task, id))
}

// Open creates the directory; the in-progress file is started by Recover.
func (s *Sink) Open(context.Context) error {
	return os.MkdirAll(s.dir, 0o750)
}

func (s *Sink) startFile() error {
	f, err := os.OpenFile(s.inprogress(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	s.f, s.w = f, bufio.NewWriterSize(f, 1<<16)
	return nil
}

// pendingIDs lists this task's pending checkpoint ids.
func (s *Sink) pendingIDs() ([]uint64, error) {
	matches, err := filepath.Glob(filepath.Join(s.dir, s.task+"-*.pending"))
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, m := range matches {
		base := strings.TrimSuffix(filepath.Base(m), ".pending")
		id, err := strconv.ParseUint(base[strings.LastIndexByte(base, '-')+1:], 10, 64)
		if err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Recover commits pending files up to the catalog's checkpoint and deletes
// newer ones and the torn in-progress file: their rows come again from the
// source, which resumes at that checkpoint.
func (s *Sink) Recover(_ context.Context, checkpointID uint64, _ []byte) error {
	if err := s.publish(checkpointID, true); err != nil {
		return err
	}
	return s.startFile()
}

// publish renames every pending file up to id to its committed name; with
// discard, newer pending files are deleted.
func (s *Sink) publish(id uint64, discard bool) error {
	ids, err := s.pendingIDs()
	if err != nil {
		return err
	}
	for _, p := range ids {
		switch {
		case p <= id:
			if err := os.Rename(s.pending(p), s.committed(p)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("file: commit %d: %w", p, err)
			}
		case discard:
			if err := os.Remove(s.pending(p)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return syncDir(s.dir)
}

// Write appends the batch's rows to the in-progress file.
func (s *Sink) Write(_ context.Context, b connectors.Batch) error {
	if s.w == nil {
		if err := s.startFile(); err != nil { // a sink used without checkpoints
			return err
		}
	}
	rec := b.Record
	kinds, err := connectors.RowKinds(rec)
	if err != nil {
		return err
	}
	table, _ := json.Marshal(b.Table.String())
	n := int(rec.NumRows())
	for r := 0; r < n; r++ {
		if r == n/2 {
			if err := failpoint.Hit(failpoint.MidBatch); err != nil {
				return err
			}
		}
		s.line = append(s.line[:0], `{"_table":`...)
		s.line = append(s.line, table...)
		s.line = append(s.line, `,"_op":"`...)
		s.line = append(s.line, connectors.RowKind(kinds.Value(r)).String()...)
		s.line = append(s.line, '"')
		for c := 1; c < int(rec.NumCols()); c++ {
			name, _ := json.Marshal(rec.ColumnName(c))
			s.line = append(s.line, ',')
			s.line = append(s.line, name...)
			s.line = append(s.line, ':')
			col := rec.Column(c)
			if col.IsNull(r) {
				s.line = append(s.line, "null"...)
				continue
			}
			v, err := json.Marshal(col.GetOneForMarshal(r))
			if err != nil {
				return fmt.Errorf("file: column %s: %w", rec.ColumnName(c), err)
			}
			s.line = append(s.line, v...)
		}
		s.line = append(s.line, "}\n"...)
		if _, err := s.w.Write(s.line); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes buffered rows to the in-progress file.
func (s *Sink) Flush(context.Context) error {
	if s.w == nil {
		return nil
	}
	return s.w.Flush()
}

// PreCommit syncs the in-progress file and turns it into the checkpoint's
// pending file.
func (s *Sink) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if s.w == nil {
		if err := s.startFile(); err != nil {
			return nil, err
		}
	}
	if err := s.Flush(ctx); err != nil {
		return nil, err
	}
	if err := s.f.Sync(); err != nil {
		return nil, err
	}
	if err := s.f.Close(); err != nil {
		return nil, err
	}
	s.f, s.w = nil, nil
	if err := os.Rename(s.inprogress(), s.pending(checkpointID)); err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		return nil, err
	}
	return nil, s.startFile()
}

// Commit publishes every pending file up to checkpointID (a checkpoint that
// failed in the catalog leaves its pending file to the next one that
// commits). Already published files are fine: Commit is idempotent.
func (s *Sink) Commit(_ context.Context, checkpointID uint64, _ []byte) error {
	return s.publish(checkpointID, false)
}

// Close closes the in-progress file (its rows are not committed).
func (s *Sink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.w = nil, nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
