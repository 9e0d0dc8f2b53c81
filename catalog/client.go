package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"sluice/raftstore"
)

// Applier replicates an encoded command on this node's Raft log and
// returns the FSM's answer and the entry's index. A follower refuses with
// raftstore.ErrNotLeader. *raftstore.Store implements it.
type Applier interface {
	Apply(ctx context.Context, cmd []byte) (resp any, index uint64, err error)
}

// Forwarder sends an encoded command to the leader, which applies it and
// answers its Outcome. Errors wrap raftstore.ErrNotLeader when the command
// was certainly not applied (no leader, leader unreachable, refused) and
// raftstore.ErrLeadershipLost when it may have been.
type Forwarder interface {
	Forward(ctx context.Context, cmd []byte) (Outcome, error)
}

// ErrNoQuorum: no leader with a quorum took the write within the bound.
var ErrNoQuorum = errors.New("the catalog has no leader with a quorum")

// DefaultWriteTimeout bounds one write (all its retries) when the caller's
// context has no earlier deadline.
const DefaultWriteTimeout = 10 * time.Second

// Catalog is the client of the replicated catalog. Every write — from the
// SQL front, the executor or the cluster code — goes through apply: on the
// leader straight into Raft, on a follower forwarded to the leader, and
// answered once this node has applied it (a client reads its own write on
// the node it wrote to). Each write carries a request id, so a retry after
// an unknown outcome is applied at most once. Reads come from the local
// state machine and may be a moment behind on a follower.
type Catalog struct {
	fsm    *FSM
	raft   Applier
	fwd    Forwarder
	keys   *Keyring
	secret func(connector, option string) bool
	now    func() time.Time
	// WriteTimeout bounds a write whose context has no earlier deadline.
	WriteTimeout time.Duration
}

// New returns a catalog client writing through raft and reading fsm.
func New(fsm *FSM, raft Applier) *Catalog {
	return &Catalog{fsm: fsm, raft: raft, now: func() time.Time { return time.Now().UTC() },
		secret: defaultSecret, WriteTimeout: DefaultWriteTimeout}
}

// SetForwarder makes writes issued on a follower reach the leader.
func (c *Catalog) SetForwarder(f Forwarder) { c.fwd = f }

// SetKeyring seals secret options with keys before they are written;
// secret says which connector options are secret (nil: the default rule,
// names containing password, secret or token).
func (c *Catalog) SetKeyring(keys *Keyring, secret func(connector, option string) bool) {
	c.keys = keys
	if secret != nil {
		c.secret = secret
	}
}

// Keyring is the cluster key in use (nil without one).
func (c *Catalog) Keyring() *Keyring { return c.keys }

func defaultSecret(_, option string) bool {
	return containsFold(option, "password") || containsFold(option, "secret") || containsFold(option, "token")
}

// FSM is the local state machine (Raft's side of the catalog).
func (c *Catalog) FSM() *FSM { return c.fsm }

// carrier is a command with Meta.
type carrier interface{ meta() *Meta }

