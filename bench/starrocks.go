package main

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors"
	"sluice/connectors/mysqlcdc"
	"sluice/connectors/starrocks"
	"sluice/internal/mariadbtest"
)

// starrocksBench runs binlog → Arrow → StarRocks Stream Load (the
// emulator, with a 50 ms commit like a real FE's publish) at a steady
// 10k rows/s written by the database itself (a stored procedure, so the
// load generator costs this process nothing), flushing every second as a
// 1 s checkpoint interval would. It reports rows per CPU-second of this
// process and the latency from the source commit to visibility in the
// target, p50 and p99.
func starrocksBench(seconds int) ([]Figure, error) {
	srv, db, dir, stop, err := startMariaDB()
	if err != nil {
		return nil, err
	}
	defer stop()
	if _, err := db.Exec(`CREATE DATABASE b; CREATE TABLE b.e (id BIGINT PRIMARY KEY, customer INT, amount DECIMAL(12,2), note VARCHAR(40), created DATETIME(6));
		CREATE PROCEDURE b.gen(n INT) BEGIN
		  DECLARE i INT DEFAULT 0;
		  WHILE i < n DO
		    INSERT INTO b.e SELECT i * 100 + seq, seq % 997, seq / 3, CONCAT('note-', seq), NOW(6) FROM b.seq_1_to_100;
		    SET i = i + 1;
		    DO SLEEP(0.01);
		  END WHILE;
		END`); err != nil {
		return nil, err
	}
	// The emulator runs as its own process, so this process's CPU time is
	// the engine's alone (source, sink, HTTP client).
	emuBin := filepath.Join(dir, "starrocks-emulator")
	if out, err := exec.Command("go", "build", "-o", emuBin, "./cmd/starrocks-emulator").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the emulator: %v\n%s", err, out)
	}
	fe, err := freeAddr()
	if err != nil {
		return nil, err
	}
	qa, err := freeAddr()
	if err != nil {
		return nil, err
	}
	emuCmd := exec.Command(emuBin, "--fe", fe, "--query", qa, "--user", "root", "--commit-latency", "50ms", "--track-visibility")
	if err := emuCmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = emuCmd.Process.Kill(); _ = emuCmd.Wait() }()
	q, err := sql.Open("mysql", "root@tcp("+qa+")/?interpolateParams=true")
	if err != nil {
		return nil, err
	}
	defer q.Close()
	for i := 0; ; i++ {
		if _, err = q.Exec("CREATE TABLE IF NOT EXISTS `b`.`e` (`id` BIGINT NOT NULL) PRIMARY KEY (`id`) DISTRIBUTED BY HASH (`id`)"); err == nil {
			break
		}
		if i == 100 {
			return nil, fmt.Errorf("emulator query port: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	srcCfg, err := mysqlcdc.Options.Validate("mysql_cdc", map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port),
		"user": mariadbtest.ReplUser, "password": mariadbtest.ReplPass, "tables": `b\.e`, "startup.mode": "latest", "server_id": "9003"})
	if err != nil {
		return nil, err
	}
	env := connectors.Env{Job: "bench", JobID: 2, Attempt: 1, Alloc: memory.NewGoAllocator()}
	src, err := mysqlcdc.Spec().NewSource(srcCfg, env)
	if err != nil {
		return nil, err
	}
	sinkCfg, err := starrocks.Options.Validate("starrocks", map[string]string{"fe": fe, "user": "root", "save_mode": "ignore", "batch.interval": "1s"})
	if err != nil {
		return nil, err
	}
	sink, err := starrocks.Spec().NewSink(sinkCfg, env)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := src.Open(ctx, nil); err != nil {
		return nil, err
	}
	defer src.Close()
	if err := sink.Open(ctx); err != nil {
		return nil, err
	}
	defer sink.Close()

	want := seconds * 100 * 100 // 100 statements of 100 rows per second
	genDone := make(chan error, 1)
	go func() { _, err := db.Exec("CALL b.gen(?)", seconds*100); genDone <- err }()
	c0, w0 := cpuTime(), time.Now()
	rows, lastFlush := 0, time.Now()
	for rows < want {
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		b, err := src.Read(rctx)
		cancel()
		if err == nil {
			rows += int(b.Rows())
			err = sink.Write(ctx, b)
			b.Release()
			if err != nil {
				return nil, err
			}
		} else if rctx.Err() == nil {
			return nil, err
		}
		if time.Since(lastFlush) >= time.Second { // a 1 s checkpoint's flush
			if err := sink.Flush(ctx); err != nil {
				return nil, err
			}
			lastFlush = time.Now()
		}
		if time.Since(w0) > time.Duration(seconds+60)*time.Second {
			return nil, fmt.Errorf("only %d of %d rows after %s", rows, want, time.Since(w0))
		}
	}
	if err := sink.(connectors.Drainer).Drain(ctx); err != nil {
		return nil, err
	}
	cpu, wall := cpuTime()-c0, time.Since(w0)
	if err := <-genDone; err != nil {
		return nil, err
	}
	var lat []time.Duration
	res, err := q.Query("SELECT * FROM b.e")
	if err != nil {
		return nil, err
	}
	cols, _ := res.Columns()
	ci, vi := -1, -1
	for i, c := range cols {
		switch c {
		case "created":
			ci = i
		case "__visible_at":
			vi = i
		}
	}
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return nil, err
		}
		created, err1 := time.ParseInLocation("2006-01-02 15:04:05.999999", vals[ci].String, time.Local)
		visible, err2 := time.Parse("2006-01-02 15:04:05.999999", vals[vi].String)
		if err1 == nil && err2 == nil {
			lat = append(lat, visible.Sub(created))
		}
	}
	res.Close()
	if len(lat) != want {
		return nil, fmt.Errorf("%d rows visible, want %d", len(lat), want)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return lat[int(q*float64(len(lat)-1))].Seconds() }
	secs := make([]float64, len(lat))
	for i, l := range lat {
		secs[i] = l.Seconds()
	}
	if err := histogramPNG(filepath.Join(outDir, "latency_distribution.png"),
		fmt.Sprintf("source commit → visible in StarRocks, %d rows at ~10k rows/s (p50 %.2f s, p99 %.2f s)", len(lat), p(0.5), p(0.99)),
		"latency (s)", secs); err != nil {
		return nil, err
	}
	full, err := starrocksFullSpeed(srv, db, q, fe)
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d rows in %.1f s at ~10k rows/s, at-least-once, flush every 1 s, emulator (its own process) commit 50 ms", want, wall.Seconds())
	return append([]Figure{
		{Name: "at 10k rows/s, binlog → Arrow → StarRocks Stream Load, rows per CPU-second", Value: float64(want) / cpu.Seconds(), Unit: "rows/CPU-s",
			Note: note + "; CPU of this process only (source, sink, HTTP client) at a tenth of full speed, so idle polling and timers count too: " +
				"the throughput floor of quality.md applies to the full-speed figures below"},
		{Name: "latency source commit → visible, p50", Value: p(0.50), Unit: "s", Note: note},
		{Name: "latency source commit → visible, p99", Value: p(0.99), Unit: "s", Floor: 2.5, Goal: 1.2, Max: true, Note: "floor and goal are upper bounds (quality.md)"},
	}, full...), nil
}

