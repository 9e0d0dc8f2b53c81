package coordinator

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"sluice/catalog"
)

// ErrNoSlots: no nodes have the free slots a job needs.
var ErrNoSlots = errors.New("not enough free slots")

// Check says whether a new job fits now, for a CREATE with
// schedule.strategy=reject to be refused at once (the coordinator decides
// again when it places the job).
func Check(job catalog.Job, jobs []catalog.Job, nodes []catalog.Node) error {
	if pl, why := Choose(job, jobs, nodes); pl == nil {
		return fmt.Errorf("%w: %s (schedule.strategy=reject)", ErrNoSlots, why)
	}
	return nil
}

// Choose spreads the tasks of job over the nodes that run tasks,
// are not DOWN, match the job's tags and have a free slot: each task, in
// order, goes to the node with the most free slots left, then the fewest
// tasks (this job's included), then the lowest id — so a job's subtasks
// spread over equal nodes. It returns nil and why when the free slots of
// the fitting nodes are fewer than the job's tasks.
func Choose(job catalog.Job, jobs []catalog.Job, nodes []catalog.Node) ([]catalog.TaskPlacement, string) {
	n := 0
	for _, p := range job.Plan.Pipelines {
		n += p.Parallelism
	}
	used := map[string]map[int]bool{}
	for _, o := range jobs {
		if o.ID == job.ID {
			continue
		}
		for _, t := range o.Placement {
			if used[t.Node] == nil {
				used[t.Node] = map[int]bool{}
			}
			used[t.Node][t.Slot] = true
		}
	}
	want := parseTags(job.Spec.Options["tags"])
	type cand struct {
		node       catalog.Node
		free, load int
		next       int // the lowest slot not checked yet
	}
	var cands []*cand
	var refused []string
	total := 0
	for _, nd := range nodes {
		switch {
		case nd.Role == "master":
			refused = append(refused, nd.ID+" master (runs no tasks)")
			continue
		case nd.Status == catalog.NodeDown:
			refused = append(refused, nd.ID+" DOWN")
			continue
		case !tagsMatch(want, parseTags(nd.Tags)):
			refused = append(refused, nd.ID+" tags "+orNone(nd.Tags))
			continue
		}
		free := 1 << 30
		if nd.Slots > 0 {
			free = nd.Slots - len(used[nd.ID])
		}
		if free <= 0 {
			refused = append(refused, nd.ID+" 0 free")
			continue
		}
		refused = append(refused, fmt.Sprintf("%s %d free", nd.ID, free))
		total += free
		cands = append(cands, &cand{node: nd, free: free, load: len(used[nd.ID])})
	}
	if total < n {
		if len(cands) == 0 {
			return nil, fmt.Sprintf("needs %s; no node fits (%s)", slots(n), strings.Join(refused, ", "))
		}
		return nil, fmt.Sprintf("needs %s; the fitting nodes have %d (%s)", slots(n), total, strings.Join(refused, ", "))
	}
	var out []catalog.TaskPlacement
	for _, p := range job.Plan.Pipelines {
		for s := 0; s < p.Parallelism; s++ {
			sort.Slice(cands, func(i, k int) bool {
				a, b := cands[i], cands[k]
				if (a.free > 0) != (b.free > 0) {
					return a.free > 0
				}
				if a.free != b.free {
					return a.free > b.free
				}
				if a.load != b.load {
					return a.load < b.load
				}
				return a.node.ID < b.node.ID
			})
			c := cands[0]
			for used[c.node.ID][c.next] {
				c.next++
			}
			out = append(out, catalog.TaskPlacement{Pipeline: p.ID, Subtask: s, Node: c.node.ID, Slot: c.next, Incarnation: c.node.Incarnation})
			c.next++
			c.free--
			c.load++
		}
	}
	return out, ""
}

// parseTags reads "k=v,k2=v2".
func parseTags(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k != "" {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func tagsMatch(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// describePlacement says where tasks run: "node a" or "nodes a (2), b (1)".
func describePlacement(pl []catalog.TaskPlacement) string {
	count := map[string]int{}
	var order []string
	for _, t := range pl {
		if count[t.Node] == 0 {
			order = append(order, t.Node)
		}
		count[t.Node]++
	}
	if len(order) == 1 {
		return "node " + order[0]
	}
	parts := make([]string, len(order))
	for i, n := range order {
		parts[i] = fmt.Sprintf("%s (%d)", n, count[n])
	}
	return "nodes " + strings.Join(parts, ", ")
}

func slots(n int) string {
	if n == 1 {
		return "1 free slot"
	}
	return fmt.Sprintf("%d free slots", n)
}
