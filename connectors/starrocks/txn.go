package starrocks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// txnLoad begins t's transaction for this checkpoint if needed and loads
// the buffer into it.
func (s *Sink) txnLoad(ctx context.Context, t *target) error {
	if t.txn == "" {
		label := s.txnLabel(t.db, t.table, s.base, s.k+1, s.env.Attempt)
		if err := s.begin(ctx, t.db, t.table, label); err != nil {
			return err
		}
		t.txn = label
		s.open[t.db]++
	}
	body := s.body(t)
	err := s.c.retry(ctx, func() error {
		r, err := s.c.do(ctx, http.MethodPut, "/api/transaction/load", s.loadHeaders(t, t.txn), body)
		if err != nil {
			return err
		}
		if r.Status != "OK" {
			return fmt.Errorf("load into transaction %s: %s %s", t.txn, r.Status, r.Message)
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.loaded = true
	return nil
}

func (s *Sink) txnCall(ctx context.Context, verb, db, table, label string) (response, error) {
	var r response
	err := s.c.retry(ctx, func() error {
		var err error
		r, err = s.c.do(ctx, http.MethodPost, "/api/transaction/"+verb, map[string]string{"db": db, "table": table, "label": label}, nil)
		return err
	})
	return r, err
}

// begin opens a transaction; a leftover of a crashed run under the same
// label is rolled back first.
func (s *Sink) begin(ctx context.Context, db, table, label string) error {
	for i := 0; i < 2; i++ {
		r, err := s.txnCall(ctx, "begin", db, table, label)
		if err != nil {
			return fmt.Errorf("begin %s: %w", label, err)
		}
		switch r.Status {
		case "OK":
			return nil
		case "LABEL_ALREADY_EXISTS":
			switch strings.ToUpper(r.ExistingJobStatus) {
			case "RUNNING", "PREPARE", "PREPARED":
				if _, err := s.txnCall(ctx, "rollback", db, table, label); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("begin %s: the label was already committed (%s); refusing to load it twice", label, r.ExistingJobStatus)
		default:
			return fmt.Errorf("begin %s: %s %s", label, r.Status, r.Message)
		}
	}
	return fmt.Errorf("begin %s: label still in use after rolling it back", label)
}

// PreCommit loads what is buffered and prepares every open transaction.
func (s *Sink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.set.exactlyOnce {
		if c := s.carry(); len(c) > 0 {
			return json.Marshal(state{Carry: c})
		}
		return nil, nil
	}
	pb := preparedBatch{ID: id}
	for _, t := range s.targets {
		if t.txn == "" {
			continue
		}
		if len(t.buf) > 0 { // Flush loads these; PreCommit alone must not lose them
			if err := s.txnLoad(ctx, t); err != nil {
				return nil, err
			}
			t.reset()
		}
		r, err := s.txnCall(ctx, "prepare", t.db, t.table, t.txn)
		if err == nil && r.Status != "OK" {
			// TXN_NOT_EXISTS after a retried prepare: check the label.
			st, serr := s.c.loadState(ctx, t.db, t.txn)
			if serr != nil || st != "PREPARED" {
				err = fmt.Errorf("prepare %s: %s %s (state %s)", t.txn, r.Status, r.Message, st)
			}
		}
		if err != nil {
			return nil, err
		}
		pb.Labels = append(pb.Labels, [3]string{t.db, t.table, t.txn})
		t.txn, t.loaded = "", false
	}
	s.k++
	if len(pb.Labels) > 0 {
		s.prepared = append(s.prepared, pb)
	}
	st := state{Base: s.base, K: s.k, Attempt: s.env.Attempt, Prepared: s.prepared, Carry: s.carry()}
	for _, v := range s.known {
		st.Tables = append(st.Tables, v)
	}
	return json.Marshal(st)
}

// Commit commits every transaction prepared up to checkpoint id.
func (s *Sink) Commit(ctx context.Context, id uint64, _ []byte) error {
	if !s.set.exactlyOnce {
		return nil
	}
	var keep []preparedBatch
	for _, pb := range s.prepared {
		if pb.ID > id {
			keep = append(keep, pb)
			continue
		}
		for _, l := range pb.Labels {
			if err := s.commitLabel(ctx, l[0], l[1], l[2]); err != nil {
				return err
			}
			s.open[l[0]]--
		}
	}
	s.prepared = keep
	return nil
}

// commitLabel commits a prepared transaction; an earlier commit whose
// answer was lost shows as COMMITTED or VISIBLE.
func (s *Sink) commitLabel(ctx context.Context, db, table, label string) error {
	r, err := s.txnCall(ctx, "commit", db, table, label)
	if err == nil && r.Status == "OK" {
		return nil
	}
	st, serr := s.c.loadState(ctx, db, label)
	if serr == nil && (st == "VISIBLE" || st == "COMMITTED") {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("%s %s", r.Status, r.Message)
	}
	return fmt.Errorf("commit %s (state %s): %w", label, st, err)
}

// txnLabel is the label of the k-th transaction of a table in the run of
// attempt that recovered from checkpoint base: <base>_<k>_a<attempt>.
// Invariant (fencing): two runs never share a label, so a zombie's load (a
// frozen run that thawed after its job moved) can never land in the
// transaction of the run that replaced it.
func (s *Sink) txnLabel(db, table string, base uint64, k, attempt int) string {
	if attempt == 0 { // labels made before they named their attempt
		return s.label(db, table, strconv.FormatUint(base, 10), strconv.Itoa(k))
	}
	return s.label(db, table, strconv.FormatUint(base, 10), strconv.Itoa(k), "a"+strconv.Itoa(attempt))
}

// Recover commits what the last committed checkpoint prepared and rolls
// back what the crashed runs prepared after it: the run that took it
// (labels <base>_<k+1>_a<attempt>, … per table, probed until one is
// unknown) and every run that recovered from it since and did not get to a
// checkpoint (attempts in between, labels <id>_<1…>_a<attempt>).
func (s *Sink) Recover(ctx context.Context, id uint64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.k, s.open = id, 0, map[string]int{}
	var st state
	if len(data) > 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("checkpoint state: %w", err)
		}
	}
	s.restore(st.Carry)
	if !s.set.exactlyOnce {
		return nil
	}
	for _, pb := range st.Prepared {
		if pb.ID > id {
			continue
		}
		for _, l := range pb.Labels {
			if err := s.commitLabel(ctx, l[0], l[1], l[2]); err != nil {
				return err
			}
		}
	}
	// The crashed run took at most one barrier per checkpoint id after id:
	// up to the last id the catalog recorded, plus one in flight. A table
	// need not have a transaction at each (it may have waited for
	// batch.interval), so that whole range is probed; without the bound,
	// probing stops at the first unknown label.
	last := 0
	if s.env.LastCheckpointID > id {
		last = st.K + int(s.env.LastCheckpointID-id) + 1
	}
	// Runs that may have left transactions: the one that took checkpoint
	// id (labels <st.Base>_<st.K+1…>_a<st.Attempt>) and any that recovered
	// from id before this one and crashed (labels <id>_<1…>_a<attempt>,
	// every attempt in between).
	again := 1
	if s.env.LastCheckpointID > id {
		again = int(s.env.LastCheckpointID-id) + 1
	}
	s.probes = []probe{{base: st.Base, attempt: st.Attempt, from: st.K + 1, to: last}}
	if st.Attempt == 0 {
		s.probes = append(s.probes, probe{base: id, from: 1, to: again}) // runs from before labels named their attempt
	}
	for a := max(st.Attempt+1, 1); a < s.env.Attempt; a++ {
		s.probes = append(s.probes, probe{base: id, attempt: a, from: 1, to: again})
	}
	for _, tb := range st.Tables {
		s.known[tb[0]+"."+tb[1]] = tb
		if err := s.rollbackLeftovers(ctx, tb[0], tb[1]); err != nil {
			return err
		}
	}
	return nil
}

// rollbackLeftovers rolls back the transactions the crashed run prepared
// for one table after the checkpoint this run recovered from. Recover does
// it for the tables the checkpoint names; a table the crashed run first
// wrote after that checkpoint is done when this run first sees it (the
// replay from the same position writes it again).
func (s *Sink) rollbackLeftovers(ctx context.Context, db, table string) error {
	for _, p := range s.probes {
		for k := p.from; ; k++ {
			label := s.txnLabel(db, table, p.base, k, p.attempt)
			state, err := s.c.loadState(ctx, db, label)
			if err != nil {
				return err
			}
			if state == "UNKNOWN" && k >= p.to {
				break
			}
			if state == "PREPARE" || state == "PREPARED" {
				if _, err := s.txnCall(ctx, "rollback", db, table, label); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ---- tables ---------------------------------------------------------------
