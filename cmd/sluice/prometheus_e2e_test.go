package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/mariadbtest"
)

// TestPrometheusRunsTheDashboard: a real Prometheus (Debian's package)
// scrapes a real node running a CDC job; every PromQL expression of the
// shipped Grafana dashboard returns series, and promtool accepts the
// exposition.
func TestPrometheusRunsTheDashboard(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed (scripts/ensure-deps.sh installs Debian's prometheus)")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed (Debian's prometheus package has it)")
	}
	db := mariadbtest.Start(t)
	db.Exec(t, "SET GLOBAL binlog_expire_logs_seconds = 86400", "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)",
		"INSERT INTO shop.t SELECT seq, seq FROM shop.seq_1_to_3000")
	admin := db.Open(t, "")
	n := newNode(t)
	n.args = []string{"--binlog-risk-interval", "500ms"}
	n.start()
	n.sql(cdcJob("prom", db, `shop\\.t`, "replica", "'checkpoint.interval'='300ms'"))
	n.waitFor("a forecast and a checkpoint", func() bool {
		return n.int("SELECT COUNT(*) FROM sluice.binlog_risk WHERE job = 'prom'") == 1
	})

	// The exposition passes promtool's checks.
	resp, err := n.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(string(body))
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n--- exposition:\n%s", err, out, body)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: [%q]\n", n.httpAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	prom := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	var promLog strings.Builder
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	query := func(expr string) (int, error) {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(expr))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct{ Result []json.RawMessage }
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// Writes while Prometheus scrapes, so rates have something to show.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, _ = admin.Exec("UPDATE shop.t SET v = v + 1 WHERE id = ?", 1+i%3000)
		}
	}()
	defer func() { close(stop); <-done }()
	deadline := time.Now().Add(45 * time.Second)
	for {
		if k, err := query(`up{job="sluice"} == 1`); err == nil && k == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus never scraped the node")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // a few scrapes, for rate() and increase()

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile("../../deploy/grafana/sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			var k int
			var err error
			for until := time.Now().Add(15 * time.Second); ; {
				if k, err = query(tg.Expr); (err == nil && k > 0) || time.Now().After(until) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil || k == 0 {
				t.Errorf("panel %q: %s returned %d series (%v)", p.Title, tg.Expr, k, err)
			}
		}
	}
	if exprs < 10 {
		t.Fatalf("the dashboard has %d expressions", exprs)
	}
}
