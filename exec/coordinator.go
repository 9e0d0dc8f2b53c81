package exec

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"sluice/catalog"
)

// The coordinator runs on the leader only. It decides where and when a
// job's next attempt runs and writes that to the catalog as one command (a
// new attempt with its placement); it never runs a task. Workers — every
// node, the leader included — run exactly what the catalog places on them
// (worker.go). The narrow interface between the two rooms is the catalog:
// the job's state, attempt and placement, and the nodes' records.
//
// A job's tasks spread over the nodes by free slots; a pipeline's
// checkpoints are coordinated on the node of its subtask 0 (remote.go).

// schedule makes the placement decisions for every job (leader only).
func (e *Engine) schedule(ctx context.Context) {
	jobs := e.cat.Jobs()
	nodes := e.cat.Nodes()
	seen := map[uint64]bool{}
	for _, job := range jobs {
		seen[job.ID] = true
		e.scheduleJob(ctx, job, jobs, nodes)
	}
	for id := range e.waiting {
		if !seen[id] {
			delete(e.waiting, id)
		}
	}
}

func (e *Engine) scheduleJob(ctx context.Context, job catalog.Job, jobs []catalog.Job, nodes []catalog.Node) {
	switch job.State {
	case catalog.Created, catalog.Scheduled:
	case catalog.Restarting:
		if time.Now().Before(job.UpdatedAt.Add(e.checkpointConfig(job.Spec).retryInterval)) {
			return // the resync tick comes back
		}
	case catalog.Running:
		if why := e.placementLost(job, nodes); why != "" {
			e.place(ctx, job, jobs, nodes, why)
		}
		return
	default:
		return
	}
	e.place(ctx, job, jobs, nodes, "")
}

// placementLost says why a running job's placement no longer holds (""
// when it does): no placement (a run started by an older version), a task
// on a node that is gone, DOWN, or restarted since (a new incarnation).
func (e *Engine) placementLost(job catalog.Job, nodes []catalog.Node) string {
	if len(job.Placement) == 0 {
		return "no placement recorded"
	}
	byID := map[string]catalog.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for _, t := range job.Placement {
		n, ok := byID[t.Node]
		switch {
		case !ok:
			return fmt.Sprintf("node %s left the cluster", t.Node)
		case n.Status == catalog.NodeDown:
			return fmt.Sprintf("node %s is DOWN", t.Node)
		case n.Incarnation != t.Incarnation:
			return fmt.Sprintf("node %s restarted", t.Node)
		}
	}
	return ""
}

// place chooses a node for the job's next attempt and records it.
func (e *Engine) place(ctx context.Context, job catalog.Job, jobs []catalog.Job, nodes []catalog.Node, why string) {
	placement, detail := choosePlacement(job, jobs, nodes)
	if placement == nil {
		if job.Spec.Options["schedule.strategy"] == "reject" {
			e.transition(ctx, job, job.Attempt, []catalog.JobState{job.State}, catalog.Failed,
				detail+" (schedule.strategy=reject)", "")
			return
		}
		if !e.waiting[job.ID] {
			e.waiting[job.ID] = true
			e.event(ctx, job.Name, "WAITING", detail+"; waiting (schedule.strategy=wait)")
		}
		return
	}
	delete(e.waiting, job.ID)
	where := describePlacement(placement)
	if job.State == catalog.Created {
		res, err := e.transition(ctx, job, job.Attempt, []catalog.JobState{catalog.Created}, catalog.Scheduled, "",
			fmt.Sprintf("%d tasks on %s", len(placement), where))
		if err != nil {
			return
		}
		job = *res.Job
	}
	reason := "tasks running on " + where
	if why != "" {
		reason = why + "; tasks moved to " + where
	}
	// A new attempt: from here on, checkpoints and state changes of earlier
	// attempts (a previous process, a failed run, a lost node) are refused.
	actx, cancel := context.WithTimeout(ctx, e.cfg.ApplyTimeout)
	defer cancel()
	if _, err := e.cat.SetJobState(actx, catalog.SetJobState{Name: job.Name, JobID: job.ID,
		From: []catalog.JobState{job.State}, To: catalog.Running, NewAttempt: true, Attempt: catalog.AtAttempt(job.Attempt),
		Placement: placement, Reason: reason}); err != nil {
		e.log.Debug("placing job", "job", job.Name, "err", err)
	}
}

// choosePlacement spreads the tasks of job over the nodes that run tasks,
// are not DOWN, match the job's tags and have a free slot: each task, in
// order, goes to the node with the most free slots left, then the fewest
// tasks (this job's included), then the lowest id — so a job's subtasks
// spread over equal nodes. It returns nil and why when the free slots of
// the fitting nodes are fewer than the job's tasks.
func choosePlacement(job catalog.Job, jobs []catalog.Job, nodes []catalog.Node) ([]catalog.TaskPlacement, string) {
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
			return nil, fmt.Sprintf("needs %d free slots; no node fits (%s)", n, strings.Join(refused, ", "))
		}
		return nil, fmt.Sprintf("needs %d free slots; the fitting nodes have %d (%s)", n, total, strings.Join(refused, ", "))
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
