package planner

import (
	"net/url"
	"strings"
)

// CreateNotification is CREATE NOTIFICATION name URL 'http://…'
// [FOR JOB job] [EVENTS ('KIND', …)]: events of sluice.events posted as
// JSON to the URL. No EVENTS: every kind.
type CreateNotification struct {
	Name, URL, Job string
	Events         []string // upper-cased kinds
	IfNotExists    bool
}

// DropNotification is DROP NOTIFICATION [IF EXISTS] name.
type DropNotification struct {
	Name     string
	IfExists bool
}

// ShowNotifications is SHOW NOTIFICATIONS.
type ShowNotifications struct{}

func (*CreateNotification) statement() {}
func (*DropNotification) statement()   {}
func (*ShowNotifications) statement()  {}

// peekKeyword says whether the token after the current one is kw.
func (p *parser) peekKeyword(kw string) bool {
	save := *p
	defer func() { *p = save }()
	return p.advance() == nil && p.isKeyword(kw)
}

func (p *parser) createNotification() (*CreateNotification, error) {
	if err := p.keyword("CREATE", "NOTIFICATION"); err != nil {
		return nil, err
	}
	c := &CreateNotification{}
	var err error
	if c.IfNotExists, err = p.optKeywords("IF", "NOT", "EXISTS"); err != nil {
		return nil, err
	}
	if c.Name, err = p.name("notification name"); err != nil {
		return nil, err
	}
	if err := p.keyword("URL"); err != nil {
		return nil, err
	}
	if p.tok.kind != tString {
		return nil, p.errHere("expected the URL, quoted: 'http://host:port/path'")
	}
	u, perr := url.Parse(p.tok.text)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, p.errHere("the URL must be http:// or https:// with a host")
	}
	c.URL = p.tok.text
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.isKeyword("FOR") {
		if err := p.keyword("FOR", "JOB"); err != nil {
			return nil, err
		}
		if c.Job, err = p.name("job name"); err != nil {
			return nil, err
		}
	}
	if p.isKeyword("EVENTS") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.punct("("); err != nil {
			return nil, err
		}
		for !p.isPunct(")") {
			if len(c.Events) > 0 {
				if err := p.punct(","); err != nil {
					return nil, p.errHere("expected ',' or ')'")
				}
			}
			if p.tok.kind != tString && p.tok.kind != tIdent {
				return nil, p.errHere("expected an event kind, as sluice.events.kind shows it ('FAILED', 'BINLOG_RISK', …)")
			}
			c.Events = append(c.Events, strings.ToUpper(p.tok.text))
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if len(c.Events) == 0 {
			return nil, p.errHere("EVENTS needs at least one kind")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (p *parser) dropNotification() (*DropNotification, error) {
	if err := p.keyword("DROP", "NOTIFICATION"); err != nil {
		return nil, err
	}
	ifExists, err := p.optKeywords("IF", "EXISTS")
	if err != nil {
		return nil, err
	}
	name, err := p.name("notification name")
	return &DropNotification{Name: name, IfExists: ifExists}, err
}
