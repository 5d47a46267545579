package models

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

func TestStateBudget(t *testing.T) {
	if StateSize > 2048 {
		t.Errorf("checkpoint is %d bytes, budget 2048", StateSize)
	}
	if n := unsafe.Sizeof(Detector{}); n > 2048 {
		t.Errorf("in-memory detector is %d bytes, budget 2048", n)
	}
}

// FuzzDetectorUnmarshal feeds arbitrary checkpoints: they must be refused
// or, if accepted, give a detector that still scores in [0,1].
func FuzzDetectorUnmarshal(f *testing.F) {
	d := NewDetector(DetectorOptions{})
	for i := range 3000 {
		d.Update(t0.Add(time.Duration(i)*time.Minute), math.Sin(float64(i)/50))
	}
	good, _ := d.MarshalBinary()
	f.Add(good)
	f.Add(good[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Detector
		if err := d.UnmarshalBinary(data); err != nil {
			return
		}
		for i := range 50 {
			s := d.Update(t0.Add(time.Duration(3000+i)*time.Minute), float64(i%7))
			if math.IsNaN(s.Value) || s.Value < 0 || s.Value > 1 {
				t.Fatalf("restored detector scored %v", s.Value)
			}
		}
	})
}

func FuzzBankUnmarshal(f *testing.F) {
	b := NewBank(BankOptions{})
	b.Update(SeriesKey{"e", "s"}, t0, 1)
	good, _ := b.MarshalBinary()
	f.Add(good)
	f.Add([]byte(bankMagic + "\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := NewBank(BankOptions{MaxSeries: 8})
		_ = b.UnmarshalBinary(data)
		if b.Len() > 8 {
			t.Fatalf("bank holds %d series, max 8", b.Len())
		}
	})
}

func FuzzNoveltyUnmarshal(f *testing.F) {
	n := NewNovelty(NoveltyOptions{})
	n.Observe(Event{Time: t0, Entity: "web", Kind: KindExecPair, Value: "nginx -> nginx"})
	good, _ := n.MarshalBinary()
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		n := NewNovelty(NoveltyOptions{MaxEntities: 4, MaxValues: 4})
		if err := n.UnmarshalBinary(data); err != nil {
			return
		}
		n.Observe(Event{Time: t0.Add(time.Hour), Entity: "web", Kind: KindBinary, Value: "x"})
		if n.Baselines() > 4 {
			t.Fatalf("%d baselines, max 4", n.Baselines())
		}
	})
}

func TestBenchThroughput(t *testing.T) {
	r, err := BenchThroughput(t.Context(), ThroughputOptions{Points: 200_000, LiveSeries: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if r.PointsPerSec <= 0 || r.BankPointsPerS <= 0 || r.StateBytes != StateSize || r.LiveSeries != 2000 {
		t.Errorf("result %+v", r)
	}
	t.Logf("%.1fM points/s, bank %.1fM points/s, %.0f bytes/series", r.PointsPerSec/1e6, r.BankPointsPerS/1e6, r.BytesPerSeries)
}

func BenchmarkNoveltyObserve(b *testing.B) {
	n := NewNovelty(NoveltyOptions{})
	values := []string{"nginx -> nginx", "nginx -> sh", "sh -> curl", "cron -> backup"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		n.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Entity: "c" + itoa(i%1000), Kind: KindExecPair, Value: values[i%len(values)]})
	}
}

func BenchmarkCorrelatorObserve(b *testing.B) {
	c := NewCorrelator(CorrelatorOptions{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		at := time.Duration(i) * time.Second
		c.Observe(anomalyAt(at, "c"+itoa(i%100), "", "cpu", 0.6), t0.Add(at))
		if i%1000 == 0 {
			c.Tick(t0.Add(at))
		}
	}
}

// TestDetectorV3Checkpoint: a checkpoint from before the ladder's holds
// (version 3, the same state without them) is restored with no level
// holding, not refused, so an upgrade keeps what every series learned.
func TestDetectorV3Checkpoint(t *testing.T) {
	d := NewDetector(DetectorOptions{})
	for i := range 3000 {
		d.Update(t0.Add(time.Duration(i)*time.Minute), math.Sin(float64(i)/50)+float64(i%97)/200)
	}
	d.s.Ladder = [ladderLevels]uint16{}
	v4, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v3 := append([]byte{3}, v4[1:len(v4)-ladderLevels*2]...)
	var r Detector
	if err := r.UnmarshalBinary(v3); err != nil {
		t.Fatalf("version 3 checkpoint refused: %v", err)
	}
	if got, _ := r.MarshalBinary(); string(got) != string(v4) {
		t.Error("version 3 checkpoint restored to a different state")
	}
	if err := r.UnmarshalBinary(append([]byte{3}, v4[1:]...)); err == nil {
		t.Error("version 3 checkpoint of version 4's size accepted")
	}
}

// TestLadder: below the alert score, a cluster of near misses scores one
// point at the highest level it reaches and the rest damped, as the alert
// level's hold does for alerts, instead of every point of the cluster
// crossing a threshold set under the alert score.
func TestLadder(t *testing.T) {
	p := newParams(DetectorOptions{})
	var s numState
	raw := []float64{0.305, 0.308, 0.301, 0.295, 0.10}
	var got []float64
	for _, r := range raw {
		got = append(got, s.ladder(r, r, p))
	}
	if got[0] != 0.305 {
		t.Errorf("first near miss scored %v, want its raw 0.305", got[0])
	}
	for i, g := range got[1:4] {
		if g >= 0.25 {
			t.Errorf("near miss %d (raw %v) scored %v during the hold of the levels it reaches, want under the lowest level", i+1, raw[i+1], g)
		}
	}
	if got[4] != 0.10 {
		t.Errorf("a point under every level scored %v, want its raw 0.10", got[4])
	}
	// A stronger point during the hold of a lower level scores the higher
	// level it newly reaches.
	if g := s.ladder(0.335, 0.335, p); g < 0.33 {
		t.Errorf("a point above the held levels scored %v", g)
	}
}
