package models

import (
	"testing"
	"time"
)

func anomalyAt(at time.Duration, entity, tree, series string, score float64) Anomaly {
	return Anomaly{
		Entity: entity, Tree: tree, Series: series, Detector: "numeric/spike",
		Score: score, Severity: SeverityForScore(score),
		Start: t0.Add(at), End: t0.Add(at),
	}
}

func TestCorrelatorBurstIsOneIncident(t *testing.T) {
	c := NewCorrelator(CorrelatorOptions{})
	ids := map[uint64]bool{}
	updates := 0
	for i := range 50 {
		// Two containers in one process tree, five signals, repeated.
		entity := []string{"web-1", "web-2"}[i%2]
		series := []string{"cpu", "latency", "rss", "errors", "retrans"}[i%5]
		at := time.Duration(i) * 10 * time.Second
		for _, u := range c.Observe(anomalyAt(at, entity, "tree-7", series, 0.6), t0.Add(at)) {
			ids[u.Incident.ID] = true
			updates++
		}
	}
	if len(ids) != 1 {
		t.Fatalf("50 related anomalies made %d incidents, want 1", len(ids))
	}
	open := c.Open()
	if len(open) != 1 || open[0].Count != 50 || len(open[0].Anomalies) != 10 || len(open[0].Entities) != 2 {
		t.Fatalf("incident = %+v", open)
	}
	if updates > 12 {
		t.Errorf("%d updates published for one incident; duplicates should be quiet", updates)
	}
	if open[0].Severity != SeverityHigh {
		t.Errorf("severity %v, want high (medium anomalies, 10 distinct signals)", open[0].Severity)
	}
}

func TestCorrelatorSeparatesUnrelated(t *testing.T) {
	c := NewCorrelator(CorrelatorOptions{Gap: time.Minute})
	c.Observe(anomalyAt(0, "a", "", "cpu", 0.6), t0)
	c.Observe(anomalyAt(0, "b", "", "cpu", 0.6), t0)              // other entity
	c.Observe(anomalyAt(10*time.Minute, "a", "", "cpu", 0.6), t0) // same entity, too late
	if n := len(c.Open()); n != 3 {
		t.Errorf("%d incidents, want 3", n)
	}
}

// TestCorrelatorCovers: Covers says whether an anomaly would join an
// incident already held, without changing anything.
func TestCorrelatorCovers(t *testing.T) {
	c := NewCorrelator(CorrelatorOptions{Gap: time.Minute})
	c.Observe(anomalyAt(0, "a", "tree-1", "cpu", 0.6), t0)
	for _, tc := range []struct {
		a    Anomaly
		want bool
	}{
		{anomalyAt(30*time.Second, "b", "tree-1", "rss", 0.6), true}, // same tree, in the gap
		{anomalyAt(30*time.Second, "a", "", "rss", 0.6), false},      // keyed by entity: no incident has it
		{anomalyAt(5*time.Minute, "a", "tree-1", "rss", 0.6), false}, // past the gap
		{anomalyAt(30*time.Second, "a", "tree-2", "rss", 0.6), false},
	} {
		if got := c.Covers(&tc.a, t0); got != tc.want {
			t.Errorf("Covers(%s %s at %v) = %v, want %v", tc.a.Entity, tc.a.Tree, tc.a.Start.Sub(t0), got, tc.want)
		}
	}
	if n := len(c.Open()); n != 1 || c.Open()[0].Count != 1 {
		t.Errorf("Covers changed the incidents: %+v", c.Open())
	}
}

func TestCorrelatorResolveAndFlap(t *testing.T) {
	c := NewCorrelator(CorrelatorOptions{Gap: time.Minute, ResolveAfter: 10 * time.Minute, FlapWindow: time.Hour})
	first := c.Observe(anomalyAt(0, "db", "", "latency", 0.7), t0)
	if len(first) != 1 || first[0].Kind != IncidentOpened {
		t.Fatalf("first update %+v", first)
	}
	id := first[0].Incident.ID
	if u := c.Tick(t0.Add(5 * time.Minute)); len(u) != 0 {
		t.Fatalf("resolved too early: %+v", u)
	}
	u := c.Tick(t0.Add(10 * time.Minute))
	if len(u) != 1 || u[0].Kind != IncidentClosed || u[0].Incident.State != IncidentResolved {
		t.Fatalf("want one resolution, got %+v", u)
	}
	// It flaps: the same entity again soon after reopens the same incident.
	u = c.Observe(anomalyAt(20*time.Minute, "db", "", "latency", 0.7), t0.Add(20*time.Minute))
	if len(u) != 1 || u[0].Kind != IncidentReopened || u[0].Incident.ID != id || u[0].Incident.Flaps != 1 {
		t.Fatalf("flap: %+v", u)
	}
	// A flapping incident needs twice the quiet time to resolve again.
	if u := c.Tick(t0.Add(30 * time.Minute)); len(u) != 0 {
		t.Fatalf("flapping incident resolved after the normal quiet time: %+v", u)
	}
	if u := c.Tick(t0.Add(40 * time.Minute)); len(u) != 1 {
		t.Fatalf("flapping incident did not resolve after twice the quiet time: %+v", u)
	}
	// Long after the flap window, the same entity opens a new incident.
	c.Tick(t0.Add(3 * time.Hour))
	u = c.Observe(anomalyAt(3*time.Hour, "db", "", "latency", 0.7), t0.Add(3*time.Hour))
	if len(u) != 1 || u[0].Kind != IncidentOpened || u[0].Incident.ID == id {
		t.Fatalf("after the flap window: %+v", u)
	}
}

func TestCorrelatorBounded(t *testing.T) {
	c := NewCorrelator(CorrelatorOptions{MaxIncidents: 10, MaxEvidence: 3})
	for i := range 100 {
		c.Observe(anomalyAt(0, "e"+itoa(i), "", "cpu", 0.5), t0)
	}
	if len(c.all) != 10 || len(c.byKey) != 10 {
		t.Errorf("holding %d incidents, %d keys; want 10, 10", len(c.all), len(c.byKey))
	}
	for i := range 10 {
		c.Observe(anomalyAt(0, "x", "", "s"+itoa(i), 0.5), t0)
	}
	for _, inc := range c.Open() {
		if len(inc.Anomalies) > 3 {
			t.Errorf("incident keeps %d anomalies, max 3", len(inc.Anomalies))
		}
	}
}
