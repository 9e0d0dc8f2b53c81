package node

// SQL over HTTP: POST /v1/sql runs one statement and answers JSON; GET
// /v1/jobs and /v1/jobs/{name} are the same reads for scripts. Each
// request runs over a connection to this node's own MySQL front, as the
// user of the request's basic auth: the same users, grants, dialect and
// error codes as at the wire, with nothing of the SQL front duplicated.

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// maxStatement bounds a POST /v1/sql body.
const maxStatement = 1 << 20

// sqlAPI answers the /v1 endpoints.
type sqlAPI struct {
	mysqlAddr func() string // the MySQL front's listen address
	tls       bool          // the front requires TLS
	timeout   time.Duration
	nodeID    string
}

// Result is the JSON answer of POST /v1/sql.
type sqlResult struct {
	Columns []sqlColumn `json:"columns"`
	Rows    [][]any     `json:"rows"`
	Error   *sqlError   `json:"error,omitempty"`
}

type sqlColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// sqlError is the MySQL error as the wire has it.
type sqlError struct {
	Code     uint16 `json:"code"`
	SQLState string `json:"sql_state,omitempty"`
	Message  string `json:"message"`
}

func (a *sqlAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sql", a.handleSQL)
	mux.HandleFunc("GET /v1/jobs", a.handleJobs)
	mux.HandleFunc("GET /v1/jobs/{name}", a.handleJob)
	mux.HandleFunc("GET /{$}", a.handleStatus(a.nodeID))
}

// statement reads the statement of a POST /v1/sql: the raw body (curl -d
// 'SELECT …'), a form field sql=…, or JSON {"sql": "…"}.
func statement(r *http.Request) (string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxStatement+1))
	if err != nil {
		return "", err
	}
	if len(body) > maxStatement {
		return "", errors.New("statement longer than 1 MiB")
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		var in struct {
			SQL string `json:"sql"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return "", errors.New(`a JSON body is {"sql": "…"}: ` + err.Error())
		}
		return in.SQL, nil
	case strings.HasPrefix(string(body), "sql="):
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return "", err
		}
		return v.Get("sql"), nil
	}
	return string(body), nil
}

func (a *sqlAPI) handleSQL(w http.ResponseWriter, r *http.Request) {
	q, err := statement(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, sqlResult{Error: &sqlError{Code: 1064, Message: err.Error()}})
		return
	}
	if strings.TrimSpace(q) == "" {
		writeJSON(w, http.StatusBadRequest, sqlResult{Error: &sqlError{Code: 1065, SQLState: "42000", Message: "Query was empty"}})
		return
	}
	res, status := a.query(r, q)
	writeJSON(w, status, res)
}

// handleJobs lists sluice.jobs as objects.
func (a *sqlAPI) handleJobs(w http.ResponseWriter, r *http.Request) {
	res, status := a.query(r, "SELECT * FROM sluice.jobs ORDER BY name")
	if res.Error != nil {
		writeJSON(w, status, res)
		return
	}
	writeJSON(w, http.StatusOK, objects(res))
}

// handleJob is one job with its tables and tasks.
func (a *sqlAPI) handleJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	out := map[string]any{}
	for _, part := range []struct{ key, q string }{
		{"job", "SELECT * FROM sluice.jobs WHERE name = ?"},
		{"tables", "SELECT * FROM sluice.job_tables WHERE job = ? ORDER BY table_name"},
		{"tasks", "SELECT * FROM sluice.tasks WHERE job = ? ORDER BY pipeline_id, task_id"},
	} {
		res, status := a.query(r, part.q, name)
		if res.Error != nil {
			writeJSON(w, status, res)
			return
		}
		rows := objects(res)
		if part.key != "job" {
			out[part.key] = rows
			continue
		}
		if len(rows) == 0 {
			writeJSON(w, http.StatusNotFound, sqlResult{Error: &sqlError{Code: 1146, SQLState: "42S02", Message: "sync job " + name + " does not exist"}})
			return
		}
		out["job"] = rows[0]
	}
	writeJSON(w, http.StatusOK, out)
}

// query runs q as the request's user and returns the result with the
// HTTP status it deserves.
func (a *sqlAPI) query(r *http.Request, q string, args ...any) (sqlResult, int) {
	user, pw, ok := r.BasicAuth()
	if !ok {
		return sqlResult{Error: &sqlError{Code: 1045, SQLState: "28000", Message: "HTTP basic auth with a sluice user is required"}}, http.StatusUnauthorized
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pw, "tcp", selfAddr(a.mysqlAddr())
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, a.timeout, a.timeout
	cfg.InterpolateParams = true
	if a.tls {
		// This node's own listener, on its own address: nothing to verify
		// that the process does not already know.
		cfg.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return sqlResult{Error: &sqlError{Code: 2005, Message: err.Error()}}, http.StatusInternalServerError
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return errorResult(err)
	}
	defer rows.Close()
	res := sqlResult{Columns: []sqlColumn{}, Rows: [][]any{}}
	types, _ := rows.ColumnTypes()
	for _, t := range types {
		res.Columns = append(res.Columns, sqlColumn{Name: t.Name(), Type: t.DatabaseTypeName()})
	}
	vals := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return errorResult(err)
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = jsonValue(v, res.Columns[i].Type)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return errorResult(err)
	}
	return res, http.StatusOK
}

// errorResult maps an error to the wire's code and an HTTP status.
func errorResult(err error) (sqlResult, int) {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		status := http.StatusBadRequest
		switch me.Number {
		case 1045:
			status = http.StatusUnauthorized
		case 1044, 1142, 1227:
			status = http.StatusForbidden
		}
		return sqlResult{Error: &sqlError{Code: me.Number, SQLState: string(me.SQLState[:]), Message: me.Message}}, status
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return sqlResult{Error: &sqlError{Code: 3024, Message: "statement timed out: " + err.Error()}}, http.StatusGatewayTimeout
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return sqlResult{Error: &sqlError{Code: 2013, Message: err.Error()}}, http.StatusServiceUnavailable
	}
	return sqlResult{Error: &sqlError{Code: 2013, Message: err.Error()}}, http.StatusServiceUnavailable
}

// jsonValue is a column value: JSON null, a number for numeric types
// (exactly as the server wrote it), else a string.
func jsonValue(v sql.RawBytes, typ string) any {
	if v == nil {
		return nil
	}
	switch strings.TrimPrefix(typ, "UNSIGNED ") {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "DECIMAL", "FLOAT", "DOUBLE", "YEAR":
		s := string(v)
		if json.Valid(v) {
			return json.Number(s)
		}
		return s
	}
	return string(v)
}

// objects turns a result into one object per row.
func objects(res sqlResult) []map[string]any {
	out := make([]map[string]any, 0, len(res.Rows))
	for _, row := range res.Rows {
		o := make(map[string]any, len(row))
		for i, v := range row {
			o[res.Columns[i].Name] = v
		}
		out = append(out, o)
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="sluice"`)
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// selfAddr is an address to reach a listener bound to addr from this
// host (a wildcard bind is reached on loopback).
func selfAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ip != nil && ip.To4() == nil {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
