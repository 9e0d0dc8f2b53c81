package sqlfront

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/sirupsen/logrus"

	"sluice/catalog"
	"sluice/connectors"
	"sluice/exec/verify"
	"sluice/planner"
)

// Version is what clients see as the server version. Connector/J and BI
// tools branch on the leading MySQL version, so it starts with one.
const Version = "8.0.33-sluice"

// Config configures the SQL front.
type Config struct {
	Addr         string       // host:port to listen on (ignored when Listener is set)
	Listener     net.Listener // optional, e.g. 127.0.0.1:0 in tests
	NodeID       string
	RootPassword string // "" is allowed only when every listener is on loopback (checked by cmd)
	UsersFile    string // a single-node users file to move into the catalog once ("" for none)
	Catalog      *catalog.Catalog
	Planner      *planner.Planner
	// Verify runs CHECKSUM SYNC JOB (nil: the statement is refused).
	Verify       func(ctx context.Context, req verify.Request) ([]verify.TableResult, error)
	Registry     *connectors.Registry
	Runtime      Runtime
	Cluster      Cluster
	Liveness     Liveness      // optional: heartbeat records for sluice.nodes
	Members      Members       // REMOVE NODE (nil: refused)
	Reads        Reads         // linearizable reads (nil: local reads only)
	ApplyTimeout time.Duration // bound on each catalog write of a statement
	// TLS, when set, is offered to clients, and a client that does not
	// ask for it is refused.
	TLS *tls.Config
}

// Server is the MySQL-protocol front of one node.
type Server struct {
	cfg    Config
	engine *sqle.Engine
	srv    *server.Server
	sm     *server.SessionManager
	done   chan struct{}

	users     *usersSync
	usersMu   sync.Mutex    // one reload at a time
	usersKick chan struct{} // asks the sync loop for a reload
	stop      context.CancelFunc
}

// provider serves exactly the sluice database; CREATE DATABASE is refused.
type provider struct{ db sql.Database }

func (p provider) Database(_ *sql.Context, name string) (sql.Database, error) {
	if strings.EqualFold(name, p.db.Name()) {
		return p.db, nil
	}
	return nil, sql.ErrDatabaseNotFound.New(name)
}

func (p provider) HasDatabase(_ *sql.Context, name string) bool {
	return strings.EqualFold(name, p.db.Name())
}

func (p provider) AllDatabases(*sql.Context) []sql.Database { return []sql.Database{p.db} }

var (
	globalsOnce sync.Once
	engineMu    sync.Mutex // see New
)

// New builds the server; Start serves it.
func New(cfg Config) (*Server, error) {
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, done: make(chan struct{}), usersKick: make(chan struct{}, 1)}
	globalsOnce.Do(func() {
		// GMS logs every connection, and a secure_file_priv warning that does
		// not apply (no file functions are reachable), through the global logrus.
		logrus.SetLevel(logrus.ErrorLevel)
		// System variables are process-global in GMS.
		_ = sql.SystemVariables.AssignValues(map[string]interface{}{"version": Version, "version_comment": "sluice"}) // connectors refuse a server that answers this (mysqlconn.SluiceVersionComment)
		sql.SystemVariables.AddSystemVariables([]sql.SystemVariable{&sql.MysqlSystemVariable{
			Name: ReadConsistencyVar, Scope: sql.GetMysqlScope(sql.SystemVariableScope_Both), Dynamic: true,
			Type: types.NewSystemEnumType(ReadConsistencyVar, "local", "linearizable"), Default: "local"}})
	})
	// GMS initialises process-global status variables in every new
	// engine: two nodes of one process (tests, benchmarks) must not build
	// theirs at once.
	engineMu.Lock()
	s.engine = sqle.NewDefault(provider{db: newSysDB(s.systemTables()...)})
	engineMu.Unlock()
	if err := s.setupUsers(); err != nil {
		return nil, err
	}
	var ic server.InterceptorChain
	ic.WithInterceptor(&interceptor{s: s})
	capture := func(e *sqle.Engine, sm *server.SessionManager, h mysql.Handler) (*sqle.Engine, *server.SessionManager, mysql.Handler) {
		s.sm = sm
		return e, sm, h
	}
	scfg := server.Config{Protocol: "tcp", Address: cfg.Addr, Listener: cfg.Listener, Version: Version,
		TLSConfig: cfg.TLS, RequireSecureTransport: cfg.TLS != nil,
		Options: []server.Option{capture, ic.Option()},
		ProtocolListenerFactory: func(c server.Config, lc mysql.ListenerConfig, sel server.ServerEventListener) (server.ProtocolListener, error) {
			lc.AuthServer = uniformAuth{lc.AuthServer}
			return server.MySQLProtocolListenerFactory(c, lc, sel)
		}}
	sb := func(ctx context.Context, c *mysql.Conn, addr string) (sql.Session, error) {
		host, user := "", ""
		if u, ok := c.UserData.(sql.MysqlConnectionUser); ok {
			host, user = u.Host, u.User
		}
		return sql.NewBaseSessionWithClientServer(addr, sql.Client{Address: host, User: user, Capabilities: c.Capabilities}, c.ConnectionID), nil
	}
	srv, err := server.NewServer(scfg, s.engine, sql.NewContext, sb, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlfront: listen on %s: %w", cfg.Addr, err)
	}
	s.srv = srv
	return s, nil
}

// uniformAuth answers a user that does not exist exactly like a wrong
// password: 1045 Access denied. (Left alone, the wire library finds no
// auth method for an unknown user and ends the handshake with a packet
// clients report as "malformed", which also tells who is a user.) Every
// user sluice creates uses mysql_native_password, so that method takes
// every user name; its hash check refuses the unknown ones.
type uniformAuth struct{ mysql.AuthServer }

func (a uniformAuth) AuthMethods() []mysql.AuthMethod {
	ms := a.AuthServer.AuthMethods()
	out := make([]mysql.AuthMethod, len(ms))
	for i, m := range ms {
		out[i] = m
		if m.Name() == mysql.MysqlNativePassword {
			out[i] = anyUser{m}
		}
	}
	return out
}

type anyUser struct{ mysql.AuthMethod }

func (anyUser) HandleUser(*mysql.Conn, string) bool { return true }

// Start serves connections in the background.
func (s *Server) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if s.cfg.Catalog != nil {
		go s.syncUsers(ctx)
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Start()
	}()
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.srv.Listener.Addr() }

// Close stops accepting and closes the listener.
func (s *Server) Close() error {
	if s.stop != nil {
		s.stop()
	}
	err := s.srv.Close()
	<-s.done
	return err
}
