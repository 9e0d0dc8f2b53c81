package conformance

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"sluice/connectors"
)

// Line is the canonical text of one row: its columns sorted by name,
// "name=value" joined by commas, NULL as NULL. Drivers render what they
// read back from a target with it.
func Line(row map[string]any) string {
	names := make([]string, 0, len(row))
	for n := range row {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.ToLower(n) + "=" + Value(row[n]))
	}
	return b.String()
}

// Value is the canonical text of one value.
func Value(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(x)
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

// State is what a stream of changes describes: rows by key (the batch's
// primary key; the whole row when it has none, counted).
type State struct {
	rows map[string]string
	n    map[string]int
}

// NewState returns an empty state.
func NewState() *State { return &State{rows: map[string]string{}, n: map[string]int{}} }

// Clone copies a state.
func (s *State) Clone() *State {
	c := NewState()
	for k, v := range s.rows {
		c.rows[k] = v
	}
	for k, v := range s.n {
		c.n[k] = v
	}
	return c
}

// Apply applies a batch's changes.
func (s *State) Apply(b connectors.Batch) error {
	if b.Record == nil || b.Record.NumRows() == 0 {
		return nil
	}
	kinds, err := connectors.RowKinds(b.Record)
	if err != nil {
		return err
	}
	key, err := connectors.PrimaryKey(b.Record.Schema())
	if err != nil {
		return err
	}
	fields := b.Record.Schema().Fields()
	for i := 0; i < int(b.Record.NumRows()); i++ {
		row := map[string]any{}
		var k strings.Builder
		k.WriteString(b.Table.String() + "\x00")
		for j := 1; j < len(fields); j++ {
			row[fields[j].Name] = valueAt(b.Record.Column(j), i)
		}
		for _, c := range key {
			k.WriteString(Value(row[c]) + "\x00")
		}
		line := b.Table.String() + " " + Line(row)
		del := connectors.RowKind(kinds.Value(i)) == connectors.Delete || connectors.RowKind(kinds.Value(i)) == connectors.UpdateBefore
		if len(key) == 0 {
			if del {
				s.n[line]--
				if s.n[line] <= 0 {
					delete(s.n, line)
				}
			} else {
				s.n[line]++
			}
			continue
		}
		if del {
			delete(s.rows, k.String())
		} else {
			s.rows[k.String()] = line
		}
	}
	return nil
}

// Lines returns the state as sorted lines "db.table row".
func (s *State) Lines() []string {
	var out []string
	for _, l := range s.rows {
		out = append(out, l)
	}
	for l, n := range s.n {
		for i := 0; i < n; i++ {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// Table returns the state's lines of one table, without the table name.
func (s *State) Table(id connectors.TableID) []string {
	var out []string
	prefix := id.String() + " "
	for _, l := range s.Lines() {
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimPrefix(l, prefix))
		}
	}
	return out
}

// valueAt returns row i of a column as a Go value Line renders the way
// drivers render what they read back.
func valueAt(c arrow.Array, i int) any {
	if c.IsNull(i) {
		return nil
	}
	switch a := c.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return int64(a.Value(i))
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	}
	return c.ValueStr(i)
}

// diff describes how two sorted line lists differ.
func diff(want, got []string) string {
	if strings.Join(want, "\n") == strings.Join(got, "\n") {
		return ""
	}
	in := map[string]int{}
	for _, l := range got {
		in[l]++
	}
	var missing, extra []string
	for _, l := range want {
		if in[l] > 0 {
			in[l]--
		} else {
			missing = append(missing, l)
		}
	}
	for l, n := range in {
		for ; n > 0; n-- {
			extra = append(extra, l)
		}
	}
	sort.Strings(extra)
	cut := func(l []string) []string {
		if len(l) > 4 {
			return append(l[:4:4], fmt.Sprintf("… %d more", len(l)-4))
		}
		return l
	}
	return fmt.Sprintf("want %d rows, got %d; missing %q; unexpected %q", len(want), len(got), cut(missing), cut(extra))
}
