package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

type apiResult struct {
	Columns []struct{ Name, Type string }
	Rows    [][]any
	Error   *struct {
		Code     int
		SQLState string `json:"sql_state"`
		Message  string
	}
}

// curlSQL posts a statement as curl -u user:pw -d '…' does.
func (n *node) curlSQL(t *testing.T, userpw, q string) (int, apiResult) {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-u", userpw, "-d", q, "http://"+n.httpAddr+"/v1/sql").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	i := strings.LastIndexByte(string(out), '\n') // -w puts the status on the last line
	if i < 0 {
		t.Fatalf("curl printed %q", out)
	}
	body, code := string(out[:i]), string(out[i+1:])
	var res apiResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("%s: not JSON: %q", q, body)
	}
	return atoi(code), res
}

// TestSQLOverHTTP: POST /v1/sql answers JSON as the basic-auth user, with
// the wire's users, grants and error codes; GET /v1/jobs and
// /v1/jobs/{name} serve scripts.
func TestSQLOverHTTP(t *testing.T) {
	n := newNode(t)
	n.start()
	n.sql("CREATE SYNC JOB web FROM datagen ('rate'='500', 'tables'='a') TO blackhole ()")
	n.sql("CREATE USER viewer IDENTIFIED BY 'view-pw'; GRANT SELECT ON sluice.* TO viewer")
	n.waitFor("web RUNNING", func() bool { return n.state("web") == "RUNNING" })

	code, res := n.curlSQL(t, "viewer:view-pw", "SELECT name, state, parallelism FROM sluice.jobs")
	if code != 200 || res.Error != nil || len(res.Columns) != 3 || res.Columns[0].Name != "name" || len(res.Rows) != 1 {
		t.Fatalf("SELECT: %d %+v", code, res)
	}
	if row := res.Rows[0]; row[0] != "web" || row[1] != "RUNNING" || row[2] != float64(1) {
		t.Fatalf("row %#v, want web, RUNNING and the number 1", row)
	}

	// Errors carry the code the wire gives for the same statement.
	for _, c := range []struct {
		userpw, q string
		status    int
	}{
		{"viewer:wrong", "SELECT 1", 401},
		{"nobody:x", "SELECT 1", 401},
		{"viewer:view-pw", "PAUSE SYNC JOB web", 403},
		{"viewer:view-pw", "SELEC nothing", 400},
		{"viewer:view-pw", "SELECT * FROM sluice.nosuch", 400},
	} {
		code, res := n.curlSQL(t, c.userpw, c.q)
		user, pw, _ := strings.Cut(c.userpw, ":")
		out, err := n.runAs(user, pw, c.q)
		if err == nil {
			t.Fatalf("%s as %s: the wire accepted it: %s", c.q, user, out)
		}
		if code != c.status || res.Error == nil || !strings.Contains(out, "ERROR "+strconv.Itoa(res.Error.Code)+" ") {
			t.Errorf("%s as %s: HTTP %d %+v; the wire said %q", c.q, user, code, res.Error, out)
		}
	}
	if st := n.state("web"); st != "RUNNING" {
		t.Fatalf("a refused PAUSE over HTTP changed the job: %s", st)
	}

	// The dialect works over HTTP for a user allowed it.
	if code, res := n.curlSQL(t, "root:", "PAUSE SYNC JOB web"); code != 200 || res.Error != nil {
		t.Fatalf("PAUSE as root: %d %+v", code, res.Error)
	}
	n.waitFor("web PAUSED", func() bool { return n.state("web") == "PAUSED" })

	get := func(path string, v any) int {
		req, _ := http.NewRequest("GET", "http://"+n.httpAddr+path, nil)
		req.SetBasicAuth("viewer", "view-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	var jobs []map[string]any
	if code := get("/v1/jobs", &jobs); code != 200 || len(jobs) != 1 || jobs[0]["name"] != "web" || jobs[0]["state"] != "PAUSED" {
		t.Fatalf("/v1/jobs: %d %v", code, jobs)
	}
	var one struct {
		Job    map[string]any
		Tables []map[string]any
	}
	if code := get("/v1/jobs/web", &one); code != 200 || one.Job["name"] != "web" || len(one.Tables) != 1 || one.Tables[0]["phase"] != "PAUSED" {
		t.Fatalf("/v1/jobs/web: %d %+v", code, one)
	}
	var missing apiResult
	if code := get("/v1/jobs/nope", &missing); code != 404 || missing.Error == nil {
		t.Fatalf("/v1/jobs/nope: %d %+v", code, missing)
	}
	resp, err := http.Get("http://" + n.httpAddr + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("/v1/jobs without credentials: %d %v", resp.StatusCode, resp.Header)
	}
}
