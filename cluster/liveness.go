package cluster

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"sluice/catalog"
	"sluice/exec"
)

// Work is what a node reports about its own work with each heartbeat.
// *exec.Engine implements it.
type Work interface {
	Tasks() []exec.TaskRow
	Slots() []exec.SlotRow
	SlotUsage() (total, used int)
	MetricRows() []exec.MetricRow
	TableRows() []exec.TableRow
	SourceRows() []exec.SourceRow
	RiskRows() []exec.RiskRow
}

// Report is one node's heartbeat: who it is and what it runs.
type Report struct {
	Node        string           `json:"node"`
	Incarnation string           `json:"incarnation,omitempty"` // this start of the node`
	Tasks       []exec.TaskRow   `json:"tasks,omitempty"`
	Slots       []exec.SlotRow   `json:"slots,omitempty"`
	SlotsUsed   int              `json:"slots_used"`
	Metrics     []exec.MetricRow `json:"metrics,omitempty"`
	Tables      []exec.TableRow  `json:"tables,omitempty"`
	Sources     []exec.SourceRow `json:"sources,omitempty"`
	Risks       []exec.RiskRow   `json:"risks,omitempty"`
}

// Seen is the leader's record of one node's heartbeats.
type Seen struct {
	Last   time.Time `json:"last"` // zero: none since this leader took over
	Status string    `json:"status"`
}

// View is the cluster as the leader sees it: every node's last heartbeat
// and report. The leader answers it to each heartbeat, so every node holds
// a view at most one heartbeat old.
type View struct {
	Leader  string            `json:"leader"`
	At      time.Time         `json:"at"`
	Seen    map[string]Seen   `json:"seen"`
	Reports map[string]Report `json:"reports"`
}

// Liveness runs a node's heartbeats and, on the leader, judges every
// node UP → SUSPECT → DOWN from the time since its last heartbeat. The
// heartbeat has its own goroutine and never waits for the data path, so a
// slow sink never makes a node look dead (a stalled task is a different
// timeout). Only status changes are written to the catalog.
type Liveness struct {
	Peers *Peers
	Self  string
	// Incarnation is this start of the node (as it registers it).
	Incarnation string
	Work        Work
	// Interval between heartbeats; a node is SUSPECT after 3 missed
	// intervals and DOWN after SessionTimeout without one.
	Interval, SessionTimeout time.Duration
	Log                      *slog.Logger

	mu          sync.Mutex
	leaderSince time.Time
	lastReceive time.Time            // the last heartbeat this node received as leader
	seen        map[string]time.Time // leader only
	reports     map[string]Report    // leader only
	view        View                 // the latest view this node holds
	answered    time.Time            // the last heartbeat the leader answered (or this node led)
}

// Connected reports whether this node is in touch with the leader: its
// last heartbeat was answered (or it led) within the session timeout.
// Before the first heartbeat it counts as connected.
func (l *Liveness) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answered.IsZero() || time.Since(l.answered) <= l.SessionTimeout
}

func (l *Liveness) report() Report {
	_, used := l.Work.SlotUsage()
	return Report{Node: l.Self, Incarnation: l.Incarnation, Tasks: l.Work.Tasks(), Slots: l.Work.Slots(), SlotsUsed: used, Metrics: l.Work.MetricRows(),
		Tables: l.Work.TableRows(), Sources: l.Work.SourceRows(), Risks: l.Work.RiskRows()}
}

