package detect

import (
	"testing"
	"time"

	"github.com/vigil-dev/vigil/models"
	"github.com/vigil-dev/vigil/ui"
)

// TestSinkPublishOnly: without a database the sink still publishes, keeps
// no queue, and closes twice without harm.
func TestSinkPublishOnly(t *testing.T) {
	pub := &hub{}
	s := NewSink(SinkOptions{Publisher: pub})
	s.Anomaly(Detection{ID: "a", IncidentID: "i", Entity: Entity{Kind: "comm", Name: "curl", Host: "web-1"},
		Anomaly: models.Anomaly{Series: "destination", Detector: "novelty/destination/novel", Value: "10.0.0.7:4444", End: t0}})
	s.Incident(IncidentEvent{ID: "i", Incident: models.Incident{Title: "t", Opened: t0}, AnomalyIDs: []string{"a"}, Hosts: []string{"web-1"}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a := pub.get("anomaly")
	if len(a) != 1 {
		t.Fatalf("published %v", a)
	}
	if got := a[0].(ui.Anomaly); got.Process != "curl" || got.Summary != "new destination on comm curl: 10.0.0.7:4444" || got.SQL == "" {
		t.Errorf("anomaly %+v", got)
	}
	if inc := pub.get("incident"); len(inc) != 1 || inc[0].(ui.Incident).Anomalies != 1 {
		t.Errorf("incident %+v", inc)
	}
}

// TestSummaryCoalescing: repeated requests for one incident make one
// pending summary, a recently summarized incident waits its interval, and
// the pending set is bounded.
func TestSummaryCoalescing(t *testing.T) {
	// No goroutines: the queue is driven by hand.
	s := &Sink{o: SinkOptions{SummaryInterval: time.Hour, SummaryDelay: -1, MaxPendingSummaries: 2}.withDefaults(),
		pending: map[string]time.Time{}, lastSummary: map[string]time.Time{"b": time.Now()}, wake: make(chan struct{}, 1)}
	for range 5 {
		s.requestSummary("a")
	}
	s.requestSummary("b")
	s.requestSummary("c")
	if len(s.pending) != 2 || s.dropped.Load() != 1 {
		t.Fatalf("pending %v, dropped %d; want a and b, c dropped", s.pending, s.dropped.Load())
	}
	id, _, ok := s.next()
	if !ok || id != "a" {
		t.Fatalf("next = %q, %v; want a", id, ok)
	}
	if _, wait, ok := s.next(); ok || wait < 50*time.Minute {
		t.Errorf("b due in %v (ok %v), want about the summary interval", wait, ok)
	}

	// A new incident's first summary waits for its events to land.
	s = &Sink{o: SinkOptions{SummaryDelay: time.Minute}.withDefaults(),
		pending: map[string]time.Time{}, lastSummary: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	s.requestSummary("new")
	if _, wait, ok := s.next(); ok || wait < 50*time.Second {
		t.Errorf("first summary due in %v (ok %v), want about the delay", wait, ok)
	}
}
