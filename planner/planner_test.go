package planner

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
	"sluice/connectors/tablerename"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testPlanner() *Planner {
	sec := connectors.Spec{Name: "vault", Kind: connectors.KindSink,
		Options: connectors.OptionSet{{Name: "host", Type: connectors.TypeString, Required: true},
			{Name: "token", Type: connectors.TypeString, Secret: true}, {Name: "db_password", Type: connectors.TypeString}},
		NewSink: func(connectors.Config, connectors.Env) (connectors.Sink, error) { return nil, nil }}
	single := connectors.Spec{Name: "single", Kind: connectors.KindSource, MaxParallelism: 1,
		NewSource: func(connectors.Config, connectors.Env) (connectors.Source, error) { return nil, nil }}
	return New(connectors.NewRegistry().MustRegister(datagen.Spec(), blackhole.Spec(), tablerename.Spec(), sec, single))
}

func mustCreate(t *testing.T, p *Planner, sql string) catalog.CreateJob {
	t.Helper()
	st, err := Parse(sql)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := p.Create(st.(*CreateJob))
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestCreateValidation(t *testing.T) {
	p := testPlanner()
	cases := []struct {
		sql  string
		want error
		msg  string
	}{
		{"CREATE SYNC JOB j FROM datagen () TO blackhole ()", nil, ""},
		{"CREATE SYNC JOB j FROM DATAGEN ('ROWS'='1') TO blackhole ()", nil, ""},
		{"CREATE SYNC JOB j FROM nope () TO blackhole ()", connectors.ErrUnknownConnector, "valid sources are datagen"},
		{"CREATE SYNC JOB j FROM datagen () TO datagen ()", connectors.ErrUnknownConnector, "datagen is a source, not a sink"},
		{"CREATE SYNC JOB j FROM datagen () TRANSFORM blackhole () TO blackhole ()", connectors.ErrUnknownConnector, "valid transforms are table_rename"},
		{"CREATE SYNC JOB j FROM datagen ('x'='1') TO blackhole ()", connectors.ErrUnknownOption, "valid options are batch_size, rate, rows, tables"},
		{"CREATE SYNC JOB j FROM datagen ('rows'='-1') TO blackhole ()", connectors.ErrBadOptionValue, "below the minimum 0"},
		{"CREATE SYNC JOB j FROM datagen ('batch_size'='0') TO blackhole ()", connectors.ErrBadOptionValue, "below the minimum 1"},
		{"CREATE SYNC JOB j FROM datagen ('tables'=' , ') TO blackhole ()", connectors.ErrBadOptionValue, "list is empty"},
		{"CREATE SYNC JOB j FROM datagen () TRANSFORM table_rename ('case'='title') TO blackhole ()", connectors.ErrBadOptionValue, "not one of lower, upper, keep"},
		{"CREATE SYNC JOB j FROM datagen () TRANSFORM table_rename ('regex'='(') TO blackhole ()", connectors.ErrBadOptionValue, "not a valid regular expression"},
		{"CREATE SYNC JOB j FROM datagen () TO vault ()", connectors.ErrMissingOption, `"host"`},
		{"CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('parallelism'='0')", connectors.ErrBadOptionValue, "below the minimum 1"},
		{"CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('parallelism'='1000')", connectors.ErrBadOptionValue, "above the maximum 256"},
		{"CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('checkpoint.interval'='1ms')", connectors.ErrBadOptionValue, "shorter than the minimum"},
		{"CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('retry.interval'='-5s')", connectors.ErrBadOptionValue, "shorter than the minimum"},
		{"CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('schedule.strategy'='maybe')", connectors.ErrBadOptionValue, "wait, reject"},
		{"CREATE SYNC JOB j FROM single () TO blackhole () WITH ('parallelism'='1')", nil, ""},
		{"CREATE SYNC JOB j FROM single () TO blackhole () WITH ('parallelism'='2')", connectors.ErrBadOptionValue, "single runs as at most 1 parallel instance(s) per job, and the job asks for 2"},
		{"CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('paralelism'='2')", connectors.ErrUnknownOption, "valid options are checkpoint.interval"},
	}
	for _, c := range cases {
		st, err := Parse(c.sql)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		_, err = p.Create(st.(*CreateJob))
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.sql, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s:\n got  %v\n want %v containing %q", c.sql, err, c.want, c.msg)
		}
	}
}

