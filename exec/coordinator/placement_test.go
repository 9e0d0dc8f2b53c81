package coordinator

import (
	"fmt"
	"strings"
	"testing"

	"sluice/catalog"
)

func placeJob(id uint64, par int, opts map[string]string) catalog.Job {
	return catalog.Job{ID: id, Name: "j", Spec: catalog.JobSpec{Options: opts},
		Plan: catalog.Plan{Pipelines: []catalog.Pipeline{{ID: 1, Parallelism: par}}}}
}

// Placement as data: which node and slot each task of a job goes to, or
// why none fits.
func TestChoosePlacement(t *testing.T) {
	busy := catalog.Job{ID: 9, Placement: []catalog.TaskPlacement{{Node: "a", Slot: 0}, {Node: "a", Slot: 1}}}
	cases := []struct {
		name  string
		job   catalog.Job
		nodes []catalog.Node
		want  string // node:slot of each task; "" when none fits
		why   string
	}{
		{"most free slots wins (a has 3 of 5 free)", placeJob(1, 1, nil), []catalog.Node{{ID: "a", Slots: 5}, {ID: "b", Slots: 2}}, "a:2", ""},
		{"dynamic slots: fewest tasks, then id; subtasks spread", placeJob(1, 2, nil), []catalog.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, "b:0 c:0", ""},
		{"subtasks spread over equal nodes", placeJob(1, 3, nil), []catalog.Node{{ID: "x", Slots: 2}, {ID: "y", Slots: 2}, {ID: "z", Slots: 2}}, "x:0 y:0 z:0", ""},
		{"by free slots: the emptier node takes more", placeJob(1, 3, nil), []catalog.Node{{ID: "a", Slots: 4}, {ID: "b", Slots: 4}}, "b:0 b:1 a:2", ""},
		{"a master runs no tasks", placeJob(1, 1, nil), []catalog.Node{{ID: "b", Role: "master"}, {ID: "c"}}, "c:0", ""},
		{"DOWN nodes are skipped", placeJob(1, 1, nil), []catalog.Node{{ID: "b", Status: catalog.NodeDown}, {ID: "c", Slots: 1}}, "c:0", ""},
		{"tags must match", placeJob(1, 1, map[string]string{"tags": "zone=b"}), []catalog.Node{{ID: "b", Tags: "zone=a"}, {ID: "c", Tags: "disk=ssd, zone=b"}}, "c:0", ""},
		{"tags restrict the spread", placeJob(1, 2, map[string]string{"tags": "zone=b"}), []catalog.Node{{ID: "b", Tags: "zone=b"}, {ID: "c", Tags: "zone=a"}, {ID: "d", Tags: "zone=b"}}, "b:0 d:0", ""},
		{"free slots of all fitting nodes count", placeJob(1, 3, nil), []catalog.Node{{ID: "a", Slots: 3}, {ID: "b", Slots: 2}}, "b:0 b:1 a:2", ""},
		{"too few free slots", placeJob(1, 4, nil), []catalog.Node{{ID: "a", Slots: 4}, {ID: "b", Slots: 1}}, "", "needs 4 free slots; the fitting nodes have 3 (a 2 free, b 1 free)"},
		{"nothing fits", placeJob(1, 1, map[string]string{"tags": "zone=x"}), []catalog.Node{{ID: "b", Tags: "zone=a"}, {ID: "c", Status: catalog.NodeDown}}, "", "no node fits (b tags zone=a, c DOWN)"},
	}
	for _, c := range cases {
		pl, why := Choose(c.job, []catalog.Job{busy, c.job}, c.nodes)
		if c.want == "" {
			if pl != nil || !strings.Contains(why, c.why) {
				t.Errorf("%s: placed %+v, why %q", c.name, pl, why)
			}
			continue
		}
		var got []string
		for _, p := range pl {
			got = append(got, fmt.Sprintf("%s:%d", p.Node, p.Slot))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s: placed %v, want %s", c.name, got, c.want)
		}
	}
}
