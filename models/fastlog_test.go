package models

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFastLog(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	xs := []float64{1, 2, math.Sqrt2, 0.5, 1e-300, 1e300, math.MaxFloat64, math.E, 1 + 1e-12}
	for range 10000 {
		xs = append(xs, math.Exp(r.Float64()*1400-700))
	}
	for _, x := range xs {
		got, want := fastLog(x), math.Log(x)
		if math.Abs(got-want) > 1e-7*math.Max(1, math.Abs(want)) {
			t.Errorf("fastLog(%g) = %.12g, want %.12g", x, got, want)
		}
	}
	// Subnormals: math.Log on amd64 is inexact there, so compare with the
	// exact value.
	if got, want := fastLog(5e-324), -1074*math.Ln2; math.Abs(got-want) > 1e-9 {
		t.Errorf("fastLog(5e-324) = %v, want %v", got, want)
	}
	for _, x := range []float64{0, -1, math.NaN(), math.Inf(-1)} {
		if got := fastLog(x); got != -745 {
			t.Errorf("fastLog(%v) = %v, want -745", x, got)
		}
	}
	if !math.IsInf(fastLog(math.Inf(1)), 1) {
		t.Error("fastLog(+Inf) is not +Inf")
	}
}

func BenchmarkFastLog(b *testing.B) {
	b.ReportAllocs()
	x, s := 1.5, 0.0
	for i := 0; i < b.N; i++ {
		s += fastLog(x)
		x += 1e-3
	}
	_ = s
}

func BenchmarkMathLog(b *testing.B) {
	b.ReportAllocs()
	x, s := 1.5, 0.0
	for i := 0; i < b.N; i++ {
		s += math.Log(x)
		x += 1e-3
	}
	_ = s
}
