package models

import (
	"bytes"
	"encoding/gob"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestBurst drives one series through the burst detector of a bank and
// checks which points alert.
func TestBurst(t *testing.T) {
	rules := map[string]BurstRule{
		"forks": {Floor: 50},
		"scan":  {Floor: 20, Warmup: -1, Detector: "fanout/scan"},
	}
	type point struct {
		v     float64
		alert bool
	}
	steady := func(n int, vals ...float64) []point {
		out := make([]point, n)
		for i := range out {
			out[i] = point{vals[i%len(vals)], false}
		}
		return out
	}
	cat := func(ps ...[]point) []point {
		var out []point
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name   string
		series string
		points []point
	}{
		{"quiet during warm-up", "forks", cat(steady(5, 0, 1), []point{{5000, false}})},
		{"0 to 3 is under the floor", "forks", cat(steady(40, 0), []point{{3, false}, {40, false}})},
		{"50 to 5000 alerts once", "forks", cat(steady(40, 20, 50, 30), []point{{5000, true}, {6000, false}, {5500, false}}, steady(10, 30))},
		{"under Mult times the peak is normal", "forks", cat(steady(40, 20, 50, 30), []point{{190, false}})},
		{"a lasting change is learned, not re-alerted", "forks", cat(steady(30, 10), []point{{900, true}}, steady(60, 900))},
		{"a storm ramping up is still a burst", "forks", cat(steady(40, 0, 2), []point{{30, false}, {77, true}, {77, false}})},
		{"scan: new entity alerts on the floor", "scan", []point{{25, true}}},
		{"scan: below the floor never", "scan", cat(steady(10, 0, 1, 2), []point{{19, false}})},
		{"scan: own history raises the bar", "scan", cat([]point{{30, true}}, steady(40, 30), []point{{60, false}, {300, true}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBank(BankOptions{Burst: BurstOptions{Rules: rules, Hold: 5}})
			k := SeriesKey{Entity: "comm:x@h", Series: tt.series}
			for i, p := range tt.points {
				ts := t0.Add(time.Duration(i) * time.Second)
				a, ok := b.Observe(k, ts, p.v)
				if ok && !strings.Contains(a.Detector, "/") {
					t.Fatalf("point %d: detector %q", i, a.Detector)
				}
				burst := ok && (strings.HasPrefix(a.Detector, "burst/") || strings.HasPrefix(a.Detector, "fanout/"))
				if burst != p.alert {
					t.Fatalf("point %d (%v): burst alert %v, want %v (%+v)", i, p.v, burst, p.alert, a)
				}
				if burst {
					if a.Observed != p.v || a.Entity != k.Entity || a.Series != k.Series || a.Score < 0.6 || a.Score > 1 ||
						a.Severity < SeverityMedium || !a.Start.Equal(ts) || !a.End.Equal(ts) || a.Expected >= p.v {
						t.Errorf("point %d: evidence %+v", i, a)
					}
				}
			}
		})
	}
}

func TestBurstEvidence(t *testing.T) {
	b := NewBank(BankOptions{Burst: BurstOptions{Rules: map[string]BurstRule{"bytes_out": {Floor: 8 << 20}}}})
	k := SeriesKey{Entity: "comm:backup@h", Series: "bytes_out"}
	for i := range 30 {
		b.Observe(k, t0.Add(time.Duration(i)*time.Second), 4000+float64(i%3)*100)
	}
	a, ok := b.Observe(k, t0.Add(30*time.Second), 300<<20)
	if !ok || a.Detector != "burst/bytes_out" || math.Abs(a.Expected-4200) > 1 || a.Observed != 300<<20 || a.Score != 1 || a.Severity != SeverityCritical {
		t.Fatalf("exfiltration: ok %v, %+v", ok, a)
	}
	if got := describe(&a); got != "Burst of bytes_out on comm:backup@h (300 MiB in one step, usual peak 4.101 KiB)" {
		t.Errorf("describe = %q", got)
	}
}

func TestBurstPeakDecays(t *testing.T) {
	p := newBurstParams(BurstOptions{Rules: map[string]BurstRule{"x": {Floor: 1}}, HalfLife: time.Hour, Warmup: 1})
	var s burstState
	s.update(p, 0, t0.UnixNano(), 100)
	v := s.update(p, 0, t0.Add(2*time.Hour).UnixNano(), 0)
	if math.Abs(v.Peak-25) > 1e-9 {
		t.Errorf("peak after two half-lives = %v, want 25", v.Peak)
	}
	if v := s.update(p, 0, t0.Add(3*time.Hour).UnixNano(), math.NaN()); v.Alert {
		t.Error("NaN alerted")
	}
}

func TestBurstStateBudget(t *testing.T) {
	if n := StateSize + BurstStateSize; n > 2048 {
		t.Errorf("series checkpoint is %d bytes (numeric %d + burst %d), budget 2048", n, StateSize, BurstStateSize)
	}
	if n := unsafe.Sizeof(slot{}); n > 2048+64 {
		t.Errorf("bank slot is %d bytes, budget 2048 plus key and list links", n)
	}
}

func TestBankCheckpointKeepsBursts(t *testing.T) {
	o := BankOptions{Burst: BurstOptions{Rules: map[string]BurstRule{"forks": {Floor: 50}}}}
	a := NewBank(o)
	k := SeriesKey{"host:h", "forks"}
	for i := range 40 {
		a.Observe(k, t0.Add(time.Duration(i)*time.Second), float64(10+i%5))
	}
	data, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := NewBank(o)
	if err := b.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	ts := t0.Add(40 * time.Second)
	x, okx := a.Observe(k, ts, 4000)
	y, oky := b.Observe(k, ts, 4000)
	if !okx || !oky || x.Detector != y.Detector || x.Expected != y.Expected || x.Score != y.Score {
		t.Errorf("restored %v %+v, original %v %+v", oky, y, okx, x)
	}

	// A checkpoint from before burst state existed is refused, not misread.
	old := append([]byte("VGB1"), data[len(bankMagic):]...)
	if err := NewBank(o).UnmarshalBinary(old); err == nil {
		t.Error("VGB1 checkpoint accepted")
	}
	// A corrupt burst state is refused.
	bad := bytes.Clone(data)
	bad[len(bad)-BurstStateSize] = 99 // its version byte
	if err := NewBank(o).UnmarshalBinary(bad); err == nil {
		t.Error("bad burst state accepted")
	}
}

func TestNoveltyNewKinds(t *testing.T) {
	ev := func(after time.Duration, entity, scope string, k Kind, v string) Event {
		return Event{Time: t0.Add(after), Entity: entity, Scope: scope, Kind: k, Value: v}
	}
	n := NewNovelty(NoveltyOptions{Learning: time.Hour})
	// The host is seen from t0 by its execs.
	n.Observe(ev(0, "host:h", "host:h", KindBinary, "/usr/sbin/cron"))
	n.Observe(ev(10*time.Minute, "comm:cron@h", "host:h", KindSensitiveFile, "cron /etc/shadow")) // learned
	// An OOM kill alerts even during learning.
	if a, ok := n.Observe(ev(20*time.Minute, "comm:java@h", "host:h", KindOOMKill, "java")); !ok || a.Detector != "novelty/oom_kill/novel" {
		t.Errorf("OOM kill in learning: %v %+v", ok, a)
	}
	// After learning, a process's first sensitive open is news although
	// its own baseline is brand new.
	a, ok := n.Observe(ev(2*time.Hour, "comm:vbench-reader@h", "host:h", KindSensitiveFile, "vbench-reader /etc/shadow"))
	if !ok || a.Detector != "novelty/sensitive_file/novel" || a.Entity != "comm:vbench-reader@h" || a.Score != 0.75 {
		t.Errorf("credential access: %v %+v", ok, a)
	}
	if _, ok := n.Observe(ev(2*time.Hour, "comm:cron@h", "host:h", KindSensitiveFile, "cron /etc/shadow")); ok {
		t.Error("learned sensitive open alerted")
	}
	// A new container learns silently however old the host.
	if _, ok := n.Observe(ev(3*time.Hour, "comm:app@h", "container:c@h", KindSensitiveFile, "app /root/.ssh/id_rsa")); ok {
		t.Error("new container's first sensitive open alerted")
	}
	// Abnormal exits are rare until they are routine.
	alerts := 0
	for i := range 5 {
		if _, ok := n.Observe(ev(4*time.Hour+time.Duration(i)*time.Minute, "comm:worker@h", "host:h", KindAbnormalExit, "worker SIGSEGV")); ok {
			alerts++
		}
	}
	if alerts != 2 {
		t.Errorf("%d crash anomalies for 5 crashes, want 2 (novel, then rare)", alerts)
	}

	// Scope ages survive a checkpoint, and an old checkpoint (no scopes)
	// takes them from its baselines.
	data, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := NewNovelty(NoveltyOptions{Learning: time.Hour})
	if err := r.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Observe(ev(5*time.Hour, "comm:nc@h", "host:h", KindSensitiveFile, "nc /etc/shadow")); !ok {
		t.Error("restored: host scope forgot its age")
	}
	var snap noveltySnapshot
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	snap.Scopes = nil
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(snap); err != nil {
		t.Fatal(err)
	}
	r = NewNovelty(NoveltyOptions{Learning: time.Hour})
	if err := r.UnmarshalBinary(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Observe(ev(5*time.Hour, "comm:nc@h", "host:h", KindSensitiveFile, "nc /etc/shadow")); !ok {
		t.Error("old checkpoint: host scope age not taken from its baselines")
	}
}

func TestNoveltyScopesBounded(t *testing.T) {
	n := NewNovelty(NoveltyOptions{MaxEntities: 4})
	for i := range 20 {
		n.Observe(Event{Time: t0, Entity: "e", Scope: "s" + itoa(i), Kind: KindBinary, Value: "x"})
	}
	if n.scopes.len() != 4 {
		t.Errorf("%d scopes, max 4", n.scopes.len())
	}
}
