// Package file is the file sink: JSON lines in a directory, exactly-once
// through checkpoints.
//
// Each task writes to <path>/<job>/<task>-a<attempt>.inprogress, <task>
// being j<job id>-p<pipeline>-t<subtask> (a re-created job of the same name
// has a new id, so it never overwrites or adopts its predecessor's files).
// At a checkpoint barrier the file is synced and renamed
// <task>-<id>-a<attempt>.pending, and the checkpoint records the attempt;
// when the checkpoint is committed in the catalog, this attempt's pending
// files up to that id are renamed <task>-<id>.jsonl. Renames are atomic, so
// a reader of *.jsonl never sees a row twice or a torn file, whatever
// crashes in between: Recover commits what the catalog committed (the
// pending files of the attempt its checkpoint names) and deletes the rest.
// The attempt in every working file name keeps two attempts of one task
// apart — a zombie (a frozen worker that comes back after its task moved)
// never writes into, or renames, the live attempt's files; it only ever
// deletes pending files of attempts older than its own.
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
			return &Sink{dir: dir, task: fmt.Sprintf("j%d-p%d-t%d", env.JobID, env.Pipeline, env.Subtask), attempt: env.Attempt}, nil
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
	dir     string
	task    string // file name stem: job id, pipeline, subtask
	attempt int
	f       *os.File
	w       *bufio.Writer
	line    []byte
}

var (
	_ connectors.Sink         = (*Sink)(nil)
	_ connectors.TwoPhaseSink = (*Sink)(nil)
)

func (s *Sink) inprogress() string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-a%d.inprogress", s.task, s.attempt))
}

// pending is attempt's pending file of checkpoint id (attempt < 0: the
// name written before attempts were part of it).
func (s *Sink) pending(id uint64, attempt int) string {
	if attempt < 0 {
		return filepath.Join(s.dir, fmt.Sprintf("%s-%d.pending", s.task, id))
	}
	return filepath.Join(s.dir, fmt.Sprintf("%s-%d-a%d.pending", s.task, id, attempt))
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

// pendingFile is one pending file: its checkpoint id and attempt (-1 for
// the name without an attempt).
type pendingFile struct {
	id      uint64
	attempt int
}

// pendingFiles lists this task's pending files.
func (s *Sink) pendingFiles() ([]pendingFile, error) {
	matches, err := filepath.Glob(filepath.Join(s.dir, s.task+"-*.pending"))
	if err != nil {
		return nil, err
	}
	var out []pendingFile
	for _, m := range matches {
		rest := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), s.task+"-"), ".pending")
		idText, attemptText, withAttempt := strings.Cut(rest, "-a")
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil {
			continue
		}
		attempt := -1
		if withAttempt {
			if attempt, err = strconv.Atoi(attemptText); err != nil {
				continue
			}
		}
		out = append(out, pendingFile{id: id, attempt: attempt})
	}
	return out, nil
}

// Recover commits the pending files the catalog's checkpoint covers — the
// ones of the attempt that took it (state), up to its id — and deletes the
// other pending files of this attempt or older ones and the torn
// in-progress file: their rows come again from the source, which resumes
// at that checkpoint. Files of a newer attempt are not this one's to touch.
func (s *Sink) Recover(_ context.Context, checkpointID uint64, state []byte) error {
	by := -1 // a checkpoint without an attempt: the files named without one
	if len(state) > 0 {
		n, err := strconv.Atoi(string(state))
		if err != nil {
			return fmt.Errorf("file: checkpoint %d: unreadable sink state %q", checkpointID, state)
		}
		by = n
	}
	if err := s.publish(checkpointID, by, true); err != nil {
		return err
	}
	return s.startFile()
}

// publish renames attempt by's pending files up to id to their committed
// names. Pending files of older attempts are dead once a later attempt
// publishes (recovered before it started, or abandoned): they are deleted,
// and with discard so are the other files of this attempt (newer than id,
// or of an attempt that did not take the checkpoint).
func (s *Sink) publish(id uint64, by int, discard bool) error {
	files, err := s.pendingFiles()
	if err != nil {
		return err
	}
	for _, p := range files {
		switch {
		case p.attempt == by && p.id <= id:
			if err := os.Rename(s.pending(p.id, p.attempt), s.committed(p.id)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("file: commit %d: %w", p.id, err)
			}
		case p.attempt < s.attempt || (discard && p.attempt == s.attempt):
			if err := os.Remove(s.pending(p.id, p.attempt)); err != nil && !os.IsNotExist(err) {
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
	if err := os.Rename(s.inprogress(), s.pending(checkpointID, s.attempt)); err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		return nil, err
	}
	// The checkpoint records which attempt's pending files it covers.
	return []byte(strconv.Itoa(s.attempt)), s.startFile()
}

// Commit publishes every pending file up to checkpointID (a checkpoint that
// failed in the catalog leaves its pending file to the next one that
// commits). Already published files are fine: Commit is idempotent.
func (s *Sink) Commit(_ context.Context, checkpointID uint64, _ []byte) error {
	return s.publish(checkpointID, s.attempt, false)
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
