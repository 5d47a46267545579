package models

import (
	"testing"
	"time"
)

func TestNovelty(t *testing.T) {
	type step struct {
		after  time.Duration // since t0
		entity string
		kind   Kind
		value  string
		want   bool    // an anomaly is expected
		score  float64 // if > 0, the expected score
	}
	tests := []struct {
		name  string
		opts  NoveltyOptions
		steps []step
	}{
		{"learning period is silent", NoveltyOptions{}, []step{
			{0, "web", KindExecPair, "nginx -> nginx", false, 0},
			{30 * time.Minute, "web", KindExecPair, "nginx -> sh", false, 0},
			{2 * time.Hour, "web", KindExecPair, "nginx -> sh", false, 0},
			{2 * time.Hour, "web", KindExecPair, "nginx -> nginx", false, 0},
		}},
		{"novel after learning, then known", NoveltyOptions{}, []step{
			{0, "web", KindExecPair, "nginx -> nginx", false, 0},
			{2 * time.Hour, "web", KindExecPair, "nginx -> sh", true, 0.85},
			{2*time.Hour + time.Second, "web", KindExecPair, "nginx -> sh", false, 0},
		}},
		{"baselines are per entity and kind", NoveltyOptions{}, []step{
			{0, "a", KindBinary, "/bin/sh", false, 0},
			{0, "b", KindBinary, "/bin/true", false, 0},
			{0, "a", KindDestination, "x", false, 0},
			{2 * time.Hour, "b", KindBinary, "/bin/sh", true, 0.7},
			{2 * time.Hour, "a", KindDestination, "/bin/sh", true, 0.6},
		}},
		{"the first privilege change on a learned host is news", NoveltyOptions{}, []step{
			{0, "h", KindBinary, "/bin/sh", false, 0},
			{2 * time.Hour, "h", KindPrivChange, "x setuid euid 0->65534", true, 0.9},
		}},
		{"fleet-common value scores lower", NoveltyOptions{FleetCommon: 2}, []step{
			{0, "a", KindBinary, "/usr/bin/curl", false, 0},
			{0, "b", KindBinary, "/usr/bin/curl", false, 0},
			{0, "c", KindBinary, "/bin/ls", false, 0},
			{2 * time.Hour, "c", KindBinary, "/usr/bin/curl", true, 0.35},
		}},
		{"decay forgets", NoveltyOptions{HalfLife: time.Hour}, []step{
			{0, "a", KindDestination, "10.0.0.1:443", false, 0},
			{2 * time.Hour, "a", KindDestination, "10.0.0.1:443", false, 0},
			{20 * time.Hour, "a", KindDestination, "10.0.0.1:443", true, 0.6},
		}},
		{"rare privilege change", NoveltyOptions{}, []step{
			{0, "a", KindPrivChange, "uid 1000 -> 0 by sudo", false, 0},
			{2 * time.Hour, "a", KindPrivChange, "uid 1000 -> 0 by sudo", true, 0},
			{2 * time.Hour, "a", KindPrivChange, "uid 1000 -> 0 by sudo", false, 0}, // weight now >= Rare
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNovelty(tt.opts)
			for i, s := range tt.steps {
				a, ok := n.Observe(Event{Time: t0.Add(s.after), Entity: s.entity, Kind: s.kind, Value: s.value, EventID: uint64(i + 1)})
				if ok != s.want {
					t.Fatalf("step %d (%s %s): anomaly = %v, want %v (%+v)", i, s.entity, s.value, ok, s.want, a)
				}
				if ok && s.score > 0 && (a.Score < s.score-1e-9 || a.Score > s.score+1e-9) {
					t.Errorf("step %d: score %.3f, want %.3f", i, a.Score, s.score)
				}
				if ok && (a.Value != s.value || a.Entity != s.entity || len(a.EventIDs) != 1 || a.Detector == "") {
					t.Errorf("step %d: evidence %+v", i, a)
				}
			}
		})
	}
}

func TestNoveltyBounds(t *testing.T) {
	n := NewNovelty(NoveltyOptions{MaxValues: 8, MaxEntities: 4})
	for e := range 10 {
		for v := range 20 {
			n.Observe(Event{Time: t0, Entity: "e" + itoa(e), Kind: KindBinary, Value: "v" + itoa(v)})
		}
	}
	if n.Baselines() != 4 {
		t.Errorf("baselines = %d, want 4", n.Baselines())
	}
	total := 0
	for _, b := range n.bases {
		if b != nil {
			if len(b.Values) > 8 {
				t.Errorf("baseline %v holds %d values, max 8", b.Key, len(b.Values))
			}
			total += len(b.Values)
		}
	}
	fleet := 0
	for _, c := range n.fleet {
		fleet += int(c)
	}
	if fleet != total {
		t.Errorf("fleet counts %d values, baselines hold %d", fleet, total)
	}
}

