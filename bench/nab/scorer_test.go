package nab

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC)

// file100 is a 100-row file, one row a minute: probation is rows 0-14 and
// there is one window over rows 50-59 (width 10).
func file100(detect ...int) ([]time.Time, []float64, []Window) {
	ts := make([]time.Time, 100)
	sc := make([]float64, 100)
	for i := range ts {
		ts[i] = t0.Add(time.Duration(i) * time.Minute)
	}
	for _, i := range detect {
		sc[i] = 1
	}
	return ts, sc, []Window{{Start: ts[50], End: ts[59]}}
}

// TestScorerHandCases checks the raw score of single files against values
// worked out by hand from NAB's rules (numbers from an independent
// calculation, not from this code).
func TestScorerHandCases(t *testing.T) {
	std := Profiles[0]
	tests := []struct {
		name   string
		detect []int
		want   float64
	}{
		{"nothing: one missed window", nil, -1},
		{"first row of the window earns exactly TP", []int{50}, 1},
		{"last row of the window", []int{59}, 0.24824154977542992},
		{"only the earliest detection in a window counts", []int{55, 52, 59}, 0.9771068409226045},
		{"FP before the first window costs FP in full", []int{30}, -1 - 0.11},
		{"probation is not scored", []int{3, 10, 14}, -1},
		{"first row after probation is scored", []int{15}, -1 - 0.11},
		{"FP just after a window costs little", []int{62}, -1 - 0.07504879692619866},
		{"FP 3+ widths after a window costs FP in full", []int{99}, -1 - 0.11},
		{"every FP row counts", []int{50, 98, 99}, 1 - 0.22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, sc, w := file100(tt.detect...)
			var c Corpus
			if err := c.Add("f.csv", ts, sc, w); err != nil {
				t.Fatal(err)
			}
			if got := raw(c.Files, std, 0.5); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("raw = %.12f, want %.12f", got, tt.want)
			}
		})
	}
}

func TestScorerProfilesAndNormalisation(t *testing.T) {
	tests := []struct {
		name   string
		detect []int
		want   map[string]float64 // normalised score per profile
	}{
		{"perfect", []int{50}, map[string]float64{"standard": 100, "reward_low_FP_rate": 100, "reward_low_FN_rate": 100}},
		{"null", nil, map[string]float64{"standard": 0, "reward_low_FP_rate": 0, "reward_low_FN_rate": 0}},
		// Window hit at its start plus one far FP: raw = 1 - fp.
		// Normalised = 100 * (1 - fp + fn) / (1 + fn).
		{"hit plus FP", []int{50, 99}, map[string]float64{
			"standard":           100 * (1 - 0.11 + 1) / 2,
			"reward_low_FP_rate": 100 * (1 - 0.22 + 1) / 2,
			"reward_low_FN_rate": 100 * (1 - 0.11 + 2) / 3,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, sc, w := file100(tt.detect...)
			var c Corpus
			if err := c.Add("f.csv", ts, sc, w); err != nil {
				t.Fatal(err)
			}
			for _, p := range Profiles {
				if got := c.Score(p).Normalized; math.Abs(got-tt.want[p.Name]) > 1e-9 {
					t.Errorf("%s: %.6f, want %.6f", p.Name, got, tt.want[p.Name])
				}
			}
		})
	}
}

// TestThresholdIsCorpusWide builds two files where the best single
// threshold differs from each file's own best.
func TestThresholdIsCorpusWide(t *testing.T) {
	var c Corpus
	// File a: window hit with score 0.9; an FP scored 0.5.
	ts, sc, w := file100()
	sc[50], sc[99] = 0.9, 0.5
	if err := c.Add("a.csv", ts, sc, w); err != nil {
		t.Fatal(err)
	}
	// File b: its window's best is only 0.4; two FPs at 0.3.
	ts, sc, w = file100()
	sc[51], sc[20], sc[21] = 0.4, 0.3, 0.3
	if err := c.Add("b.csv", ts, sc, w); err != nil {
		t.Fatal(err)
	}
	// thr 0.9: 1 - 1 = 0. thr 0.5: 1 - 0.11 - 1 = -0.11.
	// thr 0.4: 1 - 0.11 + S(-0.9)/S(-1) = 1.8744... thr 0.3: that - 0.22.
	thr, best := c.Threshold(Profiles[0])
	if thr != 0.4 {
		t.Errorf("threshold %.2f, want 0.40", thr)
	}
	want := 1 - 0.11 + scaledSigmoid(-0.9)/maxTP
	if math.Abs(best-want) > 1e-12 {
		t.Errorf("best raw %.9f, want %.9f", best, want)
	}
	if got := raw(c.Files, Profiles[0], thr); math.Abs(got-best) > 1e-12 {
		t.Errorf("sweep says %.9f but scoring at the threshold gives %.9f", best, got)
	}
}

func TestWindowMatching(t *testing.T) {
	ts, sc, _ := file100(50)
	var c Corpus
	// Limits between rows snap inwards: the window is rows 50..59.
	w := []Window{{Start: ts[49].Add(30 * time.Second), End: ts[59].Add(30 * time.Second)}}
	if err := c.Add("f.csv", ts, sc, w); err != nil {
		t.Fatal(err)
	}
	if got := raw(c.Files, Profiles[0], 0.5); math.Abs(got-1) > 1e-12 {
		t.Errorf("raw %.6f, want 1", got)
	}
	for _, bad := range [][]Window{
		{{Start: ts[99].Add(time.Hour), End: ts[99].Add(2 * time.Hour)}}, // after the data
		{{Start: ts[10], End: ts[20]}, {Start: ts[15], End: ts[30]}},     // overlapping
	} {
		if err := (&Corpus{}).Add("f.csv", ts, sc, bad); err == nil {
			t.Errorf("windows %v accepted", bad)
		}
	}
}
