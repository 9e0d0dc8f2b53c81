package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium renders url in Debian's headless Chromium and returns the DOM
// it ends up with, and a screenshot.
func chromium(t *testing.T, url string) (dom string, png []byte) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (scripts/ensure-deps.sh installs Debian's chromium)")
	}
	dir := t.TempDir()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + filepath.Join(dir, "profile")}
	run := func(args ...string) []byte {
		cmd := exec.Command(bin, append(flags, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("chromium %v did not finish", args)
		}
		return []byte(out.String())
	}
	dom = string(run("--dump-dom", url))
	shot := filepath.Join(dir, "page.png")
	run("--window-size=1280,1000", "--screenshot="+shot, url)
	png, err = os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	return dom, png
}

// TestStatusPageInABrowser: the status page, rendered by a real browser,
// shows the node, each job with its state, its tables' phase, its DAG
// and recent events; without credentials it asks for them.
func TestStatusPageInABrowser(t *testing.T) {
	n := newNode(t)
	n.start()
	n.sql("CREATE SYNC JOB pagejob FROM datagen ('rate'='300', 'tables'='a,b') TO blackhole () WITH ('parallelism'='2')")
	n.sql("CREATE SYNC JOB idlejob FROM datagen ('rate'='10') TO blackhole (); PAUSE SYNC JOB idlejob")
	n.waitFor("both jobs settled", func() bool { return n.state("pagejob") == "RUNNING" && n.state("idlejob") == "PAUSED" })
	n.waitFor("pagejob's tables", func() bool { return n.int("SELECT COUNT(*) FROM sluice.job_tables WHERE job = 'pagejob'") == 2 })

	resp, err := n.get("/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("/ without credentials: %d", resp.StatusCode)
	}

	dom, png := chromium(t, "http://root:@"+n.httpAddr+"/")
	for _, want := range []string{
		"<td class=\"pagejob\">pagejob</td><td class=\"running\">RUNNING</td>",
		"<td class=\"idlejob\">idlejob</td><td class=\"paused\">PAUSED</td>",
		"<td class=\"datagen.a\">datagen.a</td><td class=\"streaming\">STREAMING</td>",
		"id=\"plan-pagejob\"", "datagen", "blackhole",
		"id=\"events\"", "PAUSE SYNC JOB",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	if p := os.Getenv("SLUICE_STATUS_SHOT"); p != "" {
		_ = os.WriteFile(p, png, 0o644)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Errorf("screenshot of %d bytes is not a PNG", len(png))
	}
}
