package mysqlconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"sluice/connectors"
)

// Config says where and how to connect.
type Config struct {
	Addr, User, Password string
	Params               map[string]string // session variables, e.g. time_zone
	ReadTimeout          time.Duration     // 0: none
	MaxOpen              int               // 0: unlimited
	InterpolateParams    bool              // text protocol only (servers without prepared statements)
}

// Open returns a pool; it does not connect yet (see Ping).
func Open(c Config) (*sql.DB, error) {
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = c.User, c.Password, "tcp", c.Addr
	cfg.Params = c.Params
	cfg.Timeout, cfg.ReadTimeout = 10*time.Second, c.ReadTimeout
	cfg.AllowNativePasswords, cfg.InterpolateParams = true, c.InterpolateParams
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(c.MaxOpen)
	// Pooled connections unused for a minute close: a hundred idle jobs
	// on one server hold their binlog streams and the one connection
	// their periodic queries use, not a pool each.
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// Ping connects and answers a failure with what to fix, wrapping
// connectors.ErrUnreachable.
//
// A sluice server's own SQL port answers like MySQL but stores nothing:
// a connector pointed at it (a typo of port 9306 for 3306, or another
// node of the cluster) is refused with connectors.ErrPrecondition.
func Ping(ctx context.Context, db *sql.DB, addr, user string) error {
	err := db.PingContext(ctx)
	if err == nil {
		return refuseSluice(ctx, db, addr)
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) && me.Number == 1045 {
		return fmt.Errorf("%w: %s refused user %q: wrong user or password (%s)", connectors.ErrUnreachable, addr, user, me.Message)
	}
	return fmt.Errorf("%w: cannot reach %s: %v; check host and port, and that the server accepts TCP connections from sluice", connectors.ErrUnreachable, addr, err)
}

// SluiceVersionComment is what a sluice server answers for
// @@version_comment (sqlfront sets it).
const SluiceVersionComment = "sluice"

func refuseSluice(ctx context.Context, db *sql.DB, addr string) error {
	var comment string
	if err := db.QueryRowContext(ctx, "SELECT @@version_comment").Scan(&comment); err != nil {
		return nil // not every MySQL-protocol server has it (StarRocks does); nothing to refuse
	}
	if comment == SluiceVersionComment {
		return fmt.Errorf("%w: %s is the SQL port of a sluice server, not a MySQL or MariaDB database; point the connector at the database server's own port",
			connectors.ErrPrecondition, addr)
	}
	return nil
}
