package models

import (
	"math"
	"testing"
	"time"
)

func TestBankLRU(t *testing.T) {
	b := NewBank(BankOptions{MaxSeries: 3})
	key := func(i int) SeriesKey { return SeriesKey{Entity: "e" + itoa(i), Series: "cpu"} }
	for i := range 3 {
		b.Update(key(i), t0.Add(time.Duration(i)*time.Minute), 1)
	}
	b.Update(key(0), t0.Add(5*time.Minute), 1) // 0 is now the most recent; 1 the least
	b.Update(key(3), t0.Add(6*time.Minute), 1) // evicts 1
	if b.Len() != 3 {
		t.Fatalf("Len = %d, want 3", b.Len())
	}
	for i, want := range []bool{true, false, true, true} {
		if _, ok := b.Checkpoint(key(i)); ok != want {
			t.Errorf("series %d live = %v, want %v", i, ok, want)
		}
	}
	// Idle eviction: only series 0 and 3 were updated at or after +5m.
	if n := b.EvictIdle(t0.Add(5 * time.Minute)); n != 1 {
		t.Errorf("EvictIdle evicted %d, want 1", n)
	}
	if _, ok := b.Checkpoint(key(2)); ok {
		t.Error("idle series 2 still live")
	}
	b.Update(key(4), t0.Add(7*time.Minute), 1)
	b.Update(key(5), t0.Add(8*time.Minute), 1) // full again: evicts 0, the least recent
	if _, ok := b.Checkpoint(key(0)); ok || b.Len() != 3 {
		t.Errorf("after refill: series 0 live %v, Len %d", ok, b.Len())
	}
}

func TestBankCheckpoint(t *testing.T) {
	a := NewBank(BankOptions{})
	for i := range 500 {
		for s := range 10 {
			a.Update(SeriesKey{"e" + itoa(s), "m"}, t0.Add(time.Duration(i)*time.Minute), math.Sin(float64(i*s)))
		}
	}
	data, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := NewBank(BankOptions{})
	if err := b.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if b.Len() != a.Len() {
		t.Fatalf("restored %d series, want %d", b.Len(), a.Len())
	}
	for s := range 10 {
		k := SeriesKey{"e" + itoa(s), "m"}
		ts := t0.Add(500 * time.Minute)
		if x, y := a.Update(k, ts, 3), b.Update(k, ts, 3); x != y {
			t.Errorf("series %d: restored %+v, original %+v", s, y, x)
		}
	}
	if err := b.UnmarshalBinary(data[:len(data)-7]); err == nil {
		t.Error("truncated bank checkpoint accepted")
	}
}

func TestBankObserve(t *testing.T) {
	b := NewBank(BankOptions{})
	k := SeriesKey{"web-1", "latency_ms"}
	var got []Anomaly
	for i := range 2000 {
		v := 10 + math.Sin(float64(i)) // deterministic wiggle
		if i == 1500 {
			v = 500
		}
		if a, ok := b.Observe(k, t0.Add(time.Duration(i)*time.Minute), v); ok {
			got = append(got, a)
		}
	}
	if len(got) == 0 {
		t.Fatal("no anomaly for a 50x spike")
	}
	a := got[len(got)-1]
	if a.Entity != "web-1" || a.Series != "latency_ms" || a.Observed != 500 || a.Expected > 20 || a.Detector != "numeric/spike" {
		t.Errorf("evidence = %+v", a)
	}
}
