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
