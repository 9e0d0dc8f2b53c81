package catalog

import (
	"errors"
	"fmt"
)

// MaxRequests is how many request ids the state machine remembers for
// deduplication (oldest forgotten first). A retry comes within seconds of
// its first attempt; thousands of entries are minutes of a busy catalog.
const MaxRequests = 4096

// Outcome is the result of one applied command in a form that crosses the
// wire (a follower's forwarded write) and a snapshot (the request table).
type Outcome struct {
	Index   uint64 `json:"index"` // Raft index of the entry that decided it
	Applied bool   `json:"applied,omitempty"`
	Job     string `json:"job,omitempty"`  // the job the command left behind, if any
	Kind    string `json:"kind,omitempty"` // error class ("" = success)
	Msg     string `json:"msg,omitempty"`  // error message
}

// errorKinds names the domain errors that cross the wire, so a client on
// another node can still branch on them with errors.Is.
var errorKinds = map[string]error{
	"job_exists":     ErrJobExists,
	"job_not_found":  ErrJobNotFound,
	"bad_transition": ErrBadTransition,
	"stale_attempt":  ErrStaleAttempt,
	"bad_checkpoint": ErrBadCheckpoint,
	"conflict":       ErrConflict,
	"claim_taken":    ErrClaimTaken,
	"node_not_found": ErrNodeNotFound,
	"bad_placement":  ErrBadPlacement,
}

// outcomeOf turns what an apply function returned into an Outcome.
func outcomeOf(index uint64, resp any) Outcome {
	o := Outcome{Index: index}
	switch r := resp.(type) {
	case Result:
		o.Applied = r.Applied
		if r.Job != nil {
			o.Job = r.Job.Name
		}
	case error:
		o.Kind, o.Msg = "error", r.Error()
		for k, sentinel := range errorKinds {
			if errors.Is(r, sentinel) {
				o.Kind = k
				break
			}
		}
	}
	return o
}

// kindError is a domain error rebuilt from an Outcome: its message is the
// original one and errors.Is still finds the sentinel.
type kindError struct {
	msg      string
	sentinel error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.sentinel }

// Err is the outcome's error (nil on success).
func (o Outcome) Err() error {
	if o.Kind == "" {
		return nil
	}
	return &kindError{msg: o.Msg, sentinel: errorKinds[o.Kind]}
}

// result rebuilds the Result from a state that has applied the outcome.
func (o Outcome) result(s *state) any {
	if err := o.Err(); err != nil {
		return err
	}
	r := Result{Applied: o.Applied}
	if j, ok := s.Jobs[key(o.Job)]; ok && o.Job != "" {
		cp := *j
		r.Job = &cp
	}
	return r
}

// dedup is what Apply returns for a retried request id: the first
// attempt's answer and index. The catalog client unwraps it.
type dedup struct {
	resp  any
	index uint64
}

// request is one remembered request id and its outcome.
type request struct {
	ID      string  `json:"id"`
	Outcome Outcome `json:"outcome"`
}

// remembered finds a request id's outcome.
func (s *state) remembered(id string) (Outcome, bool) {
	if s.requestIdx == nil {
		s.requestIdx = make(map[string]int, len(s.Requests))
		for i, r := range s.Requests {
			s.requestIdx[r.ID] = i
		}
	}
	i, ok := s.requestIdx[id]
	if !ok {
		return Outcome{}, false
	}
	return s.Requests[i].Outcome, true
}

// remember records a request id's outcome, forgetting the oldest beyond
// MaxRequests (in steps of a quarter, so the list is compacted rarely).
// Snapshot copies the list: here it grows in place.
func (s *state) remember(id string, o Outcome) {
	if _, ok := s.remembered(id); ok {
		return
	}
	s.Requests = append(s.Requests, request{ID: id, Outcome: o})
	s.requestIdx[id] = len(s.Requests) - 1
	if len(s.Requests) > MaxRequests+MaxRequests/4 {
		s.Requests = append([]request(nil), s.Requests[len(s.Requests)-MaxRequests:]...)
		s.requestIdx = nil
	}
}

func (o Outcome) String() string {
	if o.Kind != "" {
		return fmt.Sprintf("index %d: %s: %s", o.Index, o.Kind, o.Msg)
	}
	return fmt.Sprintf("index %d: applied=%v", o.Index, o.Applied)
}
