package file

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sluice/connectors"
	"sluice/connectors/conformance"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.RunSink(t, conformance.SinkDriver{
		New: func(t *testing.T, env connectors.Env) connectors.Sink {
			cfg, err := Spec().Options.Validate("file", map[string]string{"path": dir})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Spec().NewSink(cfg, env)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Table:       func(check string) connectors.TableID { return connectors.TableID{Database: "src", Table: check} },
		Rows:        func(t *testing.T, id connectors.TableID) []string { return replay(t, dir, id) },
		Reset:       func(t *testing.T, id connectors.TableID) { os.RemoveAll(dir) },
		ExactlyOnce: true,
	})
}

// replay applies the committed files' changes of one table, in checkpoint
// order, keyed by the suite's key column id: what a reader of the files does.
func replay(t *testing.T, dir string, id connectors.TableID) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	ckpt := func(f string) int {
		base := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		n, _ := strconv.Atoi(base[strings.LastIndex(base, "-")+1:])
		return n
	}
	sort.Slice(files, func(i, j int) bool { return ckpt(files[i]) < ckpt(files[j]) })
	state := map[string]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.UseNumber()
			var row map[string]any
			if err := dec.Decode(&row); err != nil {
				t.Fatal(err)
			}
			if row["_table"] != id.String() {
				continue
			}
			op := row["_op"].(string)
			delete(row, "_table")
			delete(row, "_op")
			key := conformance.Value(row["id"])
			if op == "DELETE" || op == "UPDATE_BEFORE" {
				delete(state, key)
			} else {
				state[key] = conformance.Line(row)
			}
		}
		fh.Close()
	}
	var out []string
	for _, l := range state {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}
