package mysqlcdc

// The binlog purge forecast (connectors.Spec.Retention): how long the
// server keeps the binlog a position needs.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"sluice/connectors"
)

// binlogFile is one line of SHOW BINARY LOGS.
type binlogFile struct {
	name string
	size int64
}

func retention(ctx context.Context, cfg connectors.Config, pos connectors.Position) (connectors.RetentionInfo, error) {
	var info connectors.RetentionInfo
	set, err := parseSettings(cfg)
	if err != nil {
		return info, err
	}
	info.Server = set.addr()
	db, err := openDB(set)
	if err != nil {
		return info, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	files, err := binaryLogs(ctx, db)
	if err != nil {
		return info, err
	}
	if len(files) == 0 {
		return info, fmt.Errorf("%w: the server keeps no binary logs", connectors.ErrPrecondition)
	}
	info.Oldest = files[0].name
	if info.Retention, err = binlogRetention(ctx, db); err != nil {
		return info, err
	}
	var version string
	_ = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version)
	maria := strings.Contains(strings.ToLower(version), "mariadb")
	if info.Head, err = binlogHead(ctx, db, maria); err != nil {
		return info, err
	}
	var p position
	if len(pos) > 0 {
		if err := json.Unmarshal(pos, &p); err != nil {
			return info, fmt.Errorf("position %q: %w", pos, err)
		}
	}
	if p.File == "" {
		return info, errors.New("the position names no binlog file (a GTID-only start that has not checkpointed yet)")
	}
	info.Position = fmt.Sprintf("%s:%d", p.File, p.Pos)
	at := -1
	for i, f := range files {
		if f.name == p.File {
			at = i
		}
	}
	if at < 0 {
		// Not listed: purged if older than the oldest file, else a file of
		// another server (a replaced source); both leave the job unable to
		// resume from it.
		info.Purged = true
		return info, nil
	}
	for i, f := range files {
		switch {
		case i < at:
			info.BytesToPurge += f.size
		case i == at:
			info.BytesBehind += max(0, f.size-int64(p.Pos))
		default:
			info.BytesBehind += f.size
		}
	}
	if info.Retention == 0 {
		return info, nil
	}
	if at == len(files)-1 {
		// The file in use is kept at least as long as the retention
		// after it is closed; it is not closed yet.
		info.PurgeAt = time.Now().Add(info.Retention).UTC()
		return info, nil
	}
	// A file's age, to the server, is the time of its last write: when
	// the next file was created, which that file's format description
	// event records.
	closed, err := fileCreated(ctx, set, maria, files[at+1].name)
	if err != nil {
		return info, err
	}
	info.PurgeAt = closed.Add(info.Retention).UTC()
	return info, nil
}

func binaryLogs(ctx context.Context, db *sql.DB) ([]binlogFile, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("SHOW BINARY LOGS (needs BINLOG MONITOR / REPLICATION CLIENT): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []binlogFile
	for rows.Next() {
		var f binlogFile
		vals := make([]any, len(cols))
		var skip sql.RawBytes
		for i := range vals {
			vals[i] = &skip
		}
		vals[0] = &f.name
		if len(cols) > 1 {
			vals[1] = &f.size
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// binlogRetention is the server's time-based binlog expiry (0: none).
func binlogRetention(ctx context.Context, db *sql.DB) (time.Duration, error) {
	var secs sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT @@binlog_expire_logs_seconds").Scan(&secs); err == nil && secs.Int64 > 0 {
		return time.Duration(secs.Int64) * time.Second, nil
	}
	var days sql.NullFloat64
	if err := db.QueryRowContext(ctx, "SELECT @@expire_logs_days").Scan(&days); err != nil {
		return 0, nil // neither variable: no time-based expiry this server knows of
	}
	return time.Duration(days.Float64 * float64(24*time.Hour)), nil
}

// created caches files' creation times: they never change.
var created = struct {
	sync.Mutex
	m map[string]time.Time
}{m: map[string]time.Time{}}

// fileCreated reads the creation time of a binlog file: the timestamp of
// its format description event, over a binlog dump of a server id of its
// own (one taken by a running job's reader would disconnect it).
func fileCreated(ctx context.Context, set settings, maria bool, name string) (time.Time, error) {
	key := set.addr() + "/" + name
	created.Lock()
	t, ok := created.m[key]
	created.Unlock()
	if ok {
		return t, nil
	}
	flavor := mysql.MySQLFlavor
	if maria {
		flavor = mysql.MariaDBFlavor
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 1<<31 + rand.Uint32N(1<<30), Flavor: flavor, Host: set.host, Port: uint16(set.port),
		User: set.user, Password: set.password, Charset: "utf8mb4", Logger: discardLogger, MaxReconnectAttempts: 1,
	})
	defer syncer.Close()
	stream, err := syncer.StartSync(mysql.Position{Name: name, Pos: 4})
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s's start: %w", name, err)
	}
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("read %s's start: %w", name, err)
		}
		if ev.Header.EventType == replication.FORMAT_DESCRIPTION_EVENT && ev.Header.Timestamp > 0 {
			t = time.Unix(int64(ev.Header.Timestamp), 0).UTC()
			break
		}
	}
	created.Lock()
	if len(created.m) > 10000 {
		clear(created.m)
	}
	created.m[key] = t
	created.Unlock()
	return t, nil
}
