package mysqlcdc

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"sluice/connectors"
	"sluice/connectors/mysqlconn"
)

// Spec declares the mysql_cdc source.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:        "mysql_cdc",
		Kind:        connectors.KindSource,
		Description: "MySQL 8 / MariaDB 10.11 binlog CDC: chunked lock-free snapshot, then the binlog (GTID or file:pos)",
		Options:     Options,
		// One binlog stream per job: see DESIGN.md.
		MaxParallelism: 1,
		NewSource: func(cfg connectors.Config, env connectors.Env) (connectors.Source, error) {
			set, err := parseSettings(cfg)
			if err != nil {
				return nil, err
			}
			if env.Parallelism > 1 { // refused at CREATE too (MaxParallelism)
				return nil, fmt.Errorf("%w: mysql_cdc reads one binlog stream per job, so the job's parallelism must be 1 (it is %d)",
					connectors.ErrPrecondition, env.Parallelism)
			}
			if set.serverID == 0 {
				set.serverID = allocatedServerID(env.JobID)
			}
			log := env.Logger
			if log == nil {
				log = discardLogger
			}
			return &Source{set: set, env: env, log: log, batchRows: maxBatchRows, mon: newMonitor(set.chunkSize)}, nil
		},
		Retention: retention,
		SourceSQL: func(cfg connectors.Config) (connectors.SQLTarget, error) {
			set, err := parseSettings(cfg)
			return connectors.SQLTarget{Addr: set.addr(), User: set.user, Password: set.password,
				Table: func(id connectors.TableID) connectors.TableID { return id }}, err
		},
		Check: func(ctx context.Context, cfg connectors.Config) error {
			set, err := parseSettings(cfg)
			if err != nil {
				return err
			}
			db, err := openDB(set)
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = preflight(ctx, db, set)
			return err
		},
		Tables: func(ctx context.Context, cfg connectors.Config) ([]connectors.TableInfo, error) {
			set, err := parseSettings(cfg)
			if err != nil {
				return nil, err
			}
			db, err := openDB(set)
			if err != nil {
				return nil, err
			}
			defer db.Close()
			info, err := preflight(ctx, db, set)
			if err != nil {
				return nil, err
			}
			tables, err := loadTables(ctx, db, info.tables, nil)
			if err != nil {
				return nil, err
			}
			var out []connectors.TableInfo
			for _, id := range info.tables {
				t := tables[id.Database+"."+id.Table]
				ti := connectors.TableInfo{ID: id}
				if t.HasPK {
					for _, k := range t.PK {
						ti.Key = append(ti.Key, t.Cols[k].Name)
					}
				}
				out = append(out, ti)
			}
			return out, nil
		},
	}
}

// Options of mysql_cdc.
var Options = connectors.OptionSet{
	{Name: "host", Type: connectors.TypeString, Required: true, Description: "source server host"},
	{Name: "port", Type: connectors.TypeInt, Default: "3306", Min: connectors.Int64(1), Max: connectors.Int64(65535), Description: "source server port"},
	{Name: "user", Type: connectors.TypeString, Required: true, Description: "needs REPLICATION SLAVE, BINLOG MONITOR (MySQL: REPLICATION CLIENT) and SELECT"},
	{Name: "password", Type: connectors.TypeString, Secret: true, Description: "password of user"},
	{Name: "tables", Type: connectors.TypeList, Required: true, Description: "comma list of db.table; each is a regular expression matched against the whole name"},
	{Name: "tables.exclude", Type: connectors.TypeList, Description: "comma list of db.table regular expressions to leave out"},
	{Name: "server_id", Type: connectors.TypeInt, Min: connectors.Int64(1), Max: connectors.Int64(999_999_999), Unique: true,
		Description: "replica server id, unique among the source's replicas; allocated from the job id when absent"},
	{Name: "startup.mode", Type: connectors.TypeEnum, Default: "initial", Enum: []string{"initial", "latest", "earliest", "timestamp", "specific"},
		Description: "initial: snapshot, then binlog; latest: binlog from now; earliest: the oldest binlog; timestamp: changes from startup.timestamp; specific: startup.gtid or startup.file + startup.pos"},
	{Name: "startup.timestamp", Type: connectors.TypeString, Description: "RFC 3339 time or Unix milliseconds, for startup.mode = timestamp"},
	{Name: "startup.gtid", Type: connectors.TypeString, Description: "GTID set to start after, for startup.mode = specific"},
	{Name: "startup.file", Type: connectors.TypeString, Description: "binlog file, for startup.mode = specific"},
	{Name: "startup.pos", Type: connectors.TypeInt, Min: connectors.Int64(4), Description: "binlog position, for startup.mode = specific"},
	{Name: "snapshot.chunk.size", Type: connectors.TypeInt, Default: "8192", Min: connectors.Int64(1), Max: connectors.Int64(1_000_000), Description: "rows per snapshot chunk (one checkpointable unit)"},
	{Name: "snapshot.parallelism", Type: connectors.TypeInt, Default: "0", Min: connectors.Int64(0), Max: connectors.Int64(16),
		Description: "snapshot chunks read ahead of the one being merged, over a connection of their own (1: none, one chunk at a time; 0: the number of cores, between 2 and 4)"},
	{Name: "snapshot.chunk.key", Type: connectors.TypeList, Description: "column(s) to chunk by for tables without a primary key; must be unique and not null"},
	{Name: "heartbeat.interval", Type: connectors.TypeDuration, Default: "5s", MinDuration: 100 * time.Millisecond, Description: "how often an idle source sends a heartbeat"},
}

