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

// TestDetectorAlertCounts pins how many alerts typical shapes raise: one
// event is one alert, and patterns the detector can learn stay quiet.
func TestDetectorAlertCounts(t *testing.T) {
	const step = 5 * time.Minute
	tests := []struct {
		name     string
		n        int
		value    func(i int, r *rand.Rand) float64
		from, to int // alerts are counted in [from, to)
		min, max int
	}{
		{"level shift alerts once", 4000, func(i int, r *rand.Rand) float64 {
			if i >= 3000 {
				return 112 + r.NormFloat64()
			}
			return 100 + r.NormFloat64()
		}, 3000, 4000, 1, 1},
		{"level shift alerts at once", 4000, func(i int, r *rand.Rand) float64 {
			if i >= 3000 {
				return 112 + r.NormFloat64()
			}
			return 100 + r.NormFloat64()
		}, 3000, 3005, 1, 1},
		{"spike alerts once", 4000, func(i int, r *rand.Rand) float64 {
			if i == 3000 {
				return 130
			}
			return 100 + r.NormFloat64()
		}, 3000, 4000, 1, 1},
		{"daily pattern stays quiet", 288 * 14, func(i int, r *rand.Rand) float64 {
			return 50 + 30*math.Sin(2*math.Pi*float64(i)/288) + 0.5*r.NormFloat64()
		}, 288 * 3, 288 * 14, 0, 0},
		{"daily square wave stays quiet", 288 * 14, func(i int, _ *rand.Rand) float64 {
			if i%288 < 100 {
				return 80
			}
			return 20
		}, 288 * 3, 288 * 14, 0, 0},
		{"flat line stays quiet", 4000, func(int, *rand.Rand) float64 { return 7 }, 0, 4000, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			d := NewDetector(DetectorOptions{})
			alerts := 0
			for i := range tt.n {
				s := d.Update(t0.Add(time.Duration(i)*step), tt.value(i, r))
				if s.Alert && i >= tt.from && i < tt.to {
					alerts++
				}
			}
			if alerts < tt.min || alerts > tt.max {
				t.Errorf("%d alerts in [%d, %d), want %d..%d", alerts, tt.from, tt.to, tt.min, tt.max)
			}
		})
	}
}

// TestDetectorNewExtreme checks that a deviation that takes the series
// beyond anything it has shown scores higher than the same deviation
// inside its known range.
func TestDetectorNewExtreme(t *testing.T) {
	run := func(excursion float64) Score {
		r := rand.New(rand.NewPCG(9, 10))
		d := NewDetector(DetectorOptions{})
		for i := range 3000 {
			v := 100 + r.NormFloat64()
			if i == 500 {
				v = 100 + excursion // an earlier excursion sets the record
			}
			d.Update(t0.Add(time.Duration(i)*time.Minute), v)
		}
		return d.Update(t0.Add(3000*time.Minute), 106)
	}
	inside, beyond := run(20), run(0)
	if inside.Extreme || !beyond.Extreme {
		t.Fatalf("Extreme: inside %v beyond %v, want false, true", inside.Extreme, beyond.Extreme)
	}
	if beyond.Raw <= inside.Raw {
		t.Errorf("new extreme scored %.3f, same deviation inside the range %.3f", beyond.Raw, inside.Raw)
	}
}

// TestDetectorFlatline checks the flatline cause: a run of identical values
// longer than any the series has completed before alerts once, and runs the
// series has shown before stay quiet.
func TestDetectorFlatline(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		value func(i int, r *rand.Rand) float64
		want  int // flatline alerts
	}{
		{"stuck sensor alerts once", 4000, func(i int, r *rand.Rand) float64 {
			if i >= 3000 {
				return 100
			}
			return 100 + r.NormFloat64()
		}, 1},
		{"constant from the start stays quiet", 4000, func(int, *rand.Rand) float64 { return 0 }, 0},
		{"duty cycle of equal runs stays quiet", 4000, func(i int, r *rand.Rand) float64 {
			if i%200 < 120 {
				return 0
			}
			return 5 + r.NormFloat64()
		}, 0},
		{"longest idle yet alerts once", 4000, func(i int, r *rand.Rand) float64 {
			if i%200 < 120 || i >= 3000 && i < 3400 {
				return 0
			}
			return 5 + r.NormFloat64()
		}, 1},
		{"rare bursts' first long gap stays quiet", 4000, func(i int, _ *rand.Rand) float64 {
			if i%600 == 120 {
				return 42
			}
			return 0
		}, 0},
		{"coarse values repeating by chance stay quiet", 4000, func(_ int, r *rand.Rand) float64 {
			return float64(r.IntN(3))
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, 12))
			d := NewDetector(DetectorOptions{})
			got := 0
			for i := range tt.n {
				s := d.Update(t0.Add(time.Duration(i)*5*time.Minute), tt.value(i, r))
				if s.Cause == CauseFlatline && s.Alert {
					got++
				}
			}
			if got != tt.want {
				t.Errorf("%d flatline alerts, want %d", got, tt.want)
			}
		})
	}
}

