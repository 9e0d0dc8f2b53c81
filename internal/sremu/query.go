package sremu

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// The query port speaks the MySQL protocol and understands the few
// statements the sink and the demo send: CREATE DATABASE, CREATE TABLE …
// PRIMARY KEY (…) / DUPLICATE KEY (…), the information_schema.tables
// existence check, SELECT COUNT(*) and SELECT * of one table, and the
// client's session queries. Anything else is an error that says so.

var (
	reCreateDB    = regexp.MustCompile("(?is)^CREATE\\s+DATABASE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?`?([\\w$]+)`?")
	reCreateTable = regexp.MustCompile("(?is)^CREATE\\s+TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?`?([\\w$]+)`?\\.`?([\\w$]+)`?\\s*\\(.*\\)\\s*(PRIMARY|DUPLICATE)\\s+KEY\\s*\\(([^)]*)\\)")
	reExists      = regexp.MustCompile("(?is)^SELECT\\s+COUNT\\(\\*\\)\\s+FROM\\s+information_schema\\.tables\\s+WHERE\\s+table_schema\\s*=\\s*'([^']*)'\\s+AND\\s+table_name\\s*=\\s*'([^']*)'")
	reAlter       = regexp.MustCompile("(?is)^ALTER\\s+TABLE\\s+`?([\\w$]+)`?\\.`?([\\w$]+)`?\\s+(.*)$")
	reColumns     = regexp.MustCompile("(?is)^SELECT\\s+column_name\\s*,\\s*column_type\\s+FROM\\s+information_schema\\.columns\\s+WHERE\\s+table_schema\\s*=\\s*'([^']*)'\\s+AND\\s+table_name\\s*=\\s*'([^']*)'")
	reColumnDef   = regexp.MustCompile("(?is)^`([^`]+)`\\s+(\\S+(?:\\s*\\([^)]*\\))?)")
	reDefault     = regexp.MustCompile(`(?i)\sDEFAULT\s+"((?:[^"\\]|\\.)*)"`)
	reAlterCol    = regexp.MustCompile("(?is)^(ADD|DROP|MODIFY)\\s+COLUMN\\s+`([^`]+)`\\s*(\\S+(?:\\s*\\([^)]*\\))?)?|^RENAME\\s+COLUMN\\s+`([^`]+)`\\s+TO\\s+`([^`]+)`")
	reCount       = regexp.MustCompile("(?is)^SELECT\\s+COUNT\\(\\*\\)\\s+FROM\\s+`?([\\w$]+)`?\\.`?([\\w$]+)`?\\s*;?$")
	reSelectAll   = regexp.MustCompile("(?is)^SELECT\\s+\\*\\s+FROM\\s+`?([\\w$]+)`?\\.`?([\\w$]+)`?\\s*;?$")
)

// ServeQueries starts the MySQL-protocol query port on a free loopback port.
func (e *Emulator) ServeQueries() (string, error) { return e.ServeQueriesOn("127.0.0.1:0") }

// ServeQueriesOn starts the query port on addr.
func (e *Emulator) ServeQueriesOn(addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.lq, e.Query = l, l.Addr().String()
	e.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, err := server.NewConn(c, e.User, e.Password, queryHandler{e: e})
				if err != nil {
					c.Close()
					return
				}
				for !conn.Closed() {
					if err := conn.HandleCommand(); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), nil
}

type queryHandler struct {
	server.EmptyHandler
	e *Emulator
}

func (h queryHandler) UseDB(string) error { return nil }

