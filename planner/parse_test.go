package planner

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		sql  string
		want Statement
	}{
		{"CREATE SYNC JOB j FROM datagen () TO blackhole ()",
			&CreateJob{Name: "j", Source: ConnectorClause{Name: "datagen", Pos: 23}, Sink: ConnectorClause{Name: "blackhole", Pos: 37}}},
		{"create sync job if not exists `a``b` from DataGen ('Rows'='5', rate = 10, 'x'=\"y\") transform table_rename (prefix='o_') to blackhole () with (checkpoint.interval='1s');",
			&CreateJob{IfNotExists: true, Name: "a`b",
				Source:     ConnectorClause{Name: "datagen", Pos: 42, Options: []Option{{"rows", "5", 51}, {"rate", "10", 63}, {"x", "y", 74}}},
				Transforms: []ConnectorClause{{Name: "table_rename", Pos: 93, Options: []Option{{"prefix", "o_", 107}}}},
				Sink:       ConnectorClause{Name: "blackhole", Pos: 123},
				With:       []Option{{"checkpoint.interval", "1s", 142}}}},
		{"DROP SYNC JOB IF EXISTS j", &DropJob{IfExists: true, Name: "j"}},
		{"-- comment\nPAUSE /* c */ SYNC JOB j", &PauseJob{Name: "j"}},
		{"RESUME SYNC JOB 1st", &ResumeJob{Name: "1st"}},
		{"ALTER SYNC JOB j SET ('a'='it''s', 'b'='x\\ny')", &AlterJob{Name: "j", Options: []Option{{"a", "it's", 22}, {"b", "x\ny", 35}}}},
		{"SHOW SYNC JOBS", &ShowJobs{}},
		{"show sync jobs like 'o%'", &ShowJobs{Like: "o%", HasLike: true}},
		{"SHOW CREATE SYNC JOB `ü`", &ShowCreateJob{Name: "ü"}},
		{"EXPLAIN SYNC JOB j", &ExplainJob{Name: "j"}},
		{"REMOVE NODE 'node-1a'", &RemoveNode{ID: "node-1a"}},
		{"remove node `n2`", &RemoveNode{ID: "n2"}},
		{"EXPLAIN CREATE SYNC JOB j FROM a () TO b ()",
			&ExplainCreate{Create: &CreateJob{Name: "j", Source: ConnectorClause{Name: "a", Pos: 31}, Sink: ConnectorClause{Name: "b", Pos: 39}}}},
	}
	for _, c := range cases {
		got, err := Parse(c.sql)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got  %#v\n want %#v", c.sql, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		sql          string
		msg          string
		line, column int
	}{
		{"CREATE SYNC JOB", "expected job name", 1, 16},
		{"CREATE SYNC JOB j FROM datagen () blackhole ()", "expected TRANSFORM or TO", 1, 35},
		{"CREATE SYNC JOB j\nFROM datagen (\n  'rows' '1') TO b ()", "expected '='", 3, 10},
		{"CREATE SYNC JOB j FROM d ('a'='1' 'b'='2') TO b ()", "expected ',' or ')'", 1, 35},
		{"CREATE SYNC JOB j FROM d ('a'='1', 'A'='2') TO b ()", "given twice", 1, 36},
		{"CREATE SYNC JOB j FROM d ('a'='1) TO b ()", "unterminated string", 1, 31},
		{"CREATE SYNC JOB `` FROM d () TO b ()", "empty quoted identifier", 1, 17},
		{"CREATE SYNC JOB 42 FROM d () TO b ()", "only digits", 1, 17},
		{"CREATE SYNC JOB " + strings.Repeat("x", 65) + " FROM d () TO b ()", "longer than 64", 1, 17},
		{"CREATE SYNC JOB j FROM d () TO b () extra", "unexpected text after the statement", 1, 37},
		{"CREATE SYNC JOB j FROM d () TO b (); DROP SYNC JOB j", "unexpected text after the statement", 1, 38},
		{"PAUSE JOB j", "expected SYNC", 1, 7},
		{"PAUSE SYNC JOB", "expected job name", 1, 15},
		{"REMOVE NODE", "expected a node id", 1, 12},
		{"REMOVE USER x", "expected NODE", 1, 8},
		{"ALTER SYNC JOB j SET ()", "at least one option", 1, 24},
		{"SHOW SYNC JOBS LIKE x", "expected a quoted pattern", 1, 21},
		{"DROP SYNC JOB /* open", "unterminated comment", 1, 15},
		{"CREATE SYNC JOB j FROM d ('a'=) TO b ()", "expected a quoted option value", 1, 31},
		{"CREATE SYNC JOB j FROM d (''='x') TO b ()", "empty option name", 1, 27},
		{"CREATE SYNC JOB `a\nb` FROM d () TO b ()", "NUL, newlines", 1, 17},
		{"CREATE SYNC JOB j FROM d ('\xff'='x') TO b ()", "invalid UTF-8 in string", 1, 27},
		{"CREATE SYNC JOB `j\xffk` FROM d () TO b ()", "invalid UTF-8 in quoted identifier", 1, 17},
		{"CREATE SYNC JOB j FROM d ('a'='\xc3') TO b ()", "invalid UTF-8 in string", 1, 31},
	}
	for _, c := range cases {
		_, err := Parse(c.sql)
		if c.msg == "" {
			if err != nil {
				t.Errorf("%q: %v", c.sql, err)
			}
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: got %v, want a syntax error", c.sql, err)
			continue
		}
		if !strings.Contains(se.Msg, c.msg) || se.Line != c.line || se.Column != c.column {
			t.Errorf("%q: got %q at %d:%d, want %q at %d:%d", c.sql, se.Msg, se.Line, se.Column, c.msg, c.line, c.column)
		}
	}
	// An error never quotes an option value back: it may be a password.
	for _, q := range []string{
		"CREATE SYNC JOB j FROM mysql_cdc ('password'='hunter2' 'host'='h') TO b ()",
		"CREATE SYNC JOB j FROM mysql_cdc ('password'='hunter2', 'host'='h')) TO b ()",
		"CREATE SYNC JOB j FROM d () TO b ('password' = \"hunter2\" x",
		"CREATE SYNC JOB j FROM d () TO b ('password'='hun''ter2\\'x",
		"CREATE SYNC JOB j FROM d () TO b ('password'='hunter2",
		"CREATE SYNC JOB j FROM d () TO b (`password`=hunter2x 'x'",
		"CREATE SYNC JOB j FROM d () TO b ('password'=hunter2.x)",
		"CREATE SYNC JOB j FROM d () TO b ('password'=hunter2",
	} {
		_, err := Parse(q)
		if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ter2") {
			t.Errorf("%q: error %v quotes the value", q, err)
		}
	}
	if _, err := Parse(strings.Repeat(" ", MaxStatementBytes+1)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized statement: %v", err)
	}
}

