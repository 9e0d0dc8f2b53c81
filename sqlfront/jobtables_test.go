package sqlfront

import (
	"testing"
	"time"

	"sluice/catalog"
	"sluice/connectors"
)

func TestLagMs(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	created := ago(3600)
	cases := []struct {
		name string
		in   lagInput
		want int64
	}{
		{"idle and caught up: current", lagInput{state: catalog.Running, phase: connectors.PhaseStreaming, lastEvent: ago(100), visible: ago(2), current: now}, 0},
		{"a change read after the visible checkpoint is pending", lagInput{state: catalog.Running, phase: connectors.PhaseStreaming, lastEvent: ago(1), visible: ago(2), current: now}, 2000},
		{"reader behind the binlog: as current as it has read", lagInput{state: catalog.Running, phase: connectors.PhaseStreaming, lastEvent: ago(90), visible: ago(80), current: ago(60)}, 60000},
		{"no source clock: the visible checkpoint", lagInput{state: catalog.Running, phase: connectors.PhaseStreaming, visible: ago(5)}, 5000},
		{"paused: grows from the visible checkpoint", lagInput{state: catalog.Paused, phase: connectors.PhaseStreaming, lastEvent: ago(100), visible: ago(30), current: now}, 30000},
		{"failed", lagInput{state: catalog.Failed, phase: connectors.PhaseStreaming, visible: ago(7)}, 7000},
		{"restarting", lagInput{state: catalog.Restarting, phase: connectors.PhaseStreaming, visible: ago(9), current: now}, 9000},
		{"no checkpoint yet: since the job was created", lagInput{state: catalog.Paused, phase: connectors.PhaseStreaming}, 3600000},
		{"in its snapshot: since the job was created", lagInput{state: catalog.Running, phase: connectors.PhaseSnapshot, visible: ago(1), current: now}, 3600000},
		{"finished job", lagInput{state: catalog.Finished, phase: connectors.PhaseStreaming, visible: ago(50)}, 0},
		{"table done", lagInput{state: catalog.Running, phase: connectors.PhaseDone, visible: ago(50)}, 0},
		{"clock ahead of now", lagInput{state: catalog.Running, phase: connectors.PhaseStreaming, visible: now.Add(time.Second), current: now.Add(time.Second)}, 0},
	}
	for _, c := range cases {
		c.in.now, c.in.created = now, created
		if got := lagMs(c.in); got != c.want {
			t.Errorf("%s: lag %d ms, want %d", c.name, got, c.want)
		}
	}
}