// Run heartbeats until ctx ends.
func (l *Liveness) Run(ctx context.Context) {
	if l.Interval <= 0 {
		l.Interval = time.Second
	}
	if l.SessionTimeout <= 0 {
		l.SessionTimeout = 10 * l.Interval
	}
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for {
		l.beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Liveness) beat(ctx context.Context) {
	rep := l.report()
	if l.Peers.Store.IsLeader() {
		v := l.receive(rep)
		l.judge(ctx)
		l.mu.Lock()
		l.view, l.answered = v, time.Now()
		l.mu.Unlock()
		return
	}
	addr, err := l.Peers.LeaderHTTP()
	if err != nil {
		return
	}
	body, _ := json.Marshal(rep)
	hctx, cancel := context.WithTimeout(ctx, l.Interval)
	defer cancel()
	status, answer, err := l.Peers.post(hctx, addr, "/v1/cluster/heartbeat", body, nil)
	if err != nil || status != http.StatusOK {
		l.Log.Debug("heartbeat", "leader", addr, "status", status, "err", err)
		return
	}
	var v View
	if json.Unmarshal(answer, &v) == nil {
		l.mu.Lock()
		l.view, l.answered = v, time.Now()
		l.mu.Unlock()
	}
}

// Heard reports whether this node, leading, has had a heartbeat from n
// since it took office and within the session timeout, from the start of
// the node its record names (a restarted node is heard once its new
// incarnation is registered: tasks placed on the old one would move again).
func (l *Liveness) Heard(n catalog.Node) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, ok := l.seen[n.ID]
	inc := l.reports[n.ID].Incarnation
	return ok && time.Since(last) <= l.SessionTimeout && (inc == "" || inc == n.Incarnation)
}

// receive records a heartbeat on the leader and returns the new view.
func (l *Liveness) receive(rep Report) View {
	now := time.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Every node (this one included) beats each interval, so a gap of two
	// (or none before) means this node was not leading in between, however
	// briefly: what it heard before is stale.
	if now.Sub(l.lastReceive) > 2*l.Interval {
		// A new leader knows no heartbeats yet: every node gets a full
		// session from now before it can be judged DOWN.
		l.leaderSince = now
		l.seen, l.reports = map[string]time.Time{}, map[string]Report{}
	}
	l.lastReceive = now
	l.seen[rep.Node] = now
	l.reports[rep.Node] = rep
	v := View{Leader: l.Self, At: now, Seen: map[string]Seen{}, Reports: map[string]Report{}}
	for _, n := range l.Peers.Catalog.Nodes() {
		v.Seen[n.ID] = Seen{Last: l.seen[n.ID], Status: l.statusLocked(n, now)}
	}
	for id, r := range l.reports {
		// A node silent for a session is DOWN: what it last reported
		// running is not running (its tasks move elsewhere).
		if now.Sub(l.seen[id]) <= l.SessionTimeout {
			v.Reports[id] = r
		}
	}
	return v
}

func (l *Liveness) statusLocked(n catalog.Node, now time.Time) string {
	last, heard := l.seen[n.ID]
	if !heard {
		// Not heard from yet: its grace runs from when this leader took
		// office, or from when the node (re)registered if that is later (a
		// node that just joined is not SUSPECT before its first heartbeat).
		last = l.leaderSince
		if n.RegisteredAt.After(last) {
			last = n.RegisteredAt
		}
	}
	switch age := now.Sub(last); {
	case age > l.SessionTimeout:
		return catalog.NodeDown
	case age > 3*l.Interval:
		return catalog.NodeSuspect
	case heard:
		return catalog.NodeUp
	}
	return "" // not heard from yet, still within its grace
}

// judge writes every node whose status changed (leader only).
func (l *Liveness) judge(ctx context.Context) {
	now := time.Now().UTC()
	for _, n := range l.Peers.Catalog.Nodes() {
		l.mu.Lock()
		st, last := l.statusLocked(n, now), l.seen[n.ID]
		l.mu.Unlock()
		if st == "" || st == n.Status {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, l.Interval)
		err := l.Peers.Catalog.SetNodeStatus(wctx, catalog.SetNodeStatus{ID: n.ID, Status: st, Seen: last})
		cancel()
		if err != nil {
			l.Log.Debug("recording node status", "node", n.ID, "status", st, "err", err)
		} else if st != catalog.NodeUp {
			l.Log.Warn("node liveness", "node", n.ID, "status", st, "last_heartbeat", last)
		}
	}
}

// heartbeatHandler serves POST /v1/cluster/heartbeat on the leader.
func (l *Liveness) heartbeatHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !l.Peers.Store.IsLeader() {
			http.Error(w, "not the leader", http.StatusMisdirectedRequest)
			return
		}
		var rep Report
		if err := json.NewDecoder(io.LimitReader(r.Body, 32<<20)).Decode(&rep); err != nil || rep.Node == "" {
			http.Error(w, "unreadable heartbeat", http.StatusBadRequest)
			return
		}
		v := l.receive(rep)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

// View returns the latest cluster view this node holds.
func (l *Liveness) View() View {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.view
}