// NewRequestID returns a random request id.
func NewRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// apply proposes a command and unwraps the FSM's answer, retrying through
// leader changes with the same request id until the write bound passes.
func (c *Catalog) apply(ctx context.Context, t CmdType, cmd carrier) (Result, error) {
	if m := cmd.meta(); m.RequestID == "" {
		m.RequestID = NewRequestID()
	}
	data, err := encode(t, cmd)
	if err != nil {
		return Result{}, err
	}
	if _, ok := ctx.Deadline(); !ok && c.WriteTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.WriteTimeout)
		defer cancel()
	}
	unknown := false // an earlier attempt may have been applied
	backoff := 20 * time.Millisecond
	for {
		resp, index, err := c.once(ctx, data)
		if err == nil {
			r, err := unwrap(resp)
			r.Index = index
			return r, err
		}
		retry := false
		switch {
		case errors.Is(err, raftstore.ErrLeadershipLost):
			unknown, retry = true, true
		case errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrTimeout):
			retry = true
		}
		if !retry {
			return Result{}, fmt.Errorf("catalog: replicate: %w", err)
		}
		select {
		case <-ctx.Done():
			if unknown {
				return Result{}, fmt.Errorf("catalog: %w (and %w: %v)", raftstore.ErrLeadershipLost, ErrNoQuorum, err)
			}
			return Result{}, fmt.Errorf("catalog: %w (last: %v)", ErrNoQuorum, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// nudger is an Applier that can make followers learn the commit index at
// once (raftstore.Store.Nudge) instead of at Raft's next idle tick.
type nudger interface{ Nudge() }

// nudged lists the commands a person issues and expects to see at once on
// every node (a user created on one node logs in on another a moment
// later). High-rate commands (checkpoints, events, liveness) are left to
// Raft's own pace: a nudge costs a log entry.
var nudged = map[CmdType]bool{CmdCreateJob: true, CmdDropJob: true, CmdAlterJob: true, CmdSetJobState: true,
	CmdSetUsers: true, CmdRegisterNode: true, CmdRemoveNode: true}

// once makes one attempt: on this node's Raft log, or through the leader.
// The index is that of the entry that decided the command (for a retry
// deduplicated by its request id: the first one's).
func (c *Catalog) once(ctx context.Context, data []byte) (any, uint64, error) {
	resp, index, err := c.raft.Apply(ctx, data)
	if n, ok := c.raft.(nudger); ok && err == nil && nudged[CmdType(data[0]&^FlagSkippable)] {
		n.Nudge()
	}
	if err == nil || c.fwd == nil || !errors.Is(err, raftstore.ErrNotLeader) {
		if o, ok := resp.(dedup); ok {
			return o.resp, o.index, err
		}
		return resp, index, err
	}
	o, err := c.fwd.Forward(ctx, data)
	if err != nil {
		return nil, 0, err
	}
	if err := c.fsm.WaitIndex(ctx, o.Index); err != nil {
		return nil, 0, fmt.Errorf("committed by the leader at index %d, but this node has not applied it yet: %w", o.Index, err)
	}
	c.fsm.mu.RLock()
	defer c.fsm.mu.RUnlock()
	return o.result(c.fsm.st), o.Index, nil
}

// ApplyLocal applies a command forwarded by another node on this node's
// Raft log (no forwarding again) and returns its Outcome. The forwarder
// answers its client once it has applied the entry, so replication is
// nudged for every forwarded command.
func (c *Catalog) ApplyLocal(ctx context.Context, data []byte) (Outcome, error) {
	resp, index, err := c.raft.Apply(ctx, data)
	if err != nil {
		return Outcome{}, err
	}
	if n, ok := c.raft.(nudger); ok {
		n.Nudge()
	}
	if d, ok := resp.(dedup); ok {
		return outcomeOf(d.index, d.resp), nil
	}
	return outcomeOf(index, resp), nil
}

func unwrap(resp any) (Result, error) {
	switch r := resp.(type) {
	case error:
		return Result{}, r
	case Result:
		return r, nil
	}
	return Result{}, fmt.Errorf("catalog: unexpected apply result %T", resp)
}

func (c *Catalog) stamp(t *time.Time) {
	if t.IsZero() {
		*t = c.now()
	}
}

// ---- reads (local; see the type's comment) ----

// Jobs returns every job, ordered by id.
func (c *Catalog) Jobs() []Job { return c.fsm.Jobs() }

// Job returns one job by case-insensitive name.
func (c *Catalog) Job(name string) (Job, bool) { return c.fsm.Job(name) }

// Events returns the retained events, oldest first.
func (c *Catalog) Events() []Event { return c.fsm.Events() }

// History returns the retained job history, oldest first.
func (c *Catalog) History() []HistoryEntry { return c.fsm.History() }

// Notifications returns the webhooks, by name.
func (c *Catalog) Notifications() []Notification { return c.fsm.Notifications() }

// EventsAfter returns the retained events after seq, oldest first.
func (c *Catalog) EventsAfter(seq uint64) []Event { return c.fsm.EventsAfter(seq) }

// CreateNotification adds a webhook.
func (c *Catalog) CreateNotification(ctx context.Context, cmd CreateNotification) (Result, error) {
	c.stamp(&cmd.Notification.CreatedAt)
	return c.apply(ctx, CmdCreateNotification, &cmd)
}

// DropNotification removes a webhook.
func (c *Catalog) DropNotification(ctx context.Context, cmd DropNotification) (Result, error) {
	return c.apply(ctx, CmdDropNotification, &cmd)
}

// Notified records a webhook's delivery up to seq.
func (c *Catalog) Notified(ctx context.Context, cmd Notified) error {
	_, err := c.apply(ctx, CmdNotified, &cmd)
	return err
}

// Verifications returns the chunks of the latest CHECKSUM SYNC JOB runs.
func (c *Catalog) Verifications() []Verification { return c.fsm.Verifications() }

// SetVerifications records a CHECKSUM SYNC JOB run.
func (c *Catalog) SetVerifications(ctx context.Context, cmd SetVerifications) error {
	_, err := c.apply(ctx, CmdSetVerifications, &cmd)
	return err
}

// VisibleAt is the source time the job's target is current through (see
// FSM.VisibleAt).
func (c *Catalog) VisibleAt(j Job) time.Time { return c.fsm.VisibleAt(j) }

// OldestRetained is the time of the oldest history entry or event.
func (c *Catalog) OldestRetained() (time.Time, bool) { return c.fsm.OldestRetained() }

// Expire drops history entries and events older than before.
func (c *Catalog) Expire(ctx context.Context, before time.Time) (Result, error) {
	return c.apply(ctx, CmdExpire, &Expire{Before: before.UTC()})
}

// Nodes returns the registered nodes, ordered by id.
func (c *Catalog) Nodes() []Node { return c.fsm.Nodes() }

// Index is the Raft index of the last applied command.
func (c *Catalog) Index() uint64 { return c.fsm.Index() }

// Changed returns a channel closed at the next change of the catalog.
func (c *Catalog) Changed() <-chan struct{} { return c.fsm.Changed() }

// Checkpoints returns the recorded checkpoints (see FSM.Checkpoints).
func (c *Catalog) Checkpoints() []Checkpoint { return c.fsm.Checkpoints() }

// LastCheckpoint returns the latest completed checkpoint of a pipeline.
func (c *Catalog) LastCheckpoint(jobID uint64, pipeline int) (Checkpoint, bool) {
	return c.fsm.LastCheckpoint(jobID, pipeline)
}

// MaxCheckpointID returns the highest checkpoint id of a pipeline.
func (c *Catalog) MaxCheckpointID(jobID uint64, pipeline int) uint64 {
	return c.fsm.MaxCheckpointID(jobID, pipeline)
}

// Users returns the replicated user tables and their version.
func (c *Catalog) Users() ([]byte, uint64) { return c.fsm.Users() }

// OpenOptions returns connector options with sealed secrets opened (for
// the executor; nothing that shows options to a person calls it).
func (c *Catalog) OpenOptions(opts map[string]string) (map[string]string, error) {
	return c.keys.OpenOptions(opts)
}

// ---- writes ----

// CreateJob creates a job (state CREATED). Secret options are sealed first.
func (c *Catalog) CreateJob(ctx context.Context, cmd CreateJob) (Result, error) {
	c.stamp(&cmd.Time)
	if c.keys != nil {
		spec, err := c.keys.SealSpec(cmd.Spec, c.secret)
		if err != nil {
			return Result{}, err
		}
		cmd.Spec = spec
	}
	return c.apply(ctx, CmdCreateJob, &cmd)
}

// DropJob removes a job.
func (c *Catalog) DropJob(ctx context.Context, cmd DropJob) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdDropJob, &cmd)
}

