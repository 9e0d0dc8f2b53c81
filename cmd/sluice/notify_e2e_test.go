package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type hookPayload struct {
	Notification, Job, Kind, Message string
	Seq                              uint64
}

// receiver is a local webhook endpoint that fails its first fail calls.
type receiver struct {
	mu       sync.Mutex
	fail     int
	delay    time.Duration
	calls    int
	received []hookPayload
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.fail {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	var p hookPayload
	if err := json.Unmarshal(body, &p); err != nil || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.received = append(r.received, p)
}

func (r *receiver) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.received {
		out = append(out, p.Job+":"+p.Kind)
	}
	return out
}

// TestNotificationWebhook: CREATE NOTIFICATION posts the job's state
// changes it asked for, in order, retried through a receiver's failures;
// another job's events are not sent; a receiver that hangs delays only
// itself, not the data path nor the other webhooks.
func TestNotificationWebhook(t *testing.T) {
	hook := &receiver{fail: 2}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	slow := &receiver{delay: 2 * time.Second}
	slowSrv := httptest.NewServer(slow)
	defer slowSrv.Close()

	n := newNode(t)
	n.start()
	n.sql("CREATE SYNC JOB hooked FROM datagen ('rate'='500') TO blackhole (); CREATE SYNC JOB other FROM datagen ('rate'='10') TO blackhole ()")
	n.waitFor("both RUNNING", func() bool { return n.state("hooked") == "RUNNING" && n.state("other") == "RUNNING" })
	n.sql(fmt.Sprintf("CREATE NOTIFICATION ops URL '%s/hook' FOR JOB hooked EVENTS ('PAUSED', 'RUNNING')", srv.URL))
	n.sql(fmt.Sprintf("CREATE NOTIFICATION slowpoke URL '%s/x?token=s3cret'", slowSrv.URL))
	for q, code := range map[string]string{
		fmt.Sprintf("CREATE NOTIFICATION ops URL '%s/again'", srv.URL): "ERROR 1050",
		"DROP NOTIFICATION nosuch":                                     "ERROR 1146",
		"CREATE NOTIFICATION bad URL 'ftp://example/x'":                "ERROR 1064",
	} {
		if out, err := n.run(q); err == nil || !strings.Contains(out, code) {
			t.Errorf("%s: %q, want %s", q, out, code)
		}
	}
	if shown := n.sql("SHOW NOTIFICATIONS"); strings.Contains(shown, "s3cret") || !strings.Contains(shown, "slowpoke") {
		t.Errorf("SHOW NOTIFICATIONS: %q (the query string must be masked)", shown)
	}

	n.sql("PAUSE SYNC JOB other")
	n.sql("PAUSE SYNC JOB hooked")
	n.waitFor("hooked PAUSED", func() bool { return n.state("hooked") == "PAUSED" })
	n.sql("RESUME SYNC JOB hooked")
	sum := func() int64 {
		return n.int("SELECT COALESCE(SUM(sink_write_count), 0) FROM sluice.metrics WHERE job = 'hooked'")
	}
	n.waitFor("hooked flowing again", func() bool { return n.state("hooked") == "RUNNING" && sum() > 0 })

	// The failing receiver gets both, in order, after its two refusals,
	// while the hanging one still holds its first event.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && len(hook.kinds()) < 2 {
		time.Sleep(100 * time.Millisecond)
	}
	if got := strings.Join(hook.kinds(), " "); got != "hooked:PAUSED hooked:RUNNING" {
		t.Fatalf("webhook got %q, want hooked:PAUSED hooked:RUNNING", got)
	}
	hook.mu.Lock()
	calls := hook.calls
	hook.mu.Unlock()
	if calls < 4 {
		t.Errorf("%d calls: the two refusals were not retried", calls)
	}
	a := sum()
	time.Sleep(time.Second)
	if b := sum(); b <= a {
		t.Errorf("the data path stalled behind a hanging webhook: %d then %d rows", a, b)
	}
	n.waitFor("ops has nothing pending", func() bool {
		return n.sql("SELECT pending FROM sluice.notifications WHERE name = 'ops'") == "0"
	})
	n.sql("DROP NOTIFICATION slowpoke")
	if got := n.sql("SELECT COUNT(*) FROM sluice.notifications"); got != "1" {
		t.Errorf("%s notifications after DROP, want 1", got)
	}
}
