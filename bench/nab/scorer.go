package nab

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Profile is one of NAB's cost matrices.
type Profile struct {
	Name string
	TP   float64 // reward for the best detection in a window, before the sigmoid
	FN   float64 // cost of a window with no detection
	FP   float64 // cost of a detection far from any window, before the sigmoid
}

// Profiles are NAB v1's three application profiles, in the order NAB reports them.
var Profiles = []Profile{
	{Name: "standard", TP: 1, FN: 1, FP: 0.11},
	{Name: "reward_low_FP_rate", TP: 1, FN: 1, FP: 0.22},
	{Name: "reward_low_FN_rate", TP: 1, FN: 2, FP: 0.11},
}

// ProbationPercent is the leading share of each file NAB does not score,
// capped at ProbationPercent*5000 rows.
const ProbationPercent = 0.15

// Window is a labelled anomaly window, both ends inclusive.
type Window struct {
	Start, End time.Time
}

// scaledSigmoid is NAB's S(x): about 0.987 at x=-1 (earliest in a window), 0 at
// the window's right edge, and -1 from 3 window widths past it on.
func scaledSigmoid(x float64) float64 {
	if x >= 3 {
		return -1
	}
	return 2/(1+math.Exp(5*x)) - 1
}

// maxTP normalises a detection at the very start of a window to exactly TP.
var maxTP = scaledSigmoid(-1)

// Row kinds a scored row can have besides a window index.
const (
	outside   = -1 // outside every window: a detection is a false positive
	probation = -2 // in the probation period: never scored
)

// point is one row of a file prepared for scoring. Weights are kept
// unweighted so that one preparation serves every profile.
type point struct {
	score  float64 // the detector's anomaly score
	sig    float64 // S(position) for this row
	window int     // global window index, outside or probation
}

// File is one data file prepared for scoring.
type File struct {
	Name    string
	points  []point
	windows int // windows that have at least one scorable row
	first   int // global index of this file's first window
}

// matchWindow finds a window's first and last rows in file order, as NAB
// does: it starts at the first row stamped with its start and ends at the
// first later row stamped with its end. Limits that are not row timestamps
// fall back to the first row at or after the start and the last row, before
// time passes the end, at or before it. It returns -1, -1 if no row matches.
func matchWindow(ts []time.Time, w Window) (int, int) {
	lo := slices.IndexFunc(ts, func(t time.Time) bool { return t.Equal(w.Start) })
	if lo < 0 {
		lo = slices.IndexFunc(ts, func(t time.Time) bool { return !t.Before(w.Start) })
	}
	if lo < 0 {
		return -1, -1
	}
	hi := -1
	for i := lo; i < len(ts); i++ {
		if ts[i].Equal(w.End) {
			return lo, i
		}
		if ts[i].After(w.End) {
			break
		}
		hi = i
	}
	if hi < lo {
		return -1, -1
	}
	return lo, hi
}

// probationLength is NAB's _getProbationaryLength.
func probationLength(n int) int {
	return int(math.Min(math.Floor(ProbationPercent*float64(n)), ProbationPercent*5000))
}

// Corpus is a set of files scored with one threshold per profile.
type Corpus struct {
	Files   []*File
	windows int
}

