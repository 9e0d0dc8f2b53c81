package main

import (
	"database/sql"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sluice/internal/mariadbtest"
	"sluice/internal/sremu"
)

// manyTables measures a node with n small tables in one MariaDB schema,
// mostly idle with a trickle of writes, into the StarRocks emulator: once
// captured by one job, once by jobs of perJob tables each. The node is
// the real binary (its RSS and CPU from /proc); the baseline is the same
// node with no job.
func manyTables(bin string, n, perJob int, idle time.Duration) ([]Figure, error) {
	srv, db, dir, stop, err := startMariaDB()
	if err != nil {
		return nil, err
	}
	defer stop()
	// A hundred jobs are a hundred binlog readers, each with a connection
	// or two besides: more than the test server's 200.
	if _, err := db.Exec("SET GLOBAL max_connections = 1000"); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := createTables(db, n); err != nil {
		return nil, err
	}
	fmt.Printf("tables: %d created in %s\n", n, time.Since(start).Round(time.Second))
	emu, err := sremu.Start("root", "")
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	qa, err := emu.ServeQueries()
	if err != nil {
		return nil, err
	}
	_, qport, _ := strings.Cut(qa, ":")

	var figs []Figure
	for _, layout := range []struct {
		name string
		jobs int
	}{{"one job", 1}, {fmt.Sprintf("%d jobs of %d tables", n/perJob, perJob), n / perJob}} {
		f, err := manyTablesRun(bin, filepath.Join(dir, fmt.Sprintf("node-%d", layout.jobs)), srv, db, emu, qport, n, layout.jobs, layout.name, idle)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", layout.name, err)
		}
		printFigures(f) // each layout takes minutes
		figs = append(figs, f...)
	}
	return figs, nil
}

// createTables makes t.t00000 … in one schema, one row each.
func createTables(db *sql.DB, n int) error {
	if _, err := db.Exec("CREATE DATABASE t"); err != nil {
		return err
	}
	if _, err := db.Exec(`CREATE PROCEDURE t.make(n INT) BEGIN
		DECLARE i INT DEFAULT 0;
		WHILE i < n DO
		  SET @s = CONCAT('CREATE TABLE t.t', LPAD(i, 5, '0'), ' (id INT PRIMARY KEY, v INT, note VARCHAR(20))');
		  PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
		  SET @s = CONCAT('INSERT INTO t.t', LPAD(i, 5, '0'), ' VALUES (1, 1, ''x'')');
		  PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
		  SET i = i + 1;
		END WHILE;
	END`); err != nil {
		return err
	}
	_, err := db.Exec("CALL t.make(?)", n)
	return err
}

type procStat struct {
	cpu time.Duration
	rss int64 // bytes
}

func statOf(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+stt) * time.Second / 100 // USER_HZ
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			st.rss = kb * 1024
		}
	}
	return st, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// manyTablesRun starts a node, measures it idle without jobs, creates the