func TestCreateCanonicalAndRender(t *testing.T) {
	p := testPlanner()
	cmd := mustCreate(t, p, "CREATE SYNC JOB `my job` FROM DataGen ('ROWS'='10', 'Tables'='a,b') TRANSFORM table_rename ('prefix'='ods_') TO vault ('host'='h', 'token'='canary', 'db_password'='canary2') WITH ('Parallelism'='3', 'checkpoint.interval'='1s')")
	want := catalog.JobSpec{
		Source:     catalog.ConnectorRef{Connector: "datagen", Options: map[string]string{"rows": "10", "tables": "a,b"}},
		Transforms: []catalog.ConnectorRef{{Connector: "table_rename", Options: map[string]string{"prefix": "ods_"}}},
		Sink:       catalog.ConnectorRef{Connector: "vault", Options: map[string]string{"host": "h", "token": "canary", "db_password": "canary2"}},
		Options:    map[string]string{"parallelism": "3", "checkpoint.interval": "1s"},
	}
	if !reflect.DeepEqual(cmd.Spec, want) {
		t.Fatalf("spec:\n got  %+v\n want %+v", cmd.Spec, want)
	}
	if pl := cmd.Plan.Pipelines; len(pl) != 1 || pl[0].Parallelism != 3 || !reflect.DeepEqual(pl[0].Vertices, []int{1, 2, 3}) {
		t.Fatalf("pipelines: %+v", pl)
	}
	// The unmasked text re-plans to the same spec; the stored (masked) one
	// hides both secrets (I9: nothing in the catalog holds one in clear).
	again := mustCreate(t, p, p.Render(cmd.Name, cmd.Spec, false))
	if !reflect.DeepEqual(again.Spec, cmd.Spec) || again.Name != "my job" {
		t.Fatalf("rendered SQL does not round-trip:\n%s", p.Render(cmd.Name, cmd.Spec, false))
	}
	if strings.Contains(cmd.SQL, "canary") || strings.Count(cmd.SQL, Mask) != 2 {
		t.Fatalf("secrets in the stored SQL: %s", cmd.SQL)
	}
	masked := p.Render(cmd.Name, cmd.Spec, true)
	if strings.Contains(masked, "canary") || strings.Count(masked, Mask) != 2 {
		t.Fatalf("secrets shown: %s", masked)
	}
}

func TestAlter(t *testing.T) {
	p := testPlanner()
	cmd := mustCreate(t, p, "CREATE SYNC JOB j FROM datagen () TO blackhole () WITH ('parallelism'='2')")
	job := catalog.Job{Name: "j", Spec: cmd.Spec, Plan: cmd.Plan}
	alt, err := p.Alter(job, &AlterJob{Name: "j", Options: []Option{{Key: "read.limit.rows_per_second", Value: "5"}, {Key: "parallelism", Value: "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if alt.Options["read.limit.rows_per_second"] != "5" || alt.Options["parallelism"] != "2" || alt.Plan.Pipelines[0].Parallelism != 2 {
		t.Fatalf("alter: %+v", alt)
	}
	if _, err := p.Alter(job, &AlterJob{Options: []Option{{Key: "parallelism", Value: "4"}}}); !errors.Is(err, connectors.ErrBadOptionValue) {
		t.Fatalf("parallelism change: %v", err)
	}
	if _, err := p.Alter(job, &AlterJob{Options: []Option{{Key: "read.limit.rows_per_second", Value: "x"}}}); !errors.Is(err, connectors.ErrBadOptionValue) {
		t.Fatalf("bad value: %v", err)
	}
	if _, err := p.Alter(job, &AlterJob{Options: []Option{{Key: "rows", Value: "1"}}}); !errors.Is(err, connectors.ErrUnknownOption) {
		t.Fatalf("connector option: %v", err)
	}
}

// TestExplainGolden compares EXPLAIN output with testdata/*.golden
// (go test ./planner -update rewrites them).
func TestExplainGolden(t *testing.T) {
	p := testPlanner()
	cases := map[string]struct {
		sql   string
		tasks []Assignment
	}{
		"explain_chain": {
			sql:   "CREATE SYNC JOB j FROM datagen ('rows'='10') TRANSFORM table_rename ('prefix'='ods_', 'case'='lower') TO vault ('host'='h', 'token'='secret-value') WITH ('parallelism'='2')",
			tasks: []Assignment{{Pipeline: 1, Subtask: 0, Node: "n1", Slot: 3, Attempt: 1, State: "RUNNING"}},
		},
		"explain_minimal": {sql: "CREATE SYNC JOB j FROM datagen () TO blackhole ()"},
	}
	for name, c := range cases {
		cmd := mustCreate(t, p, c.sql)
		got := strings.Join(p.Explain(cmd.Spec, cmd.Plan, c.tasks), "\n") + "\n"
		path := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n got\n%s\n want\n%s", name, got, want)
		}
	}
}
