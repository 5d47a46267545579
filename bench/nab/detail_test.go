package nab

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/models"
)

// TestNABDetail prints where the standard profile wins and loses points on
// the shared split, file by file. It only runs with BENCH_NAB_DETAIL=1;
// BENCH_NAB_WIN=1 adds each window's best scores and every detection's
// cause ("DET <file> <index> <in window> <cause>/seas=/ext= <score>"):
//
//	BENCH_NAB_DETAIL=1 go test ./bench/nab/ -run NABDetail -v
func TestNABDetail(t *testing.T) {
	if os.Getenv("BENCH_NAB_DETAIL") == "" {
		t.Skip("set BENCH_NAB_DETAIL=1 to print the per-file breakdown")
	}
	dir := nabDir(t)
	labels, err := ReadWindows(filepath.Join(dir, "labels", "combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "data", "*", "*.csv"))
	corpus := &Corpus{}
	for _, path := range files {
		rel, _ := filepath.Rel(filepath.Join(dir, "data"), path)
		s, err := readFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := corpus.Add(filepath.ToSlash(rel), s.Times, Detect(s, models.DetectorOptions{}), labels[filepath.ToSlash(rel)]); err != nil {
			t.Fatal(err)
		}
	}
	p := Profiles[0]
	ps := corpus.Score(p)
	fmt.Printf("standard %.2f at threshold %.4f\n", ps.Normalized, ps.Threshold)
	if os.Getenv("BENCH_NAB_WIN") != "" {
		for _, path := range files {
			rel, _ := filepath.Rel(filepath.Join(dir, "data"), path)
			rel = filepath.ToSlash(rel)
			s, _ := readFile(path)
			d := models.NewDetector(models.DetectorOptions{})
			causes := make([]string, len(s.Values))
			raws := make([]float64, len(s.Values))
			vals := make([]float64, len(s.Values))
			for i, v := range s.Values {
				sc := d.Update(s.Times[i], v)
				raws[i], vals[i] = sc.Raw, sc.Value
				causes[i] = fmt.Sprintf("%s/seas=%v/ext=%v", sc.Cause, sc.Seasonal, sc.Extreme)
			}
			inWin := make([]bool, len(s.Values))
			for _, w := range labels[rel] {
				lo, hi := matchWindow(s.Times, w)
				for i := lo; i <= hi; i++ {
					inWin[i] = true
				}
			}
			prob := probationLength(len(s.Values))
			for i := prob; i < len(vals); i++ {
				if vals[i] >= ps.Threshold {
					fmt.Printf("DET %s %d %v %s %.3f\n", rel, i, inWin[i], causes[i], vals[i])
				}
			}
			for _, w := range labels[rel] {
				lo, hi := matchWindow(s.Times, w)
				mr, mv, first := 0.0, 0.0, -1
				for i := lo; i <= hi; i++ {
					mr, mv = max(mr, raws[i]), max(mv, vals[i])
					if first < 0 && vals[i] >= ps.Threshold {
						first = i - lo
					}
				}
				fmt.Printf("%-55s win %5d-%5d (w %4d) maxraw %.3f maxval %.3f first %d\n", rel, lo, hi, hi-lo+1, mr, mv, first)
			}
		}
	}
	for _, d := range corpus.Details(p, ps.Threshold) {
		fmt.Printf("%-55s raw %6.2f  found %d/%d  fp %3d cost %6.2f  det %4d  %v\n",
			d.Name, d.Raw, d.Found, d.Windows, d.FPs, d.FPCost, d.Detected, fmtF(d.Earned))
	}
}

func fmtF(fs []float64) string {
	s := ""
	for _, f := range fs {
		s += fmt.Sprintf(" %.2f", f)
	}
	return s
}

// TestNABQuick prints the summary Run prints, without the command line
// (BENCH_NAB_QUICK=1).
func TestNABQuick(t *testing.T) {
	if os.Getenv("BENCH_NAB_QUICK") == "" {
		t.Skip("set BENCH_NAB_QUICK=1")
	}
	dir := nabDir(t)
	if _, err := Run(context.Background(), Options{
		DataDir:    filepath.Join(dir, "data"),
		LabelsFile: filepath.Join(dir, "labels", "combined_windows.json"),
		Progress:   os.Stdout,
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDetailsAddUp checks that the per-file breakdown sums to the corpus'
// raw score.
func TestDetailsAddUp(t *testing.T) {
	ts := make([]time.Time, 200)
	scores := make([]float64, 200)
	for i := range ts {
		ts[i] = time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC)
	}
	scores[40], scores[100], scores[150] = 0.9, 0.8, 0.7 // FP, TP, FP after the window
	c := &Corpus{}
	if err := c.Add("a.csv", ts, scores, []Window{{Start: ts[90], End: ts[120]}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range Profiles {
		total := 0.0
		for _, d := range c.Details(p, 0.5) {
			total += d.Raw
			if d.Found != 1 || d.FPs != 2 || d.Detected != 3 {
				t.Errorf("%s: %+v, want 1 window found, 2 FPs, 3 detections", p.Name, d)
			}
		}
		if want := raw(c.Files, p, 0.5); math.Abs(total-want) > 1e-9 {
			t.Errorf("%s: details sum to %v, raw is %v", p.Name, total, want)
		}
	}
}