func TestIsDialectAndSplit(t *testing.T) {
	for q, want := range map[string]bool{
		"CREATE SYNC JOB x": true, " /* c */ create sync job": true, "SHOW SYNC JOBS": true, "show create sync job x": true,
		"EXPLAIN SYNC JOB x": true, "explain create sync job": true, "PAUSE anything": true, "resume": true,
		"ALTER SYNC JOB j": true, "DROP SYNC JOB j": true, "REMOVE NODE 'n'": true, "REMOVE x": false,
		"SELECT 1": false, "CREATE TABLE t": false, "SHOW TABLES": false, "EXPLAIN SELECT 1": false, "SHOW CREATE TABLE t": false,
		"": false, "-- only a comment": false, "DROP TABLE sync": false,
	} {
		if got := IsDialect(q); got != want {
			t.Errorf("IsDialect(%q) = %v", q, got)
		}
	}
	for _, c := range []struct{ in, first, rest string }{
		{"A; B", "A;", " B"},
		{"A 'x;y' ; B", "A 'x;y' ;", " B"},
		{"A /* ; */ -- ;\n; B", "A /* ; */ -- ;\n;", " B"},
		{"A;  ", "A;", ""},
		{"A", "A", ""},
		{"A 'open; B", "A 'open; B", ""},
	} {
		f, r := SplitFirst(c.in)
		if f != c.first || r != c.rest {
			t.Errorf("SplitFirst(%q) = %q, %q", c.in, f, r)
		}
	}
}

// FuzzParse: the parser never panics, errors are syntax errors with a
// position inside the text, and what parses renders back to text that
// parses to the same statement.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"CREATE SYNC JOB j FROM datagen ('rows'='5') TRANSFORM t ('a'='b') TO blackhole () WITH ('parallelism'='2')",
		"DROP SYNC JOB IF EXISTS `x`", "SHOW SYNC JOBS LIKE 'a%'", "ALTER SYNC JOB j SET (a='1')", "PAUSE SYNC JOB j;",
		"EXPLAIN CREATE SYNC JOB j FROM a () TO b ()", "SHOW CREATE SYNC JOB `a``b`", "/* x */ RESUME SYNC JOB j -- y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("non-syntax error %T: %v", err, err)
			}
			if se.Pos < 0 || se.Pos > len(s) || se.Line < 1 || se.Column < 1 {
				t.Fatalf("bad position %+v for %q", se, s)
			}
			return
		}
		c, ok := st.(*CreateJob)
		if !ok {
			return
		}
		again, err := Parse(renderClause(c))
		if err != nil {
			t.Fatalf("rendered %q does not parse: %v", renderClause(c), err)
		}
		if !sameCreate(c, again.(*CreateJob)) {
			t.Fatalf("round trip changed %q", s)
		}
	})
}

// renderClause writes a parsed CREATE back as text (positions aside).
func renderClause(c *CreateJob) string {
	opts := func(os []Option) string {
		var parts []string
		for _, o := range os {
			parts = append(parts, QuoteString(o.Key)+"="+QuoteString(o.Value))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	s := "CREATE SYNC JOB " + QuoteIdent(c.Name) + " FROM " + QuoteIdent(c.Source.Name) + " " + opts(c.Source.Options)
	for _, t := range c.Transforms {
		s += " TRANSFORM " + QuoteIdent(t.Name) + " " + opts(t.Options)
	}
	s += " TO " + QuoteIdent(c.Sink.Name) + " " + opts(c.Sink.Options)
	if c.With != nil {
		s += " WITH " + opts(c.With)
	}
	return s
}

func sameCreate(a, b *CreateJob) bool {
	strip := func(c *CreateJob) *CreateJob {
		cp := *c
		clean := func(cc ConnectorClause) ConnectorClause {
			cc.Pos = 0
			var o []Option
			for _, x := range cc.Options {
				o = append(o, Option{Key: x.Key, Value: x.Value})
			}
			cc.Options = o
			return cc
		}
		cp.Source, cp.Sink = clean(c.Source), clean(c.Sink)
		cp.Transforms = nil
		for _, t := range c.Transforms {
			cp.Transforms = append(cp.Transforms, clean(t))
		}
		var w []Option
		for _, x := range c.With {
			w = append(w, Option{Key: x.Key, Value: x.Value})
		}
		cp.With = w
		cp.IfNotExists = false
		return &cp
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
