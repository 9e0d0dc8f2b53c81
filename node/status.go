package node

// The status page at / : nodes, jobs with their state and lag, each job's
// tables (phase, snapshot progress, lag), live throughput, the job's DAG
// with pipelines and task placement (EXPLAIN SYNC JOB), and recent events.
// Server-rendered from SELECTs over the system tables, run as the
// request's basic-auth user like /v1/sql, so the page shows what that
// user may read; it refreshes itself every 5 seconds.

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"cell": func(v any) string {
		switch x := v.(type) {
		case nil:
			return "—"
		case json.Number:
			if strings.ContainsAny(string(x), ".eE") {
				if f, err := x.Float64(); err == nil {
					return strconv.FormatFloat(f, 'f', 1, 64)
				}
			}
		}
		return fmt.Sprint(v)
	},
	"lower": strings.ToLower,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>sluice — {{.Node}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#f4f4f4}.running,.streaming,.up,.ok{color:#080}.paused,.snapshot,.warn,.suspect{color:#a60}
.failed,.error,.critical,.down{color:#b00}pre{background:#f8f8f8;padding:.6em;overflow:auto}
.err{color:#b00}
</style></head><body>
<h1>sluice — node {{.Node}}</h1>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{range .Sections}}
<h2>{{.Title}}</h2>
{{if .Error}}<p class="err">{{.Error}}</p>{{else if not .Rows}}<p>none</p>{{else}}
<table id="{{.ID}}"><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td class="{{lower (cell .)}}">{{cell .}}</td>{{end}}</tr>{{end}}
</table>{{end}}
{{end}}
{{range .Plans}}<h2>DAG of job {{.Job}}</h2><pre id="plan-{{.Job}}">{{.Text}}</pre>{{end}}
</body></html>
`))

type statusSection struct {
	Title, ID, Error string
	Columns          []string
	Rows             [][]any
}

type statusPlan struct{ Job, Text string }

func (a *sqlAPI) handleStatus(nodeID string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="sluice"`)
			http.Error(w, "log in with a sluice user (the same as at the MySQL wire)", http.StatusUnauthorized)
			return
		}
		page := struct {
			Node, Error string
			Sections    []statusSection
			Plans       []statusPlan
		}{Node: nodeID}
		for _, s := range []struct{ title, id, q string }{
			{"Nodes", "nodes", "SELECT node_id, role, raft_state, alive, last_heartbeat, slots_total, slots_used FROM sluice.nodes ORDER BY node_id"},
			{"Jobs", "jobs", "SELECT name, state, source, sink, parallelism, lag_ms, restarts, error FROM sluice.jobs ORDER BY name"},
			{"Tables", "tables", "SELECT job, table_name, phase, snapshot_rows_done, snapshot_rows_total, lag_ms, last_event_at, error FROM sluice.job_tables ORDER BY job, table_name"},
			{"Throughput", "throughput", "SELECT job, table_name, source_received_qps, sink_write_qps, sink_write_count, updated_at FROM sluice.metrics ORDER BY job, table_name"},
			{"Tasks", "tasks", "SELECT job, pipeline_id, task_id, node_id, slot_id, attempt, state FROM sluice.tasks ORDER BY job, pipeline_id, task_id"},
			{"Binlog risk", "risk", "SELECT job, server, risk, seconds_to_purge, checkpoint_position, error FROM sluice.binlog_risk ORDER BY job"},
			{"Recent events", "events", "SELECT time, job, kind, message FROM sluice.events ORDER BY seq DESC LIMIT 20"},
		} {
			res, status := a.query(r, s.q)
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="sluice"`)
				http.Error(w, res.Error.Message, status)
				return
			}
			sec := statusSection{Title: s.title, ID: s.id}
			if res.Error != nil {
				sec.Error = res.Error.Message
			} else {
				for _, c := range res.Columns {
					sec.Columns = append(sec.Columns, c.Name)
				}
				sec.Rows = res.Rows
			}
			page.Sections = append(page.Sections, sec)
			if s.id == "jobs" && res.Error == nil {
				for _, row := range res.Rows {
					name := fmt.Sprint(row[0])
					plan, _ := a.query(r, "EXPLAIN SYNC JOB `"+strings.ReplaceAll(name, "`", "``")+"`")
					var lines []string
					for _, l := range plan.Rows {
						if len(l) > 0 {
							lines = append(lines, fmt.Sprint(l[0]))
						}
					}
					page.Plans = append(page.Plans, statusPlan{Job: name, Text: strings.Join(lines, "\n")})
				}
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, page); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}
}
