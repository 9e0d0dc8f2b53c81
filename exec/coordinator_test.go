package exec

import (
	"strings"
	"testing"

	"sluice/catalog"
)

func placeJob(id uint64, par int, opts map[string]string) catalog.Job {
	return catalog.Job{ID: id, Name: "j", Spec: catalog.JobSpec{Options: opts},
		Plan: catalog.Plan{Pipelines: []catalog.Pipeline{{ID: 1, Parallelism: par}}}}
}

// Placement as data: which node a job's tasks go to, or why none fits.
func TestChoosePlacement(t *testing.T) {
	busy := catalog.Job{ID: 9, Placement: []catalog.TaskPlacement{{Node: "a", Slot: 0}, {Node: "a", Slot: 1}}}
	cases := []struct {
		name  string
		job   catalog.Job
		nodes []catalog.Node
		node  string // "" when none fits
		slots []int
		why   string
	}{
		{"most free slots wins (a has 3 of 5 free)", placeJob(1, 1, nil), []catalog.Node{{ID: "a", Slots: 5}, {ID: "b", Slots: 2}}, "a", []int{2}, ""},
		{"dynamic slots: fewest tasks, then id", placeJob(1, 2, nil), []catalog.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, "b", []int{0, 1}, ""},
		{"a master runs no tasks", placeJob(1, 1, nil), []catalog.Node{{ID: "b", Role: "master"}, {ID: "c"}}, "c", []int{0}, ""},
		{"DOWN nodes are skipped", placeJob(1, 1, nil), []catalog.Node{{ID: "b", Status: catalog.NodeDown}, {ID: "c", Slots: 1}}, "c", []int{0}, ""},
		{"tags must match", placeJob(1, 1, map[string]string{"tags": "zone=b"}), []catalog.Node{{ID: "b", Tags: "zone=a"}, {ID: "c", Tags: "disk=ssd, zone=b"}}, "c", []int{0}, ""},
		{"one node must hold every task", placeJob(1, 3, nil), []catalog.Node{{ID: "a", Slots: 4}, {ID: "b", Slots: 2}}, "", nil, "needs 3 slots on one node; none fits (a 2 free, b 2 free)"},
		{"nothing fits", placeJob(1, 1, map[string]string{"tags": "zone=x"}), []catalog.Node{{ID: "b", Tags: "zone=a"}, {ID: "c", Status: catalog.NodeDown}}, "", nil, "b tags zone=a, c DOWN"},
	}
	for _, c := range cases {
		pl, why := choosePlacement(c.job, []catalog.Job{busy, c.job}, c.nodes)
		if c.node == "" {
			if pl != nil || !strings.Contains(why, c.why) {
				t.Errorf("%s: placed %+v, why %q", c.name, pl, why)
			}
			continue
		}
		var slots []int
		for _, p := range pl {
			if p.Node != c.node {
				t.Errorf("%s: task on %s, want %s", c.name, p.Node, c.node)
			}
			slots = append(slots, p.Slot)
		}
		if len(slots) != len(c.slots) || (len(slots) > 0 && slots[0] != c.slots[0]) {
			t.Errorf("%s: slots %v, want %v", c.name, slots, c.slots)
		}
	}
}
