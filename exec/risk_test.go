package exec

import (
	"testing"
	"time"
)

func TestRiskLevel(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		name string
		r    RiskRow
		want string
	}{
		{"purged", RiskRow{Purged: true, Retention: day}, RiskCritical},
		{"no time-based expiry", RiskRow{}, RiskOK},
		{"check failed", RiskRow{Error: "unreachable", Retention: day, PurgeAt: now}, RiskOK},
		{"whole retention ahead", RiskRow{Retention: day, PurgeAt: now.Add(day)}, RiskOK},
		{"just over half left", RiskRow{Retention: day, PurgeAt: now.Add(day/2 + time.Minute)}, RiskOK},
		{"under half left", RiskRow{Retention: day, PurgeAt: now.Add(day/2 - time.Minute)}, RiskWarn},
		{"just over a tenth left", RiskRow{Retention: day, PurgeAt: now.Add(day/10 + time.Minute)}, RiskWarn},
		{"under a tenth left", RiskRow{Retention: day, PurgeAt: now.Add(day/10 - time.Minute)}, RiskCritical},
		{"past due, not purged yet", RiskRow{Retention: day, PurgeAt: now.Add(-time.Minute)}, RiskCritical},
	} {
		if got := c.r.Level(now); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestMergeRisksTakesTheNewestCheck(t *testing.T) {
	t0 := time.Now()
	old := RiskRow{Job: "a", JobID: 1, Server: "former leader", CheckedAt: t0}
	cur := RiskRow{Job: "a", JobID: 1, Server: "leader", CheckedAt: t0.Add(time.Second)}
	other := RiskRow{Job: "b", JobID: 2, CheckedAt: t0}
	got := MergeRisks([]RiskRow{old, other}, []RiskRow{cur})
	if len(got) != 2 || got[0].Server != "leader" || got[1].Job != "b" {
		t.Fatalf("merged %+v", got)
	}
}