func (h queryHandler) HandleQuery(q string) (*mysql.Result, error) {
	q = strings.TrimSpace(q)
	e := h.e
	one := func(name string, v any) (*mysql.Result, error) {
		rs, err := mysql.BuildSimpleTextResultset([]string{name}, [][]any{{v}})
		if err != nil {
			return nil, err
		}
		return mysql.NewResult(rs), nil
	}
	switch {
	case strings.HasPrefix(strings.ToLower(q), "select @@"), strings.HasPrefix(strings.ToLower(q), "set "):
		if strings.HasPrefix(strings.ToLower(q), "set ") {
			return nil, nil
		}
		return one("@@version_comment", "StarRocks emulator (sluice/internal/sremu)")
	case reCreateDB.MatchString(q):
		return nil, nil
	case reCreateTable.MatchString(q):
		m := reCreateTable.FindStringSubmatch(q)
		var key []string
		if strings.EqualFold(m[3], "PRIMARY") {
			for _, k := range strings.Split(m[4], ",") {
				key = append(key, strings.Trim(strings.TrimSpace(k), "`"))
			}
		}
		e.CreateTable(m[1], m[2], key...)
		// Column definitions: the text between the first ( and its match.
		body := q[strings.Index(q, "(")+1:]
		depth, end := 1, 0
		for i, c := range body {
			if c == '(' {
				depth++
			} else if c == ')' {
				if depth--; depth == 0 {
					end = i
					break
				}
			}
		}
		var cols []Column
		for _, def := range splitTop(body[:end]) {
			if cm := reColumnDef.FindStringSubmatch(strings.TrimSpace(def)); cm != nil {
				cols = append(cols, Column{Name: cm[1], Type: strings.ToUpper(cm[2])})
			}
		}
		e.mu.Lock()
		if t := e.dbs[m[1]][m[2]]; t != nil && t.Cols == nil {
			t.Cols = cols
		}
		e.mu.Unlock()
		return nil, nil
	case reColumns.MatchString(q):
		m := reColumns.FindStringSubmatch(q)
		e.mu.Lock()
		var vals [][]any
		if t := e.dbs[m[1]][m[2]]; t != nil {
			for _, c := range t.Cols {
				vals = append(vals, []any{c.Name, strings.ToLower(c.Type)})
			}
		}
		e.mu.Unlock()
		rs, err := mysql.BuildSimpleTextResultset([]string{"COLUMN_NAME", "COLUMN_TYPE"}, vals)
		if err != nil {
			return nil, err
		}
		return mysql.NewResult(rs), nil
	case reAlter.MatchString(q):
		// One column change per statement, as StarRocks runs one schema
		// change at a time. Stored rows are renamed; types are recorded.
		m := reAlter.FindStringSubmatch(q)
		e.mu.Lock()
		defer e.mu.Unlock()
		t := e.dbs[m[1]][m[2]]
		if t == nil {
			return nil, mysql.NewError(mysql.ER_NO_SUCH_TABLE, fmt.Sprintf("Unknown table '%s.%s'", m[1], m[2]))
		}
		a := reAlterCol.FindStringSubmatch(strings.TrimSpace(m[3]))
		if a == nil {
			return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, "the StarRocks emulator does not understand: "+q)
		}
		find := func(name string) int {
			for i, c := range t.Cols {
				if strings.EqualFold(c.Name, name) {
					return i
				}
			}
			return -1
		}
		switch strings.ToUpper(a[1]) {
		case "ADD":
			if find(a[2]) >= 0 {
				return nil, mysql.NewError(mysql.ER_DUP_FIELDNAME, fmt.Sprintf("Duplicate column name '%s'", a[2]))
			}
			col := Column{Name: a[2], Type: strings.ToUpper(a[3])}
			// Existing rows take the column's default, as in StarRocks.
			if d := reDefault.FindStringSubmatch(m[3]); d != nil {
				v := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(d[1])
				col.Default = v
				for _, r := range t.rows {
					if _, ok := r[a[2]]; !ok {
						r[a[2]] = v
					}
				}
			}
			t.Cols = append(t.Cols, col)
			// Rows loaded into a transaction still open were written under
			// the old schema; StarRocks reads such data with the new
			// column's default (schema change converts it, or fast schema
			// evolution reads the default), except that a partial update
			// keeps the column as it is.
			if col.Default != nil {
				for _, tx := range e.labels {
					if tx.table != m[2] || tx.db != m[1] || (tx.state != "PREPARE" && tx.state != "PREPARED") {
						continue
					}
					for _, r := range tx.rows {
						if _, partial := r[partialKey]; !partial {
							if _, ok := r[a[2]]; !ok {
								r[a[2]] = col.Default
							}
						}
					}
				}
			}
		case "DROP", "MODIFY":
			i := find(a[2])
			if i < 0 && t.Cols != nil {
				return nil, mysql.NewError(mysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s'", a[2]))
			}
			if i >= 0 && strings.EqualFold(a[1], "DROP") {
				t.Cols = append(t.Cols[:i], t.Cols[i+1:]...)
				// The column's data goes, in stored rows and in rows of
				// transactions still open.
				for _, r := range t.rows {
					delete(r, a[2])
				}
				for _, tx := range e.labels {
					if tx.table == m[2] && tx.db == m[1] && (tx.state == "PREPARE" || tx.state == "PREPARED") {
						for _, r := range tx.rows {
							delete(r, a[2])
						}
					}
				}
			} else if i >= 0 {
				t.Cols[i].Type = strings.ToUpper(a[3])
			}
		default: // RENAME COLUMN from TO to
			i := find(a[4])
			if i < 0 && t.Cols != nil {
				return nil, mysql.NewError(mysql.ER_BAD_FIELD_ERROR, fmt.Sprintf("Unknown column '%s'", a[4]))
			}
			if find(a[5]) >= 0 {
				return nil, mysql.NewError(mysql.ER_DUP_FIELDNAME, fmt.Sprintf("Duplicate column name '%s'", a[5]))
			}
			if i >= 0 {
				t.Cols[i].Name = a[5]
			}
			for _, row := range t.rows {
				if v, ok := row[a[4]]; ok {
					row[a[5]] = v
					delete(row, a[4])
				}
			}
		}
		e.alters = append(e.alters, m[1]+"."+m[2]+" "+m[3])
		return nil, nil
	case reExists.MatchString(q):
		m := reExists.FindStringSubmatch(q)
		e.mu.Lock()
		n := 0
		if e.dbs[m[1]][m[2]] != nil {
			n = 1
		}
		e.mu.Unlock()
		return one("COUNT(*)", n)
	case reCount.MatchString(q):
		m := reCount.FindStringSubmatch(q)
		e.mu.Lock()
		t := e.dbs[m[1]][m[2]]
		e.mu.Unlock()
		if t == nil {
			return nil, mysql.NewError(mysql.ER_NO_SUCH_TABLE, fmt.Sprintf("Unknown table '%s.%s'", m[1], m[2]))
		}
		return one("count(*)", len(e.Rows(m[1], m[2])))
	case reSelectAll.MatchString(q):
		m := reSelectAll.FindStringSubmatch(q)
		rows := e.Rows(m[1], m[2])
		var names []string
		seen := map[string]bool{}
		for _, r := range rows {
			for k := range r {
				if !seen[k] {
					seen[k] = true
					names = append(names, k)
				}
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			names = []string{"(empty)"}
		}
		var vals [][]any
		for _, r := range rows {
			var row []any
			for _, n := range names {
				if r[n] == nil {
					row = append(row, nil)
				} else {
					row = append(row, fmt.Sprint(r[n]))
				}
			}
			vals = append(vals, row)
		}
		rs, err := mysql.BuildSimpleTextResultset(names, vals)
		if err != nil {
			return nil, err
		}
		return mysql.NewResult(rs), nil
	}
	return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, "the StarRocks emulator does not understand: "+q)
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
