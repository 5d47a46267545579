package models

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// checkpointedCorrelator has an open incident spanning two entities in one
// tree, a resolved one that flapped, and a key ("e\x00db") that a newer
// incident took over from an older one still open.
func checkpointedCorrelator(t *testing.T) *Correlator {
	t.Helper()
	c := NewCorrelator(CorrelatorOptions{Gap: time.Minute, ResolveAfter: 10 * time.Minute, FlapWindow: time.Hour})
	web := anomalyAt(0, "web-1", "tree-7", "cpu", 0.6)
	web.Value, web.EventIDs = "x", []uint64{1, 2, 3}
	c.Observe(web, t0)
	c.Observe(anomalyAt(10*time.Second, "web-2", "tree-7", "rss", 0.9), t0.Add(10*time.Second))
	c.Observe(anomalyAt(0, "cache", "", "latency", 0.7), t0)
	c.Tick(t0.Add(11 * time.Minute))                                                          // cache resolves; web is quiet for 10m50s and resolves too
	c.Observe(anomalyAt(12*time.Minute, "cache", "", "latency", 0.7), t0.Add(12*time.Minute)) // cache flaps
	c.Tick(t0.Add(40 * time.Minute))                                                          // cache resolves again
	c.Observe(anomalyAt(41*time.Minute, "db", "", "errors", 0.8), t0.Add(41*time.Minute))
	c.Observe(anomalyAt(43*time.Minute, "db", "", "errors", 0.8), t0.Add(43*time.Minute)) // past Gap: a new incident takes "db"
	return c
}

func incidents(c *Correlator) map[uint64]Incident {
	out := map[uint64]Incident{}
	for id, inc := range c.all {
		out[id] = snapshot(inc)
	}
	return out
}

func TestCorrelatorCheckpointRoundTrip(t *testing.T) {
	c := checkpointedCorrelator(t)
	data, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := NewCorrelator(c.o)
	if err := r.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(incidents(r), incidents(c)) {
		t.Fatalf("restored incidents\n%+v\nwant\n%+v", incidents(r), incidents(c))
	}
	if r.nextID != c.nextID || len(r.byKey) != len(c.byKey) {
		t.Fatalf("next id %d, %d keys; want %d, %d", r.nextID, len(r.byKey), c.nextID, len(c.byKey))
	}
	for k, inc := range c.byKey {
		if r.byKey[k] == nil || r.byKey[k].ID != inc.ID {
			t.Errorf("key %q finds %v, want incident %d", k, r.byKey[k], inc.ID)
		}
	}
	again, _ := r.MarshalBinary()
	if !bytes.Equal(again, data) {
		t.Error("a restored correlator checkpoints differently")
	}

	// The restored correlator carries on where the old one stopped, with
	// the same ids and without reusing one.
	db := c.byKey["e\x00db"].ID
	steps := []struct {
		name string
		a    Anomaly
		at   time.Duration
		kind UpdateKind
		id   uint64 // 0: a new one
	}{
		{"related joins", anomalyAt(43*time.Minute+30*time.Second, "db", "", "cpu", 0.8), 44 * time.Minute, IncidentUpdated, db},
		{"resolved flaps", anomalyAt(44*time.Minute, "cache", "", "rss", 0.7), 44 * time.Minute, IncidentReopened, 2},
		{"unrelated opens", anomalyAt(44*time.Minute, "new", "", "cpu", 0.7), 44 * time.Minute, IncidentOpened, 0},
	}
	for _, s := range steps {
		for _, m := range []*Correlator{c, r} {
			u := m.Observe(s.a, t0.Add(s.at))
			if len(u) != 1 || u[0].Kind != s.kind || (s.id != 0 && u[0].Incident.ID != s.id) {
				t.Fatalf("%s: updates %+v, want %v of %d", s.name, u, s.kind, s.id)
			}
			if s.id == 0 && u[0].Incident.ID != c.nextID {
				t.Errorf("%s: new incident %d, want %d", s.name, u[0].Incident.ID, c.nextID)
			}
		}
	}
	// Both resolve the same incidents at the same time.
	end := t0.Add(2 * time.Hour)
	if a, b := c.Tick(end), r.Tick(end); !reflect.DeepEqual(a, b) || len(a) == 0 {
		t.Errorf("ticks differ:\n%+v\n%+v", a, b)
	}
}