// Add prepares one file's detector output for scoring. Rows must be in time
// order (file order); windows are matched to rows as matchWindow describes.
func (c *Corpus) Add(name string, ts []time.Time, scores []float64, windows []Window) error {
	if len(ts) != len(scores) {
		return fmt.Errorf("score %s: %d timestamps but %d scores", name, len(ts), len(scores))
	}
	f := &File{Name: name, points: make([]point, len(ts)), first: c.windows}
	type span struct{ lo, hi int }
	spans := make([]span, 0, len(windows))
	for _, w := range windows {
		lo, hi := matchWindow(ts, w)
		if lo < 0 {
			return fmt.Errorf("score %s: window %s..%s matches no row", name, w.Start, w.End)
		}
		if len(spans) > 0 && lo <= spans[len(spans)-1].hi {
			return fmt.Errorf("score %s: window %s overlaps the previous one", name, w.Start)
		}
		spans = append(spans, span{lo, hi})
	}
	prob := probationLength(len(ts))
	prevRight, prevWidth := -1, 0.0
	next := 0 // next span to enter
	cur := -1 // span we are in, or -1
	for i := range ts {
		if cur < 0 && next < len(spans) && i == spans[next].lo {
			cur = next
			next++
		}
		p := point{score: scores[i]}
		if cur >= 0 {
			width := float64(spans[cur].hi - spans[cur].lo + 1)
			p.sig = scaledSigmoid(-float64(spans[cur].hi-i+1) / width)
			p.window = f.first + cur
		} else {
			pos := 3.0 // before the first window: full cost
			if prevRight >= 0 {
				// NAB divides by width-1; a one-row window would divide
				// by zero, which NAB's float division turns into +Inf.
				pos = math.Inf(1)
				if prevWidth > 1 {
					pos = float64(i-prevRight) / (prevWidth - 1)
				}
			}
			p.sig = scaledSigmoid(pos)
			p.window = outside
		}
		if i < prob {
			p.window = probation
		}
		f.points[i] = p
		if cur >= 0 && i == spans[cur].hi {
			prevRight = i
			prevWidth = float64(spans[cur].hi - spans[cur].lo + 1)
			cur = -1
		}
	}
	// A window entirely inside the probation period is not scored at all,
	// as in NAB, which only charges windows that have a scorable row.
	counted := make([]bool, len(spans))
	for _, p := range f.points {
		if p.window >= 0 {
			counted[p.window-f.first] = true
		}
	}
	for _, ok := range counted {
		if ok {
			f.windows++
		}
	}
	c.windows += len(spans)
	c.Files = append(c.Files, f)
	return nil
}

// Windows returns the number of scored windows in the corpus.
func (c *Corpus) Windows() int {
	n := 0
	for _, f := range c.Files {
		n += f.windows
	}
	return n
}

// raw scores files at a threshold: detections are rows with score >= thr.
func raw(files []*File, p Profile, thr float64) float64 {
	total := 0.0
	for _, f := range files {
		best := make(map[int]float64, f.windows)
		for _, pt := range f.points {
			if pt.window == probation {
				continue
			}
			if pt.window >= 0 {
				if _, ok := best[pt.window]; !ok {
					best[pt.window] = -p.FN
				}
				if pt.score >= thr {
					best[pt.window] = max(best[pt.window], pt.sig*p.TP/maxTP)
				}
				continue
			}
			if pt.score >= thr {
				total += pt.sig * p.FP
			}
		}
		for _, v := range best {
			total += v
		}
	}
	return total
}

// Threshold returns the threshold that maximises the corpus' raw score for
// profile p, and that score. Like NAB's sweep it tries every distinct score
// (detections are rows at or above it) and "never fire"; ties go to the
// highest threshold.
func (c *Corpus) Threshold(p Profile) (thr, score float64) {
	return threshold(c.Files, p)
}

// threshold is Threshold over a subset of the corpus' files.
func threshold(files []*File, p Profile) (thr, score float64) {
	type row struct {
		score, sig float64
		window     int
	}
	var rows []row
	windows := 0
	for _, f := range files {
		for _, pt := range f.points {
			if pt.window != probation {
				rows = append(rows, row{pt.score, pt.sig, pt.window})
			}
		}
		windows += f.windows
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(b.score, a.score) })
	best := make(map[int]float64)
	cur := -p.FN * float64(windows) // nothing detected
	thr, score = math.Inf(1), cur
	for i := 0; i < len(rows); {
		t := rows[i].score
		for ; i < len(rows) && rows[i].score == t; i++ {
			r := rows[i]
			if r.window < 0 {
				cur += r.sig * p.FP
				continue
			}
			v := r.sig * p.TP / maxTP
			old, ok := best[r.window]
			if !ok {
				old = -p.FN
			}
			if v > old {
				best[r.window] = v
				cur += v - old
			}
		}
		if cur > score+1e-12 {
			thr, score = t, cur
		}
	}
	return thr, score
}

