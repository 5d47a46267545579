package nab

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestCross checks the leave-one-category-out check on two categories whose
// best thresholds differ: each is scored at the other's threshold.
func TestCross(t *testing.T) {
	ts := make([]time.Time, 200)
	for i := range ts {
		ts[i] = time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC)
	}
	win := []Window{{Start: ts[90], End: ts[120]}}
	c := &Corpus{}
	// a: its window peaks at 0.5, a false positive at 0.4, so 0.5 is best.
	a := make([]float64, 200)
	a[40], a[100] = 0.4, 0.5
	// b: its window peaks at 0.3 with nothing else, so 0.3 is best for it;
	// at a's threshold it misses its window.
	b := make([]float64, 200)
	b[95] = 0.3
	if err := c.Add("a/x.csv", ts, a, win); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("b/y.csv", ts, b, win); err != nil {
		t.Fatal(err)
	}
	cats := map[string][]*File{"a": {c.Files[0]}, "b": {c.Files[1]}}
	p := Profiles[0]
	x := c.Cross(p, cats)
	if len(x.Rows) != 2 || x.Rows[0].Category != "a" || x.Rows[1].Category != "b" {
		t.Fatalf("rows %+v", x.Rows)
	}
	ra, rb := x.Rows[0], x.Rows[1]
	if ra.AtOwn.Threshold != 0.5 || rb.AtOwn.Threshold != 0.3 {
		t.Errorf("own thresholds %v, %v; want 0.5, 0.3", ra.AtOwn.Threshold, rb.AtOwn.Threshold)
	}
	if ra.HeldOut.Threshold != rb.AtOwn.Threshold || rb.HeldOut.Threshold != ra.AtOwn.Threshold {
		t.Errorf("held-out thresholds %v, %v: each should be the other's own", ra.HeldOut.Threshold, rb.HeldOut.Threshold)
	}
	if rb.HeldOut.Raw != -p.FN {
		t.Errorf("b at a's threshold: raw %v, want a missed window (%v)", rb.HeldOut.Raw, -p.FN)
	}
	if want := c.Score(p).Normalized; math.Abs(x.Corpus-want) > 1e-9 {
		t.Errorf("corpus column %v, want the reported score %v", x.Corpus, want)
	}
	if !(x.PerCategory >= x.Corpus && x.Corpus >= x.HeldOut) {
		t.Errorf("want own >= corpus >= held out, got %v %v %v", x.PerCategory, x.Corpus, x.HeldOut)
	}
}

// TestProfileScoreJSON: a never-fire threshold (+Inf) encodes as null.
func TestProfileScoreJSON(t *testing.T) {
	for _, tc := range []struct {
		thr  float64
		want string
	}{{math.Inf(1), `"Threshold":null`}, {0.5, `"Threshold":0.5`}} {
		b, err := json.Marshal(ProfileScore{Profile: "standard", Threshold: tc.thr})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) || !strings.Contains(string(b), `"Profile":"standard"`) {
			t.Errorf("%v: %s", tc.thr, b)
		}
	}
}
