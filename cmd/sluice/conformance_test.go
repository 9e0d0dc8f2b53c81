package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// connectorDirs maps each connector this binary offers to its package.
var connectorDirs = map[string]string{
	"datagen": "datagen", "blackhole": "blackhole", "console": "console", "file": "file",
	"table_rename": "tablerename", "mysql_cdc": "mysqlcdc", "mysql": "mysqlsink", "starrocks": "starrocks",
}

// Every connector this binary offers runs the acceptance suite of
// connectors/conformance in its own tests, so a new connector cannot ship
// without it.
func TestEveryConnectorRunsTheConformanceSuite(t *testing.T) {
	for _, s := range Registry().All() {
		pkg, ok := connectorDirs[s.Name]
		if !ok {
			t.Errorf("connector %s: add its package to connectorDirs, and give it a conformance driver", s.Name)
			continue
		}
		tests, _ := filepath.Glob(filepath.Join("..", "..", "connectors", pkg, "*_test.go"))
		found := false
		for _, f := range tests {
			b, err := os.ReadFile(f)
			if err == nil && strings.Contains(string(b), "conformance.Run") {
				found = true
			}
		}
		if !found {
			t.Errorf("connector %s: no test in connectors/%s calls conformance.RunSource, RunSink or RunTransform", s.Name, pkg)
		}
	}
}
