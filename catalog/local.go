package catalog

import (
	"context"
	"sync"

	"github.com/hashicorp/raft"
)

// local applies commands straight to an FSM, in order, numbering entries
// like a Raft log. It replicates nothing and persists nothing.
type local struct {
	mu    sync.Mutex
	fsm   *FSM
	index uint64
}

func (l *local) Apply(ctx context.Context, cmd []byte) (any, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index++
	return l.fsm.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: cmd}), l.index, nil
}

// NewLocal returns a catalog without replication or persistence, for tests
// and benchmarks of the layers above. A server always runs on Raft.
func NewLocal() *Catalog {
	fsm := NewFSM()
	return New(fsm, &local{fsm: fsm})
}