// jobs, waits for every table to stream, then measures a trickle.
func manyTablesRun(bin, dataDir string, srv *mariadbtest.Server, src *sql.DB, emu *sremu.Emulator, qport string, n, jobs int, name string, idle time.Duration) ([]Figure, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--mysql-addr", addrs[0], "--http-addr", addrs[1], "--raft-addr", addrs[2], "--log-level", "error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitHealthy(addrs[1]); err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", "root:@tcp("+addrs[0]+")/")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	pid := cmd.Process.Pid
	measure := func(d time.Duration) (procStat, float64, error) {
		a, err := statOf(pid)
		if err != nil {
			return a, 0, err
		}
		time.Sleep(d)
		b, err := statOf(pid)
		return b, float64(b.cpu-a.cpu) / float64(d), err
	}
	base, baseCPU, err := measure(10 * time.Second)
	if err != nil {
		return nil, err
	}
	per := n / jobs
	start := time.Now()
	for j := 0; j < jobs; j++ {
		tables := `t\\.t.*`
		if jobs > 1 {
			// Tables t<prefix><two digits>: 100 per job for perJob 100.
			tables = fmt.Sprintf(`t\\.t%03d..`, j)
			if per != 100 {
				return nil, fmt.Errorf("jobs of %d tables: only 100 per job is laid out", per)
			}
		}
		q := fmt.Sprintf(`CREATE SYNC JOB j%03d FROM mysql_cdc ('host'='127.0.0.1', 'port'='%d', 'user'='%s', 'password'='%s', 'tables'='%s', 'heartbeat.interval'='5s')
			TO starrocks ('fe'='%s', 'query_port'='%s', 'user'='root', 'database'='ods%d', 'batch.interval'='10s')
			WITH ('checkpoint.interval'='30s')`, j, srv.Port, mariadbtest.ReplUser, mariadbtest.ReplPass, tables, emu.FE, qport, jobs)
		// The create-time checks of a job share the server with the
		// snapshots of the jobs created before it: a check that times out
		// is tried again, as a script would.
		var err error
		for try := 0; try < 5; try++ {
			if _, err = db.Exec(q); err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
				break
			}
			fmt.Printf("tables, %s: CREATE of job %d timed out in its checks; again\n", name, j)
		}
		if err != nil {
			return nil, err
		}
	}
	var streaming int
	for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(2 * time.Second) {
		if err := db.QueryRow("SELECT COUNT(*) FROM sluice.job_tables WHERE phase = 'STREAMING'").Scan(&streaming); err != nil {
			return nil, err
		}
		if streaming >= n {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d tables streaming after 30 minutes", streaming, n)
		}
	}
	snapshot := time.Since(start)
	fmt.Printf("tables, %s: %d tables streaming after %s\n", name, n, snapshot.Round(time.Second))
	time.Sleep(35 * time.Second) // a checkpoint and a flush of everything the snapshot left

	// A trickle: 10 single-row writes a second to random tables.
	stopW := make(chan struct{})
	doneW := make(chan struct{})
	go func() {
		defer close(doneW)
		rng := rand.New(rand.NewSource(1))
		for {
			select {
			case <-stopW:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_, _ = src.Exec(fmt.Sprintf("UPDATE t.t%05d SET v = v + 1 WHERE id = 1", rng.Intn(n)))
		}
	}()
	loads0 := len(emu.Loads())
	idleStat, idleCPU, err := measure(idle)
	close(stopW)
	<-doneW
	if err != nil {
		return nil, err
	}
	loadsPerMin := float64(len(emu.Loads())-loads0) / idle.Minutes()
	var ckBytes, ckMs float64
	if err := db.QueryRow("SELECT COALESCE(AVG(LENGTH(position)), 0), COALESCE(AVG(duration_ms), 0) FROM sluice.checkpoints WHERE state = 'COMPLETED'").Scan(&ckBytes, &ckMs); err != nil {
		return nil, err
	}
	k := float64(n) / 1000
	rssPerK := float64(idleStat.rss-base.rss) / k / (1 << 20)
	cpuPerK := (idleCPU - baseCPU) * 100 / k
	note := fmt.Sprintf("%d tables, %s; node with no job: %.1f MiB RSS, %.2f%% of a core; snapshot of all tables %s", n, name,
		float64(base.rss)/(1<<20), baseCPU*100, snapshot.Round(time.Second))
	return []Figure{
		{Name: "RSS per 1,000 tables, " + name, Value: rssPerK, Unit: "MiB", Floor: 24, Goal: 8, Max: true, Note: "over the same node with no job; " + note},
		{Name: "CPU per 1,000 idle tables, " + name, Value: cpuPerK, Unit: "% of a core", Floor: 1, Max: true,
			Note: fmt.Sprintf("over the same node with no job, for %s with 10 writes/s to random tables", idle)},
		{Name: "catalog size, " + name, Value: float64(dirSize(dataDir)) / (1 << 20), Unit: "MiB", Note: "the node's data dir (Raft log, snapshots)"},
		{Name: "checkpoint size, " + name, Value: ckBytes, Unit: "bytes per task", Note: "the source position stored per checkpoint"},
		{Name: "checkpoint duration, " + name, Value: ckMs, Unit: "ms", Note: "average of the retained completed checkpoints"},
		{Name: "StarRocks loads per minute, " + name, Value: loadsPerMin, Unit: "loads/min", Note: "batch.interval 10s, 10 writes/s to random tables"},
	}, nil
}
