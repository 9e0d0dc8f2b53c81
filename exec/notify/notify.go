package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"sluice/catalog"
)

// Catalog is what the notifier needs of the catalog. *catalog.Catalog
// implements it.
type Catalog interface {
	Notifications() []catalog.Notification
	EventsAfter(seq uint64) []catalog.Event
	Notified(ctx context.Context, cmd catalog.Notified) error
	Changed() <-chan struct{}
}

// Config configures a Notifier.
type Config struct {
	NodeID   string
	IsLeader func() bool // nil: always
	// Backoff is the first retry delay (default 1s); it doubles up to
	// MaxBackoff (default 1m). A failing webhook is retried until it
	// answers or is dropped: its events wait, in order.
	Backoff, MaxBackoff time.Duration
	Timeout             time.Duration // per request (default 10s)
	Logger              *slog.Logger
}

// Payload is the JSON body of one delivery.
type Payload struct {
	Notification string    `json:"notification"`
	Node         string    `json:"node"` // the node that posted it
	Seq          uint64    `json:"seq"`
	Time         time.Time `json:"time"`
	Job          string    `json:"job,omitempty"`
	Kind         string    `json:"kind"`
	Message      string    `json:"message"`
}

// Notifier runs the webhooks while this node leads.
type Notifier struct {
	cfg    Config
	cat    Catalog
	client *http.Client
	mu     sync.Mutex
	run    map[string]context.CancelFunc // by name + creation time
	wg     sync.WaitGroup
}

// New returns a Notifier. Call Run.
func New(cfg Config, cat Catalog) *Notifier {
	if cfg.IsLeader == nil {
		cfg.IsLeader = func() bool { return true }
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Notifier{cfg: cfg, cat: cat, client: &http.Client{Timeout: cfg.Timeout}, run: map[string]context.CancelFunc{}}
}

func runKey(n catalog.Notification) string { return n.Name + "\x00" + n.CreatedAt.String() }

// Run starts and stops webhook workers as webhooks and leadership come
// and go, until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	defer func() {
		n.mu.Lock()
		for k, stop := range n.run {
			stop()
			delete(n.run, k)
		}
		n.mu.Unlock()
		n.wg.Wait()
	}()
	for {
		changed := n.cat.Changed()
		n.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

func (n *Notifier) reconcile(ctx context.Context) {
	want := map[string]catalog.Notification{}
	if n.cfg.IsLeader() {
		for _, nt := range n.cat.Notifications() {
			want[runKey(nt)] = nt
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, stop := range n.run {
		if _, ok := want[k]; !ok {
			stop()
			delete(n.run, k)
		}
	}
	for k, nt := range want {
		if _, ok := n.run[k]; ok {
			continue
		}
		wctx, stop := context.WithCancel(ctx)
		n.run[k] = stop
		n.wg.Add(1)
		go func(nt catalog.Notification) {
			defer n.wg.Done()
			n.deliver(wctx, nt)
		}(nt)
	}
}

// deliver posts the webhook's events, in order, until ctx ends.
func (n *Notifier) deliver(ctx context.Context, nt catalog.Notification) {
	cursor := nt.Cursor
	for ctx.Err() == nil {
		for _, cur := range n.cat.Notifications() { // another leader may have moved it
			if runKey(cur) == runKey(nt) && cur.Cursor > cursor {
				cursor = cur.Cursor
			}
		}
		events := n.cat.EventsAfter(cursor)
		moved := cursor
		for _, ev := range events {
			if nt.Wants(ev) {
				if moved > cursor { // record the skipped ones first
					n.record(ctx, nt, moved)
					cursor = moved
				}
				if !n.post(ctx, nt, ev) {
					return
				}
				n.record(ctx, nt, ev.Seq)
				cursor = ev.Seq
			}
			moved = ev.Seq
		}
		if moved > cursor {
			n.record(ctx, nt, moved)
			cursor = moved
		}
		select {
		case <-ctx.Done():
			return
		case <-n.cat.Changed():
		case <-time.After(time.Second):
		}
	}
}

func (n *Notifier) record(ctx context.Context, nt catalog.Notification, seq uint64) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.cat.Notified(actx, catalog.Notified{Name: nt.Name, CreatedAt: nt.CreatedAt, Seq: seq}); err != nil && ctx.Err() == nil {
		n.cfg.Logger.Warn("notification cursor not recorded (the event may be posted again)", "notification", nt.Name, "seq", seq, "err", err)
	}
}

// post sends one event until the webhook takes it (2xx); false when ctx
// ended first.
func (n *Notifier) post(ctx context.Context, nt catalog.Notification, ev catalog.Event) bool {
	body, _ := json.Marshal(Payload{Notification: nt.Name, Node: n.cfg.NodeID, Seq: ev.Seq, Time: ev.Time, Job: ev.Job, Kind: ev.Kind, Message: ev.Message})
	backoff := n.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := n.send(ctx, nt.URL, body, ev.Seq)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		n.cfg.Logger.Warn("notification not delivered; retrying", "notification", nt.Name, "seq", ev.Seq, "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, n.cfg.MaxBackoff)
	}
}

func (n *Notifier) send(ctx context.Context, url string, body []byte, seq uint64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice")
	req.Header.Set("X-Sluice-Event-Seq", fmt.Sprint(seq)) // receivers may drop a repeat by it
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
