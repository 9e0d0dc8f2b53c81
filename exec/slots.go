package exec

import "sort"

// slotPool hands out this node's slots. total 0 means dynamic: a slot is
// created for every task that needs one. Callers hold Engine.mu.
type slotPool struct {
	total int
	owner map[int]jobRef // slot → job
}

func newSlotPool(total int) *slotPool { return &slotPool{total: total, owner: map[int]jobRef{}} }

func (p *slotPool) used() int { return len(p.owner) }

// hold marks the given slots (the job's placement on this node) as the job's.
func (p *slotPool) hold(job jobRef, slots []int) {
	for _, id := range slots {
		p.owner[id] = job
	}
}

func (p *slotPool) release(job jobRef) {
	for id, j := range p.owner {
		if j.id == job.id {
			delete(p.owner, id)
		}
	}
}

// jobRef identifies a job by id (names can be reused after DROP).
type jobRef struct {
	id   uint64
	name string
}

type slotInfo struct {
	id  int
	job string
}

func (p *slotPool) list() []slotInfo {
	var out []slotInfo
	if p.total > 0 {
		for id := 0; id < p.total; id++ {
			out = append(out, slotInfo{id: id, job: p.owner[id].name})
		}
		return out
	}
	for id, j := range p.owner {
		out = append(out, slotInfo{id: id, job: j.name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