// settings are the parsed options.
type settings struct {
	host, user, password string
	port                 int
	include, exclude     []*regexp.Regexp
	serverID             uint32
	mode                 string
	timestamp            time.Time
	gtid, file           string
	pos                  int64
	chunkSize            int
	parallelism          int // snapshot chunk reads in flight (prefetch.go)
	chunkKey             []string
	heartbeat            time.Duration
}

func (s settings) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

func (s settings) matches(id connectors.TableID) bool {
	name := id.Database + "." + id.Table
	ok := false
	for _, re := range s.include {
		if re.MatchString(name) {
			ok = true
			break
		}
	}
	for _, re := range s.exclude {
		if re.MatchString(name) {
			return false
		}
	}
	return ok
}

func badOption(name, detail string) error {
	return &connectors.OptionError{Owner: "mysql_cdc", Option: name, Err: connectors.ErrBadOptionValue, Detail: detail}
}

func parseSettings(cfg connectors.Config) (settings, error) {
	s := settings{host: cfg.String("host"), user: cfg.String("user"), password: cfg.String("password"),
		port: int(cfg.Int("port")), serverID: uint32(cfg.Int("server_id")), mode: cfg.String("startup.mode"),
		gtid: cfg.String("startup.gtid"), file: cfg.String("startup.file"), pos: cfg.Int("startup.pos"),
		chunkSize: int(cfg.Int("snapshot.chunk.size")), chunkKey: cfg.List("snapshot.chunk.key"), heartbeat: cfg.Duration("heartbeat.interval"),
		parallelism: int(cfg.Int("snapshot.parallelism"))}
	if s.parallelism == 0 {
		// Even on one core a read ahead overlaps the server's sending with
		// the conversion here; each chunk read ahead holds up to
		// snapshot.chunk.size rows in memory, so the default stops at four.
		s.parallelism = min(max(runtime.NumCPU(), 2), 4)
	}
	compile := func(opt string) ([]*regexp.Regexp, error) {
		var out []*regexp.Regexp
		for _, p := range cfg.List(opt) {
			re, err := regexp.Compile("^(?:" + p + ")$")
			if err != nil {
				return nil, badOption(opt, fmt.Sprintf("%q is not a regular expression: %v", p, err))
			}
			out = append(out, re)
		}
		return out, nil
	}
	var err error
	if s.include, err = compile("tables"); err != nil {
		return s, err
	}
	if s.exclude, err = compile("tables.exclude"); err != nil {
		return s, err
	}
	switch s.mode {
	case "timestamp":
		v := cfg.String("startup.timestamp")
		if v == "" {
			return s, badOption("startup.timestamp", "startup.mode = timestamp needs startup.timestamp (RFC 3339, e.g. 2026-01-02T15:04:05Z, or Unix milliseconds)")
		}
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.timestamp = time.UnixMilli(ms)
		} else if s.timestamp, err = time.Parse(time.RFC3339, v); err != nil {
			return s, badOption("startup.timestamp", fmt.Sprintf("%q is neither RFC 3339 nor Unix milliseconds", v))
		}
	case "specific":
		if s.gtid == "" && (s.file == "" || s.pos == 0) {
			return s, badOption("startup.mode", "startup.mode = specific needs startup.gtid, or startup.file and startup.pos")
		}
	}
	return s, nil
}

// allocatedServerID derives a replica id from the job id: unique per job,
// and above the range users may set (server_id ≤ 999999999).
func allocatedServerID(jobID uint64) uint32 {
	return 1_000_000_000 + uint32(jobID%3_000_000_000)
}

func openDB(s settings) (*sql.DB, error) {
	return mysqlconn.Open(mysqlconn.Config{Addr: s.addr(), User: s.user, Password: s.password,
		Params: map[string]string{"time_zone": "'+00:00'", "charset": "utf8mb4"}, ReadTimeout: 10 * time.Minute,
		MaxOpen: 4, // the read-ahead's connection, a chunk read in the foreground, the reader's own queries
		// The text protocol: a snapshot row arrives as the text the Arrow
		// builders parse, with no binary → text round trip in database/sql.
		InterpolateParams: true})
}

