package catalog

import (
	"context"
	"fmt"
	"time"
)

// Applier replicates an encoded command and returns the FSM's result for
// it. *raftstore.Store implements it.
type Applier interface {
	Apply(ctx context.Context, cmd []byte) (any, error)
}

// Catalog is the client of the replicated catalog: writes go through Raft,
// reads come from the local FSM (embedded).
type Catalog struct {
	*FSM
	raft Applier
	now  func() time.Time
}

// New returns a catalog client writing through raft and reading fsm.
func New(fsm *FSM, raft Applier) *Catalog {
	return &Catalog{FSM: fsm, raft: raft, now: func() time.Time { return time.Now().UTC() }}
}

// apply proposes a command and unwraps the FSM's answer.
func (c *Catalog) apply(ctx context.Context, t CmdType, cmd any) (Result, error) {
	data, err := encode(t, cmd)
	if err != nil {
		return Result{}, err
	}
	resp, err := c.raft.Apply(ctx, data)
	if err != nil {
		return Result{}, fmt.Errorf("catalog: replicate: %w", err)
	}
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

// CreateJob creates a job (state CREATED).
func (c *Catalog) CreateJob(ctx context.Context, cmd CreateJob) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdCreateJob, cmd)
}

// DropJob removes a job.
func (c *Catalog) DropJob(ctx context.Context, cmd DropJob) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdDropJob, cmd)
}

// SetJobState moves a job between states (compare-and-set on From).
func (c *Catalog) SetJobState(ctx context.Context, cmd SetJobState) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdSetJobState, cmd)
}

// AlterJob replaces a job's options and plan.
func (c *Catalog) AlterJob(ctx context.Context, cmd AlterJob) (Result, error) {
	c.stamp(&cmd.Time)
	return c.apply(ctx, CmdAlterJob, cmd)
}

// AddEvent appends to the event log.
func (c *Catalog) AddEvent(ctx context.Context, e Event) error {
	c.stamp(&e.Time)
	_, err := c.apply(ctx, CmdAppendEvent, AppendEvent{Event: e})
	return err
}

// RegisterNode records this node's addresses and capacity.
func (c *Catalog) RegisterNode(ctx context.Context, n Node) error {
	c.stamp(&n.RegisteredAt)
	_, err := c.apply(ctx, CmdRegisterNode, RegisterNode{Node: n})
	return err
}

// CommitCheckpoint records a completed checkpoint (see the command).
func (c *Catalog) CommitCheckpoint(ctx context.Context, cmd CommitCheckpoint) error {
	c.stamp(&cmd.Checkpoint.CompletedAt)
	_, err := c.apply(ctx, CmdCommitCheckpoint, cmd)
	return err
}

// FailCheckpoint records a failed or timed-out checkpoint.
func (c *Catalog) FailCheckpoint(ctx context.Context, cmd FailCheckpoint) error {
	c.stamp(&cmd.Checkpoint.CompletedAt)
	_, err := c.apply(ctx, CmdFailCheckpoint, cmd)
	return err
}
