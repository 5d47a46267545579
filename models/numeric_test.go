package models

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// series generators for property tests: each returns n (time, value) pairs.
type genFunc func(n int, r *rand.Rand) ([]time.Time, []float64)

func regular(step time.Duration, f func(i int, r *rand.Rand) float64) genFunc {
	return func(n int, r *rand.Rand) ([]time.Time, []float64) {
		ts := make([]time.Time, n)
		vs := make([]float64, n)
		for i := range n {
			ts[i] = t0.Add(time.Duration(i) * step)
			vs[i] = f(i, r)
		}
		return ts, vs
	}
}

var generators = []struct {
	name string
	gen  genFunc
}{
	{"flat", regular(time.Minute, func(int, *rand.Rand) float64 { return 7 })},
	{"zero", regular(time.Minute, func(int, *rand.Rand) float64 { return 0 })},
	{"noise", regular(5*time.Minute, func(_ int, r *rand.Rand) float64 { return r.NormFloat64() })},
	{"daily", regular(5*time.Minute, func(i int, r *rand.Rand) float64 {
		return 50 + 30*math.Sin(2*math.Pi*float64(i)/288) + r.NormFloat64()
	})},
	{"square", regular(5*time.Minute, func(i int, _ *rand.Rand) float64 {
		if i%288 < 100 {
			return 80
		}
		return 20
	})},
	{"huge", regular(time.Second, func(_ int, r *rand.Rand) float64 { return 1e300 * r.Float64() })},
	{"tiny", regular(time.Second, func(_ int, r *rand.Rand) float64 { return 1e-300 * r.Float64() })},
	{"heavy tail", regular(time.Minute, func(_ int, r *rand.Rand) float64 { return 1 / (r.Float64() + 1e-9) })},
	{"irregular", func(n int, r *rand.Rand) ([]time.Time, []float64) {
		ts := make([]time.Time, n)
		vs := make([]float64, n)
		at := t0
		for i := range n {
			at = at.Add(time.Duration(r.ExpFloat64() * float64(3*time.Minute)))
			if r.IntN(50) == 0 {
				at = at.Add(-time.Hour) // out of order
			}
			ts[i], vs[i] = at, r.NormFloat64()*10+float64(i%7)
		}
		return ts, vs
	}},
	{"non-finite", regular(time.Minute, func(i int, r *rand.Rand) float64 {
		switch i % 97 {
		case 3:
			return math.NaN()
		case 5:
			return math.Inf(1)
		case 7:
			return math.Inf(-1)
		}
		return r.NormFloat64()
	})},
}

func TestDetectorProperties(t *testing.T) {
	if StateSize > 2048 {
		t.Fatalf("state is %d bytes, budget 2048", StateSize)
	}
	for _, g := range generators {
		t.Run(g.name, func(t *testing.T) {
			ts, vs := g.gen(5000, rand.New(rand.NewPCG(1, 1)))
			d := NewDetector(DetectorOptions{})
			for i := range ts {
				s := d.Update(ts[i], vs[i])
				for _, x := range []float64{s.Value, s.Raw} {
					if math.IsNaN(x) || x < 0 || x > 1 {
						t.Fatalf("point %d: score %v outside [0,1]", i, x)
					}
				}
				if i < DefaultDetectorOptions().Warmup && s.Value != 0 {
					t.Fatalf("point %d: score %v during warm-up", i, s.Value)
				}
				if math.IsNaN(s.Expected) {
					t.Fatalf("point %d: expected is NaN", i)
				}
			}
			b, err := d.MarshalBinary()
			if err != nil || len(b) > 2048 {
				t.Fatalf("checkpoint: %d bytes, %v", len(b), err)
			}
		})
	}
}

func TestDetectorFindsEvents(t *testing.T) {
	tests := []struct {
		name  string
		at    int // index of the event
		event func(i, at int) float64
	}{
		{"spike", 3000, func(i, at int) float64 {
			if i == at {
				return 25
			}
			return 0
		}},
		{"level shift", 3000, func(i, at int) float64 {
			if i >= at {
				return 12
			}
			return 0
		}},
		{"variance burst", 3000, func(i, at int) float64 {
			if i >= at && i < at+50 {
				return float64((i%2)*2-1) * 8
			}
			return 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			d := NewDetector(DetectorOptions{})
			var before, at float64
			for i := 0; i < tt.at+60; i++ {
				v := 100 + r.NormFloat64() + tt.event(i, tt.at)
				s := d.Update(t0.Add(time.Duration(i)*5*time.Minute), v)
				if i >= 1000 && i < tt.at {
					before = max(before, s.Value)
				}
				if i >= tt.at && i < tt.at+10 {
					at = max(at, s.Value)
				}
			}
			if at < 0.5 || at <= before {
				t.Errorf("event score %.3f, max before %.3f: want event >= 0.5 and above the noise", at, before)
			}
		})
	}
}

func TestDetectorCheckpointRoundTrip(t *testing.T) {
	ts, vs := generators[3].gen(4000, rand.New(rand.NewPCG(5, 6)))
	a := NewDetector(DetectorOptions{})
	for i := range 2000 {
		a.Update(ts[i], vs[i])
	}
	state, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := NewDetector(DetectorOptions{})
	if err := b.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	for i := 2000; i < len(ts); i++ {
		if sa, sb := a.Update(ts[i], vs[i]), b.Update(ts[i], vs[i]); sa != sb {
			t.Fatalf("point %d: restored detector scored %+v, original %+v", i, sb, sa)
		}
	}
	for _, bad := range [][]byte{nil, state[:10], append([]byte{99}, state[1:]...)} {
		if err := b.UnmarshalBinary(bad); err == nil {
			t.Errorf("UnmarshalBinary(%d bytes) accepted a bad checkpoint", len(bad))
		}
	}
}

func BenchmarkDetectorUpdate(b *testing.B) {
	vals := syntheticSeries(1<<16, rand.New(rand.NewPCG(1, 2)))
	d := NewDetector(DetectorOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Update(t0.Add(time.Duration(i)*time.Minute), vals[i&(1<<16-1)])
	}
}

func BenchmarkBankUpdate(b *testing.B) {
	vals := syntheticSeries(1<<16, rand.New(rand.NewPCG(1, 2)))
	keys := make([]SeriesKey, 10_000)
	for i := range keys {
		keys[i] = SeriesKey{Entity: "c" + itoa(i), Series: "cpu"}
	}
	bank := NewBank(BankOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bank.Update(keys[i%len(keys)], t0.Add(time.Duration(i/len(keys))*time.Minute), vals[i&(1<<16-1)])
	}
}
