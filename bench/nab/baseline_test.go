package nab

import (
	"math"
	"testing"
)

func TestWindowedGaussian(t *testing.T) {
	ramp := make([]float64, 7000) // fills the window, then slides it
	for i := range ramp {
		ramp[i] = float64(i % 50)
	}
	tests := []struct {
		name   string
		values []float64
		check  func(t *testing.T, s []float64)
	}{
		{"empty", nil, func(t *testing.T, s []float64) {
			if len(s) != 0 {
				t.Errorf("%d scores for no values", len(s))
			}
		}},
		{"first point has no history", []float64{5}, func(t *testing.T, s []float64) {
			if s[0] != 0 {
				t.Errorf("score %v, want 0", s[0])
			}
		}},
		// The score is 1 - Q(|z|): 0.5 at the mean, 1 far out.
		{"outlier scores near 1, the mean 0.5", []float64{1, 2, 1, 2, 1, 2, 1, 2, 1.5, 50}, func(t *testing.T, s []float64) {
			if s[9] < 0.999 {
				t.Errorf("outlier scored %v", s[9])
			}
			if math.Abs(s[8]-0.5) > 1e-9 {
				t.Errorf("a value at the mean scored %v", s[8])
			}
		}},
		{"constant series: a change is certain", []float64{3, 3, 3, 3, 4}, func(t *testing.T, s []float64) {
			if s[3] != 0.5 || s[4] != 1 {
				t.Errorf("scores %v: want 0.5 for the repeat, 1 for the change", s)
			}
		}},
		{"window slides", ramp, func(t *testing.T, s []float64) {
			// A uniform ramp is never more than sqrt(3) deviations out.
			for i, x := range s[6500:] {
				if x > 0.96 {
					t.Fatalf("point %d of a repeating ramp scored %v", 6500+i, x)
				}
			}
		}},
		{"huge values stay in [0,1]", []float64{1e300, -1e300, 1e300, 0, math.MaxFloat64}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := WindowedGaussian(tt.values)
			if len(s) != len(tt.values) {
				t.Fatalf("%d scores for %d values", len(s), len(tt.values))
			}
			for i, x := range s {
				if !(x >= 0 && x <= 1) {
					t.Fatalf("score %d is %v, outside [0,1]", i, x)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}
