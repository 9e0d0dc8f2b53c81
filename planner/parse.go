package planner

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxStatementBytes bounds a dialect statement; larger ones are refused
// before parsing.
const MaxStatementBytes = 1 << 20

// MaxNameLen is the longest job name, as for MySQL identifiers.
const MaxNameLen = 64

// ErrSyntax is wrapped by every *SyntaxError.
var ErrSyntax = errors.New("syntax error")

// SyntaxError locates a parse failure. Pos is a byte offset into the text;
// Line and Column are 1-based; Near is the text from there on, shortened.
type SyntaxError struct {
	Msg          string
	Pos          int
	Line, Column int
	Near         string
}

func (e *SyntaxError) Error() string {
	near := e.Near
	if near == "" {
		return fmt.Sprintf("%s at end of statement (line %d, column %d)", e.Msg, e.Line, e.Column)
	}
	return fmt.Sprintf("%s near '%s' at line %d, column %d", e.Msg, near, e.Line, e.Column)
}

func (e *SyntaxError) Unwrap() error { return ErrSyntax }

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tQuotedIdent
	tString
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	text string // identifier/string value (unescaped); punctuation itself
	pos  int
}

type lexer struct {
	src string
	pos int
}

// skipSpace skips blanks and comments (-- x, # x, /* x */).
func (l *lexer) skipSpace() error {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '#' || (c == '-' && strings.HasPrefix(l.src[l.pos:], "--") &&
			(l.pos+2 == len(l.src) || isSpace(l.src[l.pos+2]))):
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case c == '/' && strings.HasPrefix(l.src[l.pos:], "/*"):
			end := strings.Index(l.src[l.pos+2:], "*/")
			if end < 0 {
				return l.errAt(l.pos, "unterminated comment")
			}
			l.pos += end + 4
		default:
			return nil
		}
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isIdentRune(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: l.pos}, nil
	}
	start := l.pos
	c := l.src[l.pos]
	switch {
	case c == '\'' || c == '"':
		s, err := l.quoted(c)
		return token{kind: tString, text: s, pos: start}, err
	case c == '`':
		s, err := l.quoted('`')
		if err == nil && s == "" {
			err = l.errAt(start, "empty quoted identifier")
		}
		return token{kind: tQuotedIdent, text: s, pos: start}, err
	case strings.ContainsRune("(),=;.", rune(c)):
		l.pos++
		return token{kind: tPunct, text: string(c), pos: start}, nil
	case c >= '0' && c <= '9' || c == '-' || c == '+':
		l.pos++
		for l.pos < len(l.src) && (isDigitOrDot(l.src[l.pos]) || isIdentByte(l.src[l.pos])) {
			l.pos++
		}
		text := l.src[start:l.pos]
		if text == "-" || text == "+" {
			return token{}, l.errAt(start, "unexpected character")
		}
		// 10s, 5m: a number glued to letters is a bare value like a duration.
		return token{kind: tNumber, text: text, pos: start}, nil
	}
	r, size := utf8.DecodeRuneInString(l.src[l.pos:])
	if r == utf8.RuneError && size <= 1 {
		return token{}, l.errAt(start, "invalid UTF-8")
	}
	if !isIdentRune(r) {
		return token{}, l.errAt(start, "unexpected character")
	}
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		if !isIdentRune(r) {
			break
		}
		l.pos += size
	}
	return token{kind: tIdent, text: l.src[start:l.pos], pos: start}, nil
}