// starrocksFullSpeed pushes a binlog that is already written (300k rows in
// 30 transactions) through binlog → Arrow → Stream Load as fast as it
// goes, JSON and CSV, and the same binlog through the source alone
// (binlog → Arrow) as the baseline, all in this run. CPU is this process's:
// the emulator is another process.
func starrocksFullSpeed(srv *mariadbtest.Server, db, q *sql.DB, fe string) ([]Figure, error) {
	const rows = 300_000
	if _, err := db.Exec("CREATE TABLE b.f (id BIGINT PRIMARY KEY, customer INT, amount DECIMAL(12,2), note VARCHAR(40), created DATETIME(6))"); err != nil {
		return nil, err
	}
	if _, err := q.Exec("CREATE TABLE IF NOT EXISTS `b`.`f` (`id` BIGINT NOT NULL) PRIMARY KEY (`id`) DISTRIBUTED BY HASH (`id`)"); err != nil {
		return nil, err
	}
	var file string
	var pos uint32
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, new(any), new(any)); err != nil {
		return nil, err
	}
	for i := 0; i < rows/10_000; i++ {
		if _, err := db.Exec(`INSERT INTO b.f SELECT ? * 10000 + seq, seq % 997, seq / 3, CONCAT('note-', seq), NOW(6) FROM b.seq_1_to_10000`, i); err != nil {
			return nil, err
		}
	}
	attempt := 0
	run := func(sinkOpts map[string]string) (time.Duration, error) {
		attempt++ // labels differ per run
		srcCfg, err := mysqlcdc.Options.Validate("mysql_cdc", map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(srv.Port),
			"user": mariadbtest.ReplUser, "password": mariadbtest.ReplPass, "tables": `b\.f`, "startup.mode": "specific",
			"startup.file": file, "startup.pos": fmt.Sprint(pos), "server_id": "9004"})
		if err != nil {
			return 0, err
		}
		env := connectors.Env{Job: "bench", JobID: 3, Attempt: attempt, Alloc: memory.NewGoAllocator()}
		src, err := mysqlcdc.Spec().NewSource(srcCfg, env)
		if err != nil {
			return 0, err
		}
		defer src.Close()
		var sink connectors.Sink
		if sinkOpts != nil {
			cfg, err := starrocks.Options.Validate("starrocks", sinkOpts)
			if err != nil {
				return 0, err
			}
			if sink, err = starrocks.Spec().NewSink(cfg, env); err != nil {
				return 0, err
			}
			defer sink.Close()
		}
		ctx := context.Background()
		c0 := cpuTime()
		if err := src.Open(ctx, nil); err != nil {
			return 0, err
		}
		if sink != nil {
			if err := sink.Open(ctx); err != nil {
				return 0, err
			}
		}
		for n := 0; n < rows; {
			b, err := src.Read(ctx)
			if err != nil {
				return 0, err
			}
			n += int(b.Rows())
			if sink != nil {
				err = sink.Write(ctx, b)
			}
			b.Release()
			if err != nil {
				return 0, err
			}
		}
		if sink != nil {
			if err := sink.(connectors.Drainer).Drain(ctx); err != nil {
				return 0, err
			}
		}
		return cpuTime() - c0, nil
	}
	base, err := run(nil)
	if err != nil {
		return nil, err
	}
	opts := func(format string) map[string]string {
		return map[string]string{"fe": fe, "user": "root", "save_mode": "ignore", "batch.interval": "1h",
			"batch.max_rows": "100000", "format": format}
	}
	jsonCPU, err := run(opts("json"))
	if err != nil {
		return nil, err
	}
	csvCPU, err := run(opts("csv"))
	if err != nil {
		return nil, err
	}
	var n int
	if err := q.QueryRow("SELECT COUNT(*) FROM b.f").Scan(&n); err != nil || n != rows {
		return nil, fmt.Errorf("emulator holds %d rows of b.f, want %d (%v)", n, rows, err)
	}
	note := fmt.Sprintf("%d rows already in the binlog (30 transactions), read as fast as they go; loads of 100k rows into the emulator (its own process); CPU of this process", rows)
	perCPU := func(d time.Duration) float64 { return rows / d.Seconds() }
	return []Figure{
		{Name: "full speed, binlog → Arrow → Stream Load JSON, rows per CPU-second", Value: perCPU(jsonCPU), Unit: "rows/CPU-s", Floor: 250_000, Goal: 500_000, Note: note},
		{Name: "full speed, binlog → Arrow → Stream Load CSV, rows per CPU-second", Value: perCPU(csvCPU), Unit: "rows/CPU-s", Floor: 250_000, Goal: 500_000, Note: note},
		{Name: "baseline: the source alone (binlog → Arrow), rows per CPU-second", Value: perCPU(base), Unit: "rows/CPU-s", Note: note},
		{Name: "JSON end to end vs the source alone (CPU ratio)", Value: base.Seconds() / jsonCPU.Seconds(), Unit: "x", Note: "1.0 would mean the sink costs nothing"},
		{Name: "CSV end to end vs the source alone (CPU ratio)", Value: base.Seconds() / csvCPU.Seconds(), Unit: "x", Note: "1.0 would mean the sink costs nothing"},
	}, nil
}
