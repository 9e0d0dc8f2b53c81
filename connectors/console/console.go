// Package console is the console sink: it prints each row, one line per row,
// to the server's standard output (demos and debugging).
package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"sluice/connectors"
)

// Spec declares the console connector, printing to w (os.Stdout when nil).
func Spec(w io.Writer) connectors.Spec {
	if w == nil {
		w = os.Stdout
	}
	return connectors.Spec{
		Name:        "console",
		Kind:        connectors.KindSink,
		Description: "prints every row to the server's standard output (demos)",
		Options: connectors.OptionSet{
			{Name: "limit", Type: connectors.TypeInt, Default: "0", Min: connectors.Int64(0),
				Description: "stop printing after this many rows per task (still counted); 0 prints all"},
		},
		NewSink: func(cfg connectors.Config, env connectors.Env) (connectors.Sink, error) {
			return &Sink{w: w, limit: cfg.Int("limit"), prefix: fmt.Sprintf("[%s#%d] ", env.Job, env.Subtask)}, nil
		},
	}
}

// out serialises writers of every console sink of the process.
var out sync.Mutex

// Sink prints rows.
type Sink struct {
	w       io.Writer
	limit   int64
	printed int64
	prefix  string
}

var _ connectors.Sink = (*Sink)(nil)

func (s *Sink) Open(context.Context) error { return nil }

// Write prints each row as `prefix table KIND {col=value, …}`.
func (s *Sink) Write(_ context.Context, b connectors.Batch) error {
	kinds, err := connectors.RowKinds(b.Record)
	if err != nil {
		return err
	}
	out.Lock()
	defer out.Unlock()
	bw := bufio.NewWriter(s.w)
	rec := b.Record
	for r := 0; r < int(rec.NumRows()); r++ {
		if s.limit > 0 && s.printed >= s.limit {
			break
		}
		s.printed++
		fmt.Fprintf(bw, "%s%s %s {", s.prefix, b.Table, connectors.RowKind(kinds.Value(r)))
		for c := 1; c < int(rec.NumCols()); c++ {
			if c > 1 {
				bw.WriteString(", ")
			}
			col := rec.Column(c)
			v := "NULL"
			if col.IsValid(r) {
				v = col.ValueStr(r)
			}
			fmt.Fprintf(bw, "%s=%s", rec.ColumnName(c), v)
		}
		bw.WriteString("}\n")
	}
	return bw.Flush()
}

func (s *Sink) Flush(context.Context) error { return nil }
func (s *Sink) Close() error                { return nil }