// TestCorrelatorCheckpointRefused: checkpoints the correlator could not
// have written are refused with ErrCheckpoint, leaving it as it was.
func TestCorrelatorCheckpointRefused(t *testing.T) {
	mutated := func(f func(c *Correlator)) []byte {
		c := checkpointedCorrelator(t)
		f(c)
		b, _ := c.MarshalBinary()
		return b
	}
	good := mutated(func(*Correlator) {})
	cases := map[string][]byte{
		"empty":          nil,
		"other magic":    append([]byte("VGC0"), good[4:]...),
		"trailing byte":  append(good[:len(good):len(good)], 0),
		"huge count":     []byte(correlatorMagic + "\x05\xff\xff\xff\xff\x0f"),
		"id past next":   mutated(func(c *Correlator) { c.nextID = 2 }),
		"id zero":        mutated(func(c *Correlator) { c.all[1].ID = 0 }),
		"state":          mutated(func(c *Correlator) { c.all[1].State = 5 }),
		"open, resolved": mutated(func(c *Correlator) { c.all[4].Resolved = t0 }),
		"severity":       mutated(func(c *Correlator) { c.all[1].Severity = 9 }),
		"nan score":      mutated(func(c *Correlator) { c.all[1].Anomalies[0].Score = math.NaN() }),
		"empty entity":   mutated(func(c *Correlator) { c.all[1].Entities = append(c.all[1].Entities, "") }),
		"repeated tree":  mutated(func(c *Correlator) { c.all[1].Trees = append(c.all[1].Trees, "tree-7") }),
		"foreign key":    mutated(func(c *Correlator) { c.byKey["e\x00cache"] = c.all[1] }),
		"key of nothing": mutated(func(c *Correlator) { c.all[1].keys = append(c.all[1].keys, "e\x00nope") }),
		"repeated key":   mutated(func(c *Correlator) { c.all[1].keys = append(c.all[1].keys, c.all[1].keys[0]) }),
		"negative flaps": mutated(func(c *Correlator) { c.all[2].Flaps = -1 }),
	}
	for i := len(correlatorMagic); i < len(good); i++ {
		cases["truncated at "+itoa(i)] = good[:i]
	}
	for name, data := range cases {
		c := checkpointedCorrelator(t)
		before := incidents(c)
		if err := c.UnmarshalBinary(data); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: err %v, want ErrCheckpoint", name, err)
		}
		if !reflect.DeepEqual(incidents(c), before) {
			t.Errorf("%s: a refused checkpoint changed the correlator", name)
		}
	}
}

// TestCorrelatorCheckpointBounds: a correlator restored with smaller bounds
// than the one that wrote the checkpoint keeps within them.
func TestCorrelatorCheckpointBounds(t *testing.T) {
	c := NewCorrelator(CorrelatorOptions{})
	for i := range 50 {
		a := anomalyAt(time.Duration(i)*time.Second, "e"+itoa(i%10), "", "s"+itoa(i), 0.6)
		a.EventIDs = make([]uint64, 40)
		c.Observe(a, t0.Add(time.Duration(i)*time.Second))
	}
	data, _ := c.MarshalBinary()
	r := NewCorrelator(CorrelatorOptions{MaxIncidents: 3, MaxEvidence: 2})
	if err := r.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if len(r.all) != 3 || len(r.byKey) != 3 {
		t.Errorf("%d incidents, %d keys; want 3, 3", len(r.all), len(r.byKey))
	}
	for _, inc := range r.all {
		if len(inc.Anomalies) != 2 || len(inc.Anomalies[0].EventIDs) != maxEventIDs {
			t.Errorf("incident %d: %d anomalies, %d event ids", inc.ID, len(inc.Anomalies), len(inc.Anomalies[0].EventIDs))
		}
	}
}

// checkCorrelator fails t if c's maps disagree or exceed its bounds.
func checkCorrelator(t *testing.T, c *Correlator) {
	t.Helper()
	if len(c.all) > c.o.MaxIncidents {
		t.Fatalf("%d incidents, max %d", len(c.all), c.o.MaxIncidents)
	}
	for id, inc := range c.all {
		if inc.ID != id || id > c.nextID || len(inc.Anomalies) > c.o.MaxEvidence {
			t.Fatalf("incident %d under %d, next %d, %d anomalies", inc.ID, id, c.nextID, len(inc.Anomalies))
		}
	}
	for k, inc := range c.byKey {
		if c.all[inc.ID] != inc {
			t.Fatalf("key %q finds a forgotten incident", k)
		}
	}
}

func FuzzCorrelatorUnmarshal(f *testing.F) {
	c := NewCorrelator(CorrelatorOptions{})
	c.Observe(anomalyAt(0, "web", "tree", "cpu", 0.6), t0)
	c.Observe(anomalyAt(0, "db", "", "rss", 0.9), t0)
	c.Tick(t0.Add(time.Hour))
	c.Observe(anomalyAt(time.Hour, "db", "", "rss", 0.9), t0.Add(time.Hour))
	good, _ := c.MarshalBinary()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(correlatorMagic + "\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewCorrelator(CorrelatorOptions{MaxIncidents: 4, MaxEvidence: 4})
		if err := c.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("error %v is not ErrCheckpoint", err)
			}
			return
		}
		checkCorrelator(t, c)
		// What it accepted, it writes back and reads again the same.
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		r := NewCorrelator(c.o)
		if err := r.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-reading its own checkpoint: %v", err)
		}
		if !reflect.DeepEqual(incidents(r), incidents(c)) {
			t.Fatal("checkpoint does not round-trip")
		}
		// And it still works.
		for i := range 8 {
			at := t0.Add(time.Duration(i) * time.Hour)
			c.Observe(anomalyAt(time.Duration(i)*time.Hour, "web", "tree", "cpu", 0.6), at)
			c.Tick(at)
			_ = c.Open()
		}
		checkCorrelator(t, c)
	})
}