// serverInfo is what preflight learned.
type serverInfo struct {
	maria   bool
	version string
	tables  []connectors.TableID
}

// preflight checks everything a job needs from the source and answers
// with what to fix.
func preflight(ctx context.Context, db *sql.DB, s settings) (serverInfo, error) {
	var info serverInfo
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := mysqlconn.Ping(ctx, db, s.addr(), s.user); err != nil {
		return info, err
	}
	var logBin int
	var format, image string
	if err := db.QueryRowContext(ctx, "SELECT @@version, @@log_bin, @@binlog_format, @@binlog_row_image").Scan(&info.version, &logBin, &format, &image); err != nil {
		return info, fmt.Errorf("read server settings: %w", err)
	}
	info.maria = strings.Contains(strings.ToLower(info.version), "mariadb")
	switch {
	case logBin == 0:
		return info, fmt.Errorf("%w: binary logging is off on %s: start the server with log_bin (and binlog_format=ROW, binlog_row_image=FULL)", connectors.ErrPrecondition, s.addr())
	case !strings.EqualFold(format, "ROW"):
		return info, fmt.Errorf("%w: binlog_format is %s on %s; CDC needs ROW: SET GLOBAL binlog_format='ROW' and set it in the server configuration", connectors.ErrPrecondition, format, s.addr())
	case !strings.EqualFold(image, "FULL"):
		return info, fmt.Errorf("%w: binlog_row_image is %s on %s; CDC needs FULL: SET GLOBAL binlog_row_image='FULL' and set it in the server configuration", connectors.ErrPrecondition, image, s.addr())
	}
	grants, err := showGrants(ctx, db)
	if err != nil {
		return info, err
	}
	if !hasPriv(grants, "REPLICATION SLAVE", "REPLICATION REPLICA") {
		return info, fmt.Errorf("%w: user %q lacks REPLICATION SLAVE on %s: GRANT REPLICATION SLAVE, %s, SELECT ON *.* TO ...", connectors.ErrPrecondition, s.user, s.addr(), monitorPriv(info.maria))
	}
	if !hasPriv(grants, "BINLOG MONITOR", "REPLICATION CLIENT", "SUPER") {
		return info, fmt.Errorf("%w: user %q lacks %s on %s: GRANT %s ON *.* TO ...", connectors.ErrPrecondition, s.user, monitorPriv(info.maria), s.addr(), monitorPriv(info.maria))
	}
	// Names only: asking for TABLE_TYPE makes the server open every
	// table's definition (0.6 s over 10,000 tables, against 0.04 s), so
	// the type is asked of the matching tables only (baseTables).
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys') ORDER BY 1, 2`)
	if err != nil {
		return info, err
	}
	var seen []string
	var matched []connectors.TableID
	for rows.Next() {
		var id connectors.TableID
		if err := rows.Scan(&id.Database, &id.Table); err != nil {
			rows.Close()
			return info, err
		}
		seen = append(seen, id.String())
		if s.matches(id) {
			matched = append(matched, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return info, err
	}
	if info.tables, err = baseTables(ctx, db, matched); err != nil {
		return info, err
	}
	if len(info.tables) == 0 {
		if len(seen) > 8 {
			seen = append(seen[:8], "…")
		}
		return info, fmt.Errorf("%w: no table on %s matches tables=%s (tables the user can see: %s); name them as db.table",
			connectors.ErrPrecondition, s.addr(), joinPatterns(s.include), strings.Join(seen, ", "))
	}
	if s.mode == "initial" {
		tables, err := loadTables(ctx, db, info.tables, s.chunkKey)
		if err != nil {
			return info, err
		}
		for _, id := range info.tables {
			if t := tables[id.Database+"."+id.Table]; len(t.PK) == 0 {
				return info, fmt.Errorf("%w: table %s has no primary key, so it cannot be snapshotted in chunks: add one, "+
					"or name a unique, non-null column with snapshot.chunk.key", connectors.ErrPrecondition, id)
			}
		}
	}
	return info, nil
}

func monitorPriv(maria bool) string {
	if maria {
		return "BINLOG MONITOR"
	}
	return "REPLICATION CLIENT"
}

func joinPatterns(res []*regexp.Regexp) string {
	var out []string
	for _, re := range res {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$"))
	}
	return strings.Join(out, ",")
}

func showGrants(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return "", fmt.Errorf("SHOW GRANTS: %w", err)
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return "", err
		}
		all = append(all, strings.ToUpper(g))
	}
	return strings.Join(all, "\n"), rows.Err()
}

func hasPriv(grants string, names ...string) bool {
	for _, line := range strings.Split(grants, "\n") {
		if !strings.Contains(line, " ON *.* ") {
			continue
		}
		if strings.Contains(line, "ALL PRIVILEGES") {
			return true
		}
		for _, n := range names {
			if strings.Contains(line, n) {
				return true
			}
		}
	}
	return false
}