// ProfileScore is one profile's result over a set of files.
type ProfileScore struct {
	Profile    string
	Threshold  float64
	Raw        float64
	Null       float64 // raw score of a detector that never fires
	Perfect    float64 // raw score of one detection at the start of every window
	Normalized float64 // 100 * (Raw - Null) / (Perfect - Null)
}

// MarshalJSON writes a threshold of +Inf (best never to fire, as for a
// corpus without windows) as null: JSON has no infinity.
func (s ProfileScore) MarshalJSON() ([]byte, error) {
	type plain ProfileScore
	out := struct {
		plain
		Threshold *float64
	}{plain: plain(s)}
	if !math.IsInf(s.Threshold, 0) {
		out.Threshold = &s.Threshold
	}
	return json.Marshal(out)
}

// Score optimises the threshold for p over the whole corpus and normalises
// the result.
func (c *Corpus) Score(p Profile) ProfileScore {
	thr, _ := c.Threshold(p)
	return c.ScoreAt(p, thr, c.Files)
}

// ScoreAt scores files at a fixed threshold (a category of the corpus, say,
// at the corpus-wide threshold).
func (c *Corpus) ScoreAt(p Profile, thr float64, files []*File) ProfileScore {
	windows := 0
	for _, f := range files {
		windows += f.windows
	}
	s := ProfileScore{Profile: p.Name, Threshold: thr, Raw: raw(files, p, thr)}
	s.Null = -p.FN * float64(windows)
	s.Perfect = perfect(files, p)
	if s.Perfect != s.Null {
		s.Normalized = 100 * (s.Raw - s.Null) / (s.Perfect - s.Null)
	}
	return s
}

// perfect scores a detector that fires exactly once, on the first scorable
// row of every window, through the same code path as a real detector.
func perfect(files []*File, p Profile) float64 {
	pf := make([]*File, len(files))
	for i, f := range files {
		g := &File{Name: f.Name, windows: f.windows, first: f.first, points: make([]point, len(f.points))}
		copy(g.points, f.points)
		seen := map[int]bool{}
		for j := range g.points {
			g.points[j].score = 0
			if w := g.points[j].window; w >= 0 && !seen[w] {
				seen[w] = true
				g.points[j].score = 1
			}
		}
		pf[i] = g
	}
	return raw(pf, p, 1)
}

// FileDetail is one file's share of a profile's raw score at a threshold:
// what its windows earned and what its false positives cost.
type FileDetail struct {
	Name     string
	Windows  int       // scored windows
	Found    int       // windows with a detection
	Earned   []float64 // per window: the best detection's reward, or -FN
	FPs      int       // detections outside every window
	FPCost   float64   // their total (negative) cost
	Raw      float64   // Earned + FPCost
	Detected int       // detections in all (rows at or above the threshold)
}

// Details breaks the raw score of profile p at threshold thr down per file,
// to see where points are lost.
func (c *Corpus) Details(p Profile, thr float64) []FileDetail {
	out := make([]FileDetail, 0, len(c.Files))
	for _, f := range c.Files {
		d := FileDetail{Name: f.Name, Windows: f.windows}
		best := map[int]float64{}
		order := []int{}
		for _, pt := range f.points {
			if pt.window == probation {
				continue
			}
			if pt.score >= thr {
				d.Detected++
			}
			if pt.window >= 0 {
				if _, ok := best[pt.window]; !ok {
					best[pt.window] = -p.FN
					order = append(order, pt.window)
				}
				if pt.score >= thr {
					best[pt.window] = max(best[pt.window], pt.sig*p.TP/maxTP)
				}
				continue
			}
			if pt.score >= thr {
				d.FPs++
				d.FPCost += pt.sig * p.FP
			}
		}
		d.Raw = d.FPCost
		for _, w := range order {
			d.Earned = append(d.Earned, best[w])
			d.Raw += best[w]
			if best[w] > -p.FN {
				d.Found++
			}
		}
		out = append(out, d)
	}
	return out
}
