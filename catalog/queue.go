package catalog

import "sort"

// WaitQueue returns the WAITING jobs in queue order: the longest waiting
// first (by the time they turned WAITING, then by id). The coordinator
// tries them in this order when slots free up; sluice.jobs shows each
// one's position.
func WaitQueue(jobs []Job) []Job {
	var q []Job
	for _, j := range jobs {
		if j.State == Waiting {
			q = append(q, j)
		}
	}
	sort.SliceStable(q, func(a, b int) bool {
		if !q[a].UpdatedAt.Equal(q[b].UpdatedAt) {
			return q[a].UpdatedAt.Before(q[b].UpdatedAt)
		}
		return q[a].ID < q[b].ID
	})
	return q
}

// QueuePositions maps each WAITING job's id to its place in the queue (1 is next).
func QueuePositions(jobs []Job) map[uint64]int {
	out := map[uint64]int{}
	for i, j := range WaitQueue(jobs) {
		out[j.ID] = i + 1
	}
	return out
}