// TestDetectorWeekly checks the hour-of-week correction: a series whose
// weekends differ from its weekdays stays quiet once it has seen a few
// weeks, and a weekday that behaves like a Sunday (a holiday) alerts.
func TestDetectorWeekly(t *testing.T) {
	const step = 30 * time.Minute
	const perDay = 48
	value := func(i int, holiday bool, r *rand.Rand) float64 {
		day := (i / perDay) % 7 // t0 is a Monday
		v := 100 + 40*math.Sin(2*math.Pi*float64(i%perDay)/perDay)
		if day >= 5 || holiday {
			v = 60 + 10*math.Sin(2*math.Pi*float64(i%perDay)/perDay)
		}
		return v + 2*r.NormFloat64()
	}
	tests := []struct {
		name    string
		holiday int // day index that behaves like a Sunday, or -1
		from    int // alerts are counted from this day on
		min     int
		max     int
	}{
		{"weekly pattern stays quiet", -1, 21, 0, 0},
		{"holiday alerts", 7*7 + 2, 7*7 + 2, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(13, 14))
			d := NewDetector(DetectorOptions{})
			alerts := 0
			for i := range 8 * 7 * perDay {
				s := d.Update(t0.Add(time.Duration(i)*step), value(i, i/perDay == tt.holiday, r))
				if s.Alert && i >= tt.from*perDay {
					alerts++
				}
			}
			if alerts < tt.min || alerts > tt.max {
				t.Errorf("%d alerts from day %d, want %d..%d", alerts, tt.from, tt.min, tt.max)
			}
		})
	}
}

// TestDetectorCalibrated checks what Score.Value promises: in the tail
// (scores from the tail quantile up) a point scores at least s with about
// the probability exp(-s*MaxSurprise) under the view that scored it, and
// the score is the largest of three views, so on a stationary series, of
// whatever noise shape, the share of points at or above s is between one
// and three times that (measured: 1.4 to 2.6 times).
func TestDetectorCalibrated(t *testing.T) {
	noise := []struct {
		name string
		draw func(r *rand.Rand) float64
	}{
		{"gaussian", func(r *rand.Rand) float64 { return 100 + r.NormFloat64() }},
		{"laplace", func(r *rand.Rand) float64 { return 100 + r.ExpFloat64() - r.ExpFloat64() }},
		{"lognormal", func(r *rand.Rand) float64 { return math.Exp(r.NormFloat64()) }},
		{"poisson counts", func(r *rand.Rand) float64 {
			n, p := 0, 1.0
			for p *= r.Float64(); p > math.Exp(-20); p *= r.Float64() {
				n++
			}
			return float64(n)
		}},
	}
	const n, skip = 40000, 2000
	max := DefaultDetectorOptions().MaxSurprise
	for _, nz := range noise {
		t.Run(nz.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(21, 22))
			d := NewDetector(DetectorOptions{})
			levels := []float64{0.2, 0.25, 0.3}
			over := make([]int, len(levels))
			for i := range n {
				s := d.Update(t0.Add(time.Duration(i)*time.Minute), nz.draw(r))
				if i < skip {
					continue
				}
				for k, l := range levels {
					if s.Raw >= l {
						over[k]++
					}
				}
			}
			for k, l := range levels {
				got, want := float64(over[k])/(n-skip), math.Exp(-l*max)
				if got > 3*want || got < want {
					t.Errorf("P(score >= %.2f) = %.5f, want 1 to 3 times %.5f", l, got, want)
				}
			}
		})
	}
}

// TestDetectorYouth checks the youth discount: on a series that has seen
// 100 points a surprise counts youthSurprise*(1-100/youthPoints) nats
// less than it would without the discount, by 1,000 points nothing, and a
// young series' noise stays quiet.
func TestDetectorYouth(t *testing.T) {
	excursion := func(at int, youth float64) (Score, int) {
		r := rand.New(rand.NewPCG(23, 24))
		p := newParams(DetectorOptions{})
		p.youth = youth
		d := newDetector(p)
		alerts := 0
		for i := range at {
			if d.Update(t0.Add(time.Duration(i)*time.Minute), 100+r.NormFloat64()).Alert {
				alerts++
			}
		}
		return d.Update(t0.Add(time.Duration(at)*time.Minute), 106), alerts
	}
	max := DefaultDetectorOptions().MaxSurprise
	for _, tt := range []struct {
		at   int
		want float64 // discount in score units
	}{
		{100, youthSurprise * (1 - 100.0/youthPoints) / max},
		{1000, 0},
	} {
		with, alerts := excursion(tt.at, youthSurprise)
		without, _ := excursion(tt.at, 0)
		if got := without.Raw - with.Raw; math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("at %d points a 6σ excursion scores %.4f, %.4f without the discount: discount %.4f, want %.4f",
				tt.at, with.Raw, without.Raw, got, tt.want)
		}
		if tt.at == 100 && alerts > 0 {
			t.Errorf("%d alerts on the first 100 points of plain noise", alerts)
		}
	}
}