func TestNoveltyCheckpoint(t *testing.T) {
	a := NewNovelty(NoveltyOptions{})
	a.Observe(Event{Time: t0, Entity: "web", Kind: KindExecPair, Value: "nginx -> nginx"})
	data, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := NewNovelty(NoveltyOptions{})
	if err := b.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(3 * time.Hour)
	if _, ok := b.Observe(Event{Time: later, Entity: "web", Kind: KindExecPair, Value: "nginx -> nginx"}); ok {
		t.Error("restored baseline forgot a known pair")
	}
	if _, ok := b.Observe(Event{Time: later, Entity: "web", Kind: KindExecPair, Value: "nginx -> sh"}); !ok {
		t.Error("restored baseline missed a novel pair (learning period should have ended)")
	}
	if err := b.UnmarshalBinary([]byte("garbage")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestNoveltyEscalation(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := NewNovelty(NoveltyOptions{})
	if _, ok := n.Observe(Event{Time: t0, Entity: "h", Kind: KindBinary, Value: "/bin/sh"}); ok {
		t.Fatal("anomaly in the learning period")
	}
	at := t0.Add(2 * time.Hour)
	drop, ok := n.Observe(Event{Time: at, Entity: "h", Kind: KindPrivChange, Value: "x setuid euid 0->65534"})
	if !ok || drop.Score != 0.9 || drop.Detector != "novelty/priv_change/novel" {
		t.Fatalf("privilege drop: %v %+v", ok, drop)
	}
	esc := Event{Time: at, Entity: "h", Kind: KindPrivChange, Value: "x setuid(0) euid 65534->65534 failed", Escalation: true}
	a, ok := n.Observe(esc)
	if !ok || a.Score != 1 || a.Detector != "novelty/priv_change/escalation" || a.Severity != SeverityForScore(1) {
		t.Fatalf("escalation attempt: %v %+v", ok, a)
	}
	// Seen once: rare, still an escalation, scored below a new one.
	esc.Time = at.Add(time.Minute)
	a, ok = n.Observe(esc)
	if !ok || a.Score >= 1 || a.Detector != "novelty/priv_change/escalation" {
		t.Fatalf("repeated escalation attempt: %v %+v", ok, a)
	}
}

// TestNoveltyShellPair: a shell running a program it never ran is a
// medium anomaly; a server spawning the shell stays a high one.
func TestNoveltyShellPair(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := NewNovelty(NoveltyOptions{})
	n.Observe(Event{Time: t0, Entity: "h", Kind: KindBinary, Value: "/bin/sh"})
	at := t0.Add(2 * time.Hour)
	for _, c := range []struct {
		ev   Event
		want float64
	}{
		{Event{Time: at, Entity: "h", Kind: KindExecPair, Value: "nginx -> /bin/sh"}, noveltyScore[KindExecPair]},
		{Event{Time: at, Entity: "h", Kind: KindExecPair, Value: "sh -> /usr/bin/id", FromShell: true}, shellPairScore},
	} {
		a, ok := n.Observe(c.ev)
		if !ok || a.Score != c.want || a.Severity != SeverityForScore(c.want) {
			t.Errorf("%s: %v %+v, want score %v", c.ev.Value, ok, a, c.want)
		}
	}
}

// TestNoveltyLearning checks the learning report the dashboard shows: per
// host scope, from its first event, containers not counted as hosts.
func TestNoveltyLearning(t *testing.T) {
	n := NewNovelty(NoveltyOptions{Learning: time.Hour})
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	see := func(after time.Duration, scope string) {
		n.Observe(Event{Time: t0.Add(after), Entity: "comm:x@" + scope, Scope: scope, Kind: KindBinary, Value: "/bin/x"})
	}
	see(0, "host:a")
	see(30*time.Minute, "host:b")
	see(50*time.Minute, "container:c1@a")
	see(55*time.Minute, "host:a") // a later event does not restart a's hour
	for _, c := range []struct {
		at    time.Duration
		count int
		until time.Duration
	}{
		{45 * time.Minute, 2, 90 * time.Minute},
		{61 * time.Minute, 1, 90 * time.Minute},
		{2 * time.Hour, 0, 0},
	} {
		count, until := n.Learning("host:", t0.Add(c.at))
		want := time.Time{}
		if c.count > 0 {
			want = t0.Add(c.until)
		}
		if count != c.count || !until.Equal(want) {
			t.Errorf("at +%v: %d hosts learning until %v, want %d until %v", c.at, count, until, c.count, want)
		}
	}
}
