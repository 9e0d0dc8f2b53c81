package catalog

// What the catalog retains beside jobs, nodes and checkpoints: the job
// history, CHECKSUM verifications and webhooks, their reads, and their
// expiry by age (Expire).

import (
	"fmt"
	"sort"
	"time"
)

// VisibleAt is the source time a job's target is known to be current
// through: the oldest source time of its pipelines' last completed
// checkpoints (zero while a pipeline has none, or a task's is unknown).
func (f *FSM) VisibleAt(j Job) time.Time {
	var at time.Time
	for _, p := range j.Plan.Pipelines {
		cp, ok := f.LastCheckpoint(j.ID, p.ID)
		if !ok {
			return time.Time{}
		}
		for _, t := range cp.Tasks {
			if t.SourceTime.IsZero() {
				return time.Time{}
			}
			if at.IsZero() || t.SourceTime.Before(at) {
				at = t.SourceTime
			}
		}
	}
	return at
}

// History returns the retained job history, oldest first.
func (f *FSM) History() []HistoryEntry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]HistoryEntry(nil), f.st.History...)
}

// Notifications returns the webhooks, by name.
func (f *FSM) Notifications() []Notification {
	f.mu.RLock()
	out := make([]Notification, 0, len(f.st.Notifications))
	for _, n := range f.st.Notifications {
		out = append(out, *n)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out
}

// EventsAfter returns the retained events with seq > after, oldest first.
func (f *FSM) EventsAfter(after uint64) []Event {
	f.mu.RLock()
	defer f.mu.RUnlock()
	i := sort.Search(len(f.st.Events), func(i int) bool { return f.st.Events[i].Seq > after })
	return append([]Event(nil), f.st.Events[i:]...)
}

// Verifications returns the chunks of the latest CHECKSUM runs.
func (f *FSM) Verifications() []Verification {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]Verification(nil), f.st.Verifications...)
}

// OldestRetained is when the oldest history entry ended or the oldest
// event happened (false: there are none).
func (f *FSM) OldestRetained() (time.Time, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var t time.Time
	for _, h := range f.st.History {
		if t.IsZero() || h.EndedAt.Before(t) {
			t = h.EndedAt
		}
	}
	if len(f.st.Events) > 0 && (t.IsZero() || f.st.Events[0].Time.Before(t)) {
		t = f.st.Events[0].Time
	}
	return t, !t.IsZero()
}

// addHistory adds a job's history entry.
func (s *state) addHistory(j *Job, final, errText string, at time.Time, rows int64) {
	s.History = append(s.History, HistoryEntry{JobID: j.ID, Name: j.Name, FinalState: final, Error: errText, Attempt: j.Attempt,
		Restarts: j.Restarts, StartedAt: j.CreatedAt, EndedAt: at, Rows: rows, Spec: j.Spec})
	if over := len(s.History) - MaxHistory; over > 0 {
		s.History = append([]HistoryEntry(nil), s.History[over:]...)
	}
}

// keepIf returns a new slice of the elements of list that keep says to keep.
func keepIf[T any](list []T, keep func(T) bool) []T {
	out := list[:0:0]
	for _, x := range list {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func applyExpire(s *state, _ uint64, c *Expire) any {
	keepH := keepIf(s.History, func(h HistoryEntry) bool { return !h.EndedAt.Before(c.Before) })
	keepE := keepIf(s.Events, func(e Event) bool { return !e.Time.Before(c.Before) })
	keepV := keepIf(s.Verifications, func(v Verification) bool { return !v.CheckedAt.Before(c.Before) })
	applied := len(keepH) != len(s.History) || len(keepE) != len(s.Events) || len(keepV) != len(s.Verifications)
	s.History, s.Events, s.Verifications = keepH, keepE, keepV
	return Result{Applied: applied}
}

func applyCreateNotification(s *state, _ uint64, c *CreateNotification) any {
	n := c.Notification
	if _, ok := s.Notifications[key(n.Name)]; ok {
		if c.IfNotExists {
			return Result{}
		}
		return fmt.Errorf("%w: %s", ErrNotificationExists, n.Name)
	}
	if s.Notifications == nil {
		s.Notifications = map[string]*Notification{}
	}
	n.Cursor = s.EventSeq // from the next event on
	s.Notifications[key(n.Name)] = &n
	return Result{Applied: true}
}

func applyDropNotification(s *state, _ uint64, c *DropNotification) any {
	if _, ok := s.Notifications[key(c.Name)]; !ok {
		if c.IfExists {
			return Result{}
		}
		return fmt.Errorf("%w: %s", ErrNotificationNotFound, c.Name)
	}
	delete(s.Notifications, key(c.Name))
	return Result{Applied: true}
}

func applyNotified(s *state, _ uint64, c *Notified) any {
	n, ok := s.Notifications[key(c.Name)]
	if !ok || !n.CreatedAt.Equal(c.CreatedAt) || c.Seq <= n.Cursor {
		return Result{}
	}
	m := *n
	m.Cursor = c.Seq
	s.Notifications[key(c.Name)] = &m
	return Result{Applied: true}
}

func applySetVerifications(s *state, _ uint64, c *SetVerifications) any {
	replaced := map[string]bool{}
	for _, t := range c.Tables {
		replaced[t] = true
	}
	keep := keepIf(s.Verifications, func(v Verification) bool { return v.JobID != c.JobID || !replaced[v.Table] })
	keep = append(keep, c.Chunks...)
	if over := len(keep) - MaxVerifications; over > 0 {
		keep = keep[over:]
	}
	s.Verifications = keep
	return Result{Applied: true}
}