func isDigitOrDot(c byte) bool { return c >= '0' && c <= '9' || c == '.' }
func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// quoted reads a quoted string or identifier. A doubled quote stands for
// itself; in strings, backslash escapes follow MySQL.
func (l *lexer) quoted(q byte) (string, error) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == q:
			if l.pos+1 < len(l.src) && l.src[l.pos+1] == q {
				b.WriteByte(q)
				l.pos += 2
				continue
			}
			l.pos++
			if !utf8.ValidString(b.String()) {
				// Stored as JSON in the catalog, invalid UTF-8 would be
				// silently replaced by U+FFFD: refuse it, as MySQL does.
				what := "string"
				if q == '`' {
					what = "quoted identifier"
				}
				return "", l.errAt(start, "invalid UTF-8 in "+what)
			}
			return b.String(), nil
		case c == '\\' && q != '`' && l.pos+1 < len(l.src):
			l.pos++
			switch e := l.src[l.pos]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'Z':
				b.WriteByte(26)
			default:
				b.WriteByte(e)
			}
			l.pos++
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	what := "string"
	if q == '`' {
		what = "quoted identifier"
	}
	return "", l.errAt(start, "unterminated "+what)
}

func (l *lexer) errAt(pos int, msg string) *SyntaxError {
	line, col := 1, 1
	for i := 0; i < pos && i < len(l.src); i++ {
		if l.src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	pos = min(pos, len(l.src))
	end := len(l.src)
	if end-pos > 40 {
		end = pos + 40
		for end > pos && !utf8.RuneStart(l.src[end]) {
			end--
		}
	}
	return &SyntaxError{Msg: msg, Pos: pos, Line: line, Column: col, Near: maskValues(l.src, pos, end)}
}

// maskValues returns src[from:to] with the text of every quoted option
// value (a string after '=') replaced by "******". The parser does not
// know which options are secret (that is the connectors' business), and an
// error must never quote a password back: so no value is quoted back.
func maskValues(src string, from, to int) string {
	var b strings.Builder
	afterEq := false
	for i := 0; i < to; {
		c := src[i]
		if afterEq && !isSpace(c) && !strings.ContainsRune("'\"`(),;=", rune(c)) {
			// a bare value (10s, 42, or a password someone forgot to quote)
			j := i
			for j < len(src) && !isSpace(src[j]) && !strings.ContainsRune("'\"`(),;=", rune(src[j])) {
				j++
			}
			if j > from && i < to {
				b.WriteString("******")
			}
			i, afterEq = j, false
			continue
		}
		if c != '\'' && c != '"' && c != '`' {
			if c == '=' {
				afterEq = true
			} else if !isSpace(c) {
				afterEq = false
			}
			if i >= from {
				b.WriteByte(c)
			}
			i++
			continue
		}
		// a quoted token: find its end (doubled quotes and, outside
		// identifiers, backslash escapes stay inside)
		j := i + 1
		for j < len(src) {
			if src[j] == '\\' && c != '`' && j+1 < len(src) {
				j += 2
				continue
			}
			if src[j] == c {
				if j+1 < len(src) && src[j+1] == c {
					j += 2
					continue
				}
				j++
				break
			}
			j++
		}
		secret := afterEq && c != '`'
		afterEq = false
		for k := i; k < min(j, to); k++ {
			if k < from {
				continue
			}
			inside := k > i && (k < j-1 || (j == len(src) && src[j-1] != c))
			switch {
			case !secret || !inside:
				b.WriteByte(src[k])
			case k == max(i+1, from):
				b.WriteString("******")
			}
		}
		i = j
	}
	return b.String()
}

// parser is a recursive-descent parser with one token of lookahead.
type parser struct {
	lx  lexer
	tok token
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errHere(msg string) *SyntaxError { return p.lx.errAt(p.tok.pos, msg) }

// isKeyword reports whether the current token is the bare word kw.
func (p *parser) isKeyword(kw string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) keyword(kws ...string) error {
	for _, kw := range kws {
		if !p.isKeyword(kw) {
			return p.errHere("expected " + kw)
		}
		if err := p.advance(); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) optKeywords(kws ...string) (bool, error) {
	if !p.isKeyword(kws[0]) {
		return false, nil
	}
	return true, p.keyword(kws...)
}

func (p *parser) punct(c string) error {
	if p.tok.kind != tPunct || p.tok.text != c {
		return p.errHere("expected '" + c + "'")
	}
	return p.advance()
}

func (p *parser) isPunct(c string) bool { return p.tok.kind == tPunct && p.tok.text == c }

// name reads a job name: an identifier, bare or backquoted.
func (p *parser) name(what string) (string, error) {
	t := p.tok
	switch t.kind {
	case tIdent, tQuotedIdent:
	case tNumber: // MySQL identifiers may start with a digit: 1st_job
		if isAllDigits(t.text) {
			return "", p.errHere(what + " cannot be only digits (quote it with backquotes)")
		}
		if !isIdentByte(t.text[0]) || strings.ContainsAny(t.text, ".+-") {
			return "", p.errHere("expected " + what)
		}
	default:
		return "", p.errHere("expected " + what)
	}
	if utf8.RuneCountInString(t.text) > MaxNameLen {
		return "", p.errHere(fmt.Sprintf("%s is longer than %d characters", what, MaxNameLen))
	}
	if strings.TrimSpace(t.text) != t.text || strings.ContainsAny(t.text, "\x00\n\r") {
		return "", p.errHere(what + " cannot contain NUL, newlines or leading/trailing blanks")
	}
	return t.text, p.advance()
}

func isAllDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// options reads ( 'k' = 'v', … ). Keys are lower-cased; a key given twice
// is an error.
func (p *parser) options() ([]Option, error) {
	if err := p.punct("("); err != nil {
		return nil, err
	}
	var opts []Option
	seen := map[string]bool{}
	for !p.isPunct(")") {
		if len(opts) > 0 {
			if err := p.punct(","); err != nil {
				return nil, p.errHere("expected ',' or ')'")
			}
		}
		pos := p.tok.pos
		key, err := p.optionKey()
		if err != nil {
			return nil, err
		}
		lk := strings.ToLower(key)
		if seen[lk] {
			return nil, p.lx.errAt(pos, fmt.Sprintf("option '%s' given twice", key))
		}
		seen[lk] = true
		if err := p.punct("="); err != nil {
			return nil, err
		}
		var val string
		switch p.tok.kind {
		case tString, tNumber, tIdent:
			val = p.tok.text
		default:
			return nil, p.errHere("expected a quoted option value")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		opts = append(opts, Option{Key: lk, Value: val, Pos: pos})
	}
	return opts, p.advance()
}

// optionKey reads 'key', or a bare dotted key like checkpoint.interval.
func (p *parser) optionKey() (string, error) {
	switch p.tok.kind {
	case tString:
		k := p.tok.text
		if k == "" {
			return "", p.errHere("empty option name")
		}
		return k, p.advance()
	case tIdent, tQuotedIdent:
		parts := []string{p.tok.text}
		if err := p.advance(); err != nil {
			return "", err
		}
		for p.isPunct(".") {
			if err := p.advance(); err != nil {
				return "", err
			}
			if p.tok.kind != tIdent {
				return "", p.errHere("expected option name after '.'")
			}
			parts = append(parts, p.tok.text)
			if err := p.advance(); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, "."), nil
	}
	return "", p.errHere("expected a quoted option name")
}

func (p *parser) connector() (ConnectorClause, error) {
	c := ConnectorClause{Pos: p.tok.pos}
	if p.tok.kind != tIdent && p.tok.kind != tQuotedIdent {
		return c, p.errHere("expected a connector name")
	}
	c.Name = strings.ToLower(p.tok.text)
	if err := p.advance(); err != nil {
		return c, err
	}
	opts, err := p.options()
	c.Options = opts
	return c, err
}

// Parse parses one dialect statement (an optional trailing ';' is allowed).
func Parse(text string) (Statement, error) {
	if len(text) > MaxStatementBytes {
		return nil, &SyntaxError{Msg: fmt.Sprintf("statement of %d bytes exceeds the %d-byte limit", len(text), MaxStatementBytes), Line: 1, Column: 1}
	}
	p := &parser{lx: lexer{src: text}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	st, err := p.statement()
	if err != nil {
		return nil, err
	}
	if p.isPunct(";") {
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if p.tok.kind != tEOF {
		return nil, p.errHere("unexpected text after the statement")
	}
	return st, nil
}

func (p *parser) statement() (Statement, error) {
	switch {
	case p.isKeyword("CREATE") && p.peekKeyword("NOTIFICATION"):
		return p.createNotification()
	case p.isKeyword("DROP") && p.peekKeyword("NOTIFICATION"):
		return p.dropNotification()
	case p.isKeyword("SHOW") && p.peekKeyword("NOTIFICATIONS"):
		return &ShowNotifications{}, p.keyword("SHOW", "NOTIFICATIONS")
	case p.isKeyword("CREATE"):
		return p.create()
	case p.isKeyword("DROP"):
		if err := p.keyword("DROP", "SYNC", "JOB"); err != nil {
			return nil, err
		}
		ifExists, err := p.optKeywords("IF", "EXISTS")
		if err != nil {
			return nil, err
		}
		name, err := p.name("job name")
		return &DropJob{IfExists: ifExists, Name: name}, err
	case p.isKeyword("REMOVE"):
		if err := p.keyword("REMOVE", "NODE"); err != nil {
			return nil, err
		}
		t := p.tok
		if t.kind != tString && t.kind != tQuotedIdent && t.kind != tIdent {
			return nil, p.errHere("expected a node id (as sluice.nodes.node_id shows it, quoted: 'node-…')")
		}
		return &RemoveNode{ID: t.text}, p.advance()
	case p.isKeyword("PAUSE"):
		if err := p.keyword("PAUSE", "SYNC", "JOB"); err != nil {
			return nil, err
		}
		name, err := p.name("job name")
		return &PauseJob{Name: name}, err
	case p.isKeyword("RESUME"):
		if err := p.keyword("RESUME", "SYNC", "JOB"); err != nil {
			return nil, err
		}
		name, err := p.name("job name")
		return &ResumeJob{Name: name}, err
	case p.isKeyword("ALTER"):
		if err := p.keyword("ALTER", "SYNC", "JOB"); err != nil {
			return nil, err
		}
		name, err := p.name("job name")
		if err != nil {
			return nil, err
		}
		if err := p.keyword("SET"); err != nil {
			return nil, err
		}
		opts, err := p.options()
		if err == nil && len(opts) == 0 {
			err = p.lx.errAt(p.tok.pos, "ALTER SYNC JOB … SET needs at least one option")
		}
		return &AlterJob{Name: name, Options: opts}, err
	case p.isKeyword("SHOW"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isKeyword("CREATE") {
			if err := p.keyword("CREATE", "SYNC", "JOB"); err != nil {
				return nil, err
			}
			name, err := p.name("job name")
			return &ShowCreateJob{Name: name}, err
		}
		if err := p.keyword("SYNC", "JOBS"); err != nil {
			return nil, err
		}
		s := &ShowJobs{}
		if p.isKeyword("LIKE") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tString {
				return nil, p.errHere("expected a quoted pattern after LIKE")
			}
			s.Like, s.HasLike = p.tok.text, true
			return s, p.advance()
		}
		return s, nil
	case p.isKeyword("CHECKSUM"):
		return p.checksum()
	case p.isKeyword("EXPLAIN"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isKeyword("CREATE") {
			c, err := p.create()
			if err != nil {
				return nil, err
			}
			return &ExplainCreate{Create: c}, nil
		}
		if err := p.keyword("SYNC", "JOB"); err != nil {
			return nil, err
		}
		name, err := p.name("job name")
		return &ExplainJob{Name: name}, err
	}
	return nil, p.errHere("expected CREATE, DROP, PAUSE, RESUME, ALTER, SHOW, EXPLAIN or CHECKSUM SYNC JOB")
}

// checksum parses CHECKSUM SYNC JOB name [TABLE db.t] [WHERE …]; the
// condition runs to the end of the statement.
func (p *parser) checksum() (*ChecksumJob, error) {
	if err := p.keyword("CHECKSUM", "SYNC", "JOB"); err != nil {
		return nil, err
	}
	name, err := p.name("job name")
	if err != nil {
		return nil, err
	}
	c := &ChecksumJob{Name: name}
	if p.isKeyword("TABLE") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if c.Database, err = p.name("database name (TABLE db.table)"); err != nil {
			return nil, err
		}
		if err := p.punct("."); err != nil {
			return nil, p.errHere("expected TABLE db.table")
		}
		if c.Table, err = p.name("table name"); err != nil {
			return nil, err
		}
	}
	if p.isKeyword("WHERE") {
		rest := strings.TrimSpace(p.lx.src[p.tok.pos+len("WHERE"):])
		rest = strings.TrimSpace(strings.TrimSuffix(rest, ";"))
		if rest == "" {
			return nil, p.errHere("WHERE needs a condition")
		}
		c.Where = rest
		p.lx.pos = len(p.lx.src)
		return c, p.advance()
	}
	return c, nil
}

func (p *parser) create() (*CreateJob, error) {
	if err := p.keyword("CREATE", "SYNC", "JOB"); err != nil {
		return nil, err
	}
	c := &CreateJob{}
	var err error
	if c.IfNotExists, err = p.optKeywords("IF", "NOT", "EXISTS"); err != nil {
		return nil, err
	}
	if c.Name, err = p.name("job name"); err != nil {
		return nil, err
	}
	if err := p.keyword("FROM"); err != nil {
		return nil, err
	}
	if c.Source, err = p.connector(); err != nil {
		return nil, err
	}
	for p.isKeyword("TRANSFORM") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		t, err := p.connector()
		if err != nil {
			return nil, err
		}
		c.Transforms = append(c.Transforms, t)
	}
	if err := p.keyword("TO"); err != nil {
		return nil, p.errHere("expected TRANSFORM or TO")
	}
	if c.Sink, err = p.connector(); err != nil {
		return nil, err
	}
	if p.isKeyword("WITH") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if c.With, err = p.options(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// IsDialect reports whether text starts a sync-job statement (and so must
// be handled by sluice, not the SQL engine). PAUSE and RESUME alone count:
// MySQL has no such statements, and our parser gives the better error.
func IsDialect(text string) bool {
	l := lexer{src: text}
	var words []string
	for len(words) < 3 {
		t, err := l.next()
		if err != nil || t.kind != tIdent {
			break
		}
		words = append(words, strings.ToUpper(t.text))
	}
	if len(words) == 0 {
		return false
	}
	switch words[0] {
	case "PAUSE", "RESUME":
		return true
	case "CHECKSUM":
		return len(words) > 1 && words[1] == "SYNC"
	case "REMOVE":
		return len(words) > 1 && words[1] == "NODE"
	case "CREATE", "DROP":
		return len(words) > 1 && (words[1] == "SYNC" || words[1] == "NOTIFICATION")
	case "ALTER":
		return len(words) > 1 && words[1] == "SYNC"
	case "SHOW", "EXPLAIN":
		return len(words) > 1 && (words[1] == "SYNC" || (words[0] == "SHOW" && words[1] == "NOTIFICATIONS") || (words[1] == "CREATE" && len(words) > 2 && words[2] == "SYNC"))
	}
	return false
}

// SplitFirst splits text after its first statement: the ';' that ends it
// (outside quotes and comments) belongs to first. rest is "" when nothing
// but blanks follows. An unterminated quote makes the whole text one
// statement, for the parser to report.
func SplitFirst(text string) (first, rest string) {
	l := lexer{src: text}
	for {
		t, err := l.next()
		if err != nil || t.kind == tEOF {
			return text, ""
		}
		if t.kind == tPunct && t.text == ";" {
			first, rest = text[:l.pos], text[l.pos:]
			if strings.TrimSpace(rest) == "" {
				rest = ""
			}
			return first, rest
		}
	}
}
