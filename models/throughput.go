package models

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
)

// ThroughputOptions configures BenchThroughput.
type ThroughputOptions struct {
	Detector DetectorOptions
	// Points is how many points to push through one detector on one
	// goroutine. Default 5,000,000.
	Points int
	// LiveSeries is how many series to hold in a Bank to measure memory.
	// Default 100,000.
	LiveSeries int
}

// ThroughputResult is what BenchThroughput measured.
type ThroughputResult struct {
	Points         int
	Elapsed        time.Duration
	PointsPerSec   float64 // one goroutine, so per core
	BankPointsPerS float64 // through a Bank with LiveSeries series, hashing and LRU included
	StateBytes     int     // checkpoint size of one series
	LiveSeries     int
	HeapBytes      uint64  // heap growth holding LiveSeries series in a Bank
	BytesPerSeries float64 // HeapBytes / LiveSeries
}

// BenchThroughput measures the numeric detector's speed on one core and a
// Bank's memory per live series, on synthetic seasonal series with noise,
// spikes and level shifts. It is what `vigil bench models` reports. It
// allocates LiveSeries series, so call it with nothing else heavy running.
func BenchThroughput(ctx context.Context, o ThroughputOptions) (ThroughputResult, error) {
	if o.Points <= 0 {
		o.Points = 5_000_000
	}
	if o.LiveSeries <= 0 {
		o.LiveSeries = 100_000
	}
	res := ThroughputResult{Points: o.Points, LiveSeries: o.LiveSeries, StateBytes: StateSize}

	// Inputs are generated up front so only the detector is timed.
	const n = 1 << 16
	vals := syntheticSeries(n, rand.New(rand.NewPCG(1, 2)))
	d := NewDetector(o.Detector)
	t0 := time.Unix(1_700_000_000, 0)
	start := time.Now()
	var sink float64
	for i := 0; i < o.Points; i++ {
		if i&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
		s := d.Update(t0.Add(time.Duration(i)*time.Minute), vals[i&(n-1)])
		sink += s.Value
	}
	res.Elapsed = time.Since(start)
	res.PointsPerSec = float64(o.Points) / res.Elapsed.Seconds()
	if math.IsNaN(sink) {
		res.PointsPerSec = 0 // never true; keeps the loop from being optimised away
	}

	// Memory: heap growth while a bank holds LiveSeries series.
	keys := make([]SeriesKey, o.LiveSeries)
	for i := range keys {
		keys[i] = SeriesKey{Entity: "container-" + itoa(i/8), Series: "metric-" + itoa(i%8)}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := NewBank(BankOptions{Detector: o.Detector, MaxSeries: o.LiveSeries})
	// The first round creates the series; the rest are timed: a live
	// bank's cost per point is a lookup, an LRU touch and the detectors.
	const rounds = 5
	for r := 0; r < rounds; r++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if r == 1 {
			start = time.Now()
		}
		ts := t0.Add(time.Duration(r) * time.Minute)
		for i, k := range keys {
			b.Update(k, ts, vals[(i+r)&(n-1)])
		}
	}
	res.BankPointsPerS = float64((rounds-1)*len(keys)) / time.Since(start).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > before.HeapAlloc {
		res.HeapBytes = after.HeapAlloc - before.HeapAlloc
	}
	res.BytesPerSeries = float64(res.HeapBytes) / float64(o.LiveSeries)
	runtime.KeepAlive(b)
	runtime.KeepAlive(keys)
	return res, nil
}

// syntheticSeries is a daily sine sampled every minute, with noise, rare
// spikes and a level shift, so every branch of the detector runs.
func syntheticSeries(n int, r *rand.Rand) []float64 {
	out := make([]float64, n)
	for i := range out {
		v := 100 + 20*math.Sin(2*math.Pi*float64(i)/1440) + r.NormFloat64()*3
		if i > n/2 {
			v += 15
		}
		if r.IntN(500) == 0 {
			v += 60
		}
		out[i] = v
	}
	return out
}