// SetJobState moves a job between states (compare-and-set on From).
func (c *Catalog) SetJobState(ctx context.Context, cmd SetJobState) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdSetJobState, &cmd)
}

// AlterJob replaces a job's options and plan (compare-and-set on Version).
func (c *Catalog) AlterJob(ctx context.Context, cmd AlterJob) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdAlterJob, &cmd)
}

// AddEvent appends to the event log.
func (c *Catalog) AddEvent(ctx context.Context, e Event) error {
	c.stamp(&e.Time)
	_, err := c.apply(ctx, CmdAppendEvent, &AppendEvent{Event: e})
	return err
}

// RegisterNode records a node's addresses and capacity.
func (c *Catalog) RegisterNode(ctx context.Context, n Node) error {
	c.stamp(&n.RegisteredAt)
	_, err := c.apply(ctx, CmdRegisterNode, &RegisterNode{Node: n})
	return err
}

// RemoveNode deletes a node's record.
func (c *Catalog) RemoveNode(ctx context.Context, id string) error {
	cmd := RemoveNode{ID: id}
	c.stamp(&cmd.Time)
	_, err := c.apply(ctx, CmdRemoveNode, &cmd)
	return err
}

// SetNodeStatus records a node's liveness change.
func (c *Catalog) SetNodeStatus(ctx context.Context, cmd SetNodeStatus) error {
	c.stamp(&cmd.Time)
	_, err := c.apply(ctx, CmdSetNodeStatus, &cmd)
	return err
}

// SetUsers replaces the user tables (compare-and-set on Base) and returns
// their new version.
func (c *Catalog) SetUsers(ctx context.Context, data []byte, base uint64) (uint64, error) {
	cmd := SetUsers{Data: data, Base: base}
	c.stamp(&cmd.Time)
	r, err := c.apply(ctx, CmdSetUsers, &cmd)
	return r.Index, err
}

// CommitCheckpoint records a completed checkpoint (see the command).
func (c *Catalog) CommitCheckpoint(ctx context.Context, cmd CommitCheckpoint) error {
	c.stamp(&cmd.Checkpoint.CompletedAt)
	_, err := c.apply(ctx, CmdCommitCheckpoint, &cmd)
	return err
}

// FailCheckpoint records a failed or timed-out checkpoint.
func (c *Catalog) FailCheckpoint(ctx context.Context, cmd FailCheckpoint) error {
	c.stamp(&cmd.Checkpoint.CompletedAt)
	_, err := c.apply(ctx, CmdFailCheckpoint, &cmd)
	return err
}
