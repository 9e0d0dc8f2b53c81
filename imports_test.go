package sluice_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// allowed lists, for each top-level package, the top-level packages of this
// module it may import (DESIGN §3): cmd → node → sqlfront → planner →
// catalog → raftstore; exec → catalog and connectors; cluster (joins,
// forwarded writes, heartbeats) → catalog, raftstore and exec's row types;
// connectors imports nothing of ours; nothing imports cmd, node or
// sqlfront but the assembly above them. internal/testnode is test wiring
// over node.
var allowed = map[string][]string{
	"cmd":        {"node", "connectors", "internal"},
	"node":       {"sqlfront", "cluster", "planner", "catalog", "raftstore", "exec", "connectors"},
	"cluster":    {"catalog", "raftstore", "exec"},
	"sqlfront":   {"planner", "catalog", "raftstore", "exec", "connectors"},
	"planner":    {"catalog", "connectors"},
	"catalog":    {"raftstore"},
	"raftstore":  {},
	"exec":       {"catalog", "connectors"},
	"connectors": {"connectors"},
	"bench":      {"node", "exec", "catalog", "connectors", "raftstore", "planner", "internal"},
	"internal":   {"node", "sqlfront", "planner", "catalog", "raftstore", "exec", "connectors"},
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		from := top(p.ImportPath)
		if from == "" {
			continue // the module root (this test)
		}
		ok, known := allowed[from]
		if !known {
			t.Errorf("package %s is in no layer of DESIGN §3; add it to the allowed table", p.ImportPath)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			to := top(imp)
			if to == "" || (to == from && from != "connectors") {
				continue
			}
			if !contains(ok, to) {
				t.Errorf("%s imports %s: %s may not import %s", p.ImportPath, imp, from, to)
			}
		}
	}
	if seen < 8 {
		t.Fatalf("only %d packages checked", seen)
	}
}

// top returns the top-level package of an import path of this module ("" otherwise).
func top(path string) string {
	rest, ok := strings.CutPrefix(path, "sluice/")
	if !ok {
		return ""
	}
	first, _, _ := strings.Cut(rest, "/")
	return first
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
