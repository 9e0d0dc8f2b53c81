package catalog

import "testing"

// A placement is checked inside the state machine: every task once, on a
// registered node, in a slot it has, never a slot another task holds; it
// comes with a new attempt and goes when the job stops.
func TestApplyPlacement(t *testing.T) {
	f := newFixture(t)
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n1", Slots: 2, Incarnation: "x"}})
	f.mustOK(CmdRegisterNode, RegisterNode{Node: Node{ID: "n2", Incarnation: "y"}}) // dynamic slots
	f.mustOK(CmdCreateJob, sampleCreate("a"))                                       // one pipeline, parallelism 2
	f.mustOK(CmdCreateJob, sampleCreate("b"))
	on := func(node string, slots ...int) []TaskPlacement {
		var out []TaskPlacement
		for i, s := range slots {
			out = append(out, TaskPlacement{Pipeline: 1, Subtask: i, Node: node, Slot: s})
		}
		return out
	}
	start := func(job string, pl []TaskPlacement) SetJobState {
		return SetJobState{Name: job, To: Running, NewAttempt: true, Placement: pl, Time: t0}
	}
	for name, pl := range map[string][]TaskPlacement{
		"a missing task":         on("n1", 0),
		"a task twice":           append(on("n1", 0, 1), TaskPlacement{Pipeline: 1, Subtask: 1, Node: "n1", Slot: 1}),
		"an unknown node":        on("n9", 0, 1),
		"a slot the node lacks":  on("n1", 0, 2),
		"one slot for two tasks": on("n1", 1, 1),
		"a pipeline it lacks":    {{Pipeline: 2, Subtask: 0, Node: "n1"}, {Pipeline: 1, Subtask: 1, Node: "n1", Slot: 1}},
	} {
		t.Run(name, func(t *testing.T) { f.t = t; f.mustErr(CmdSetJobState, start("a", pl), ErrBadPlacement) })
	}
	f.t = t
	f.mustErr(CmdSetJobState, SetJobState{Name: "a", To: Running, Placement: on("n1", 0, 1), Time: t0}, ErrBadPlacement)
	a := f.mustOK(CmdSetJobState, start("a", on("n1", 0, 1))).Job
	if len(a.Placement) != 2 {
		t.Fatalf("placement %+v", a.Placement)
	}
	// Invariant: no two tasks in one slot, across jobs.
	f.mustErr(CmdSetJobState, start("b", on("n1", 1, 0)), ErrBadPlacement)
	f.mustOK(CmdSetJobState, start("b", on("n2", 0, 7)))
	// A new placement of a replaces its own; stopping frees the slots.
	f.mustOK(CmdSetJobState, start("a", on("n1", 1, 0)))
	p := f.mustOK(CmdSetJobState, SetJobState{Name: "a", To: Paused, Time: t0}).Job
	if p.Placement != nil {
		t.Fatal("a paused job keeps its slots")
	}
	f.mustOK(CmdSetJobState, start("b", on("n1", 0, 1)))
	// A new attempt without a placement has none.
	if j := f.mustOK(CmdSetJobState, SetJobState{Name: "b", To: Running, NewAttempt: true, Time: t0}).Job; j.Placement != nil {
		t.Fatal("an unplaced attempt kept the old placement")
	}
}
