package nab

import (
	"fmt"
	"io"
	"slices"
)

// CrossRow is one category of a leave-one-category-out check.
type CrossRow struct {
	Category string
	Files    int
	Windows  int
	// AtCorpus scores the category at the threshold chosen on the whole
	// corpus (what the reported score uses), AtOwn at the threshold that is
	// best for this category alone, HeldOut at the threshold chosen on the
	// other categories only. Each is normalised against the category's own
	// null and perfect scores (a category without windows has only Raw).
	AtCorpus, AtOwn, HeldOut ProfileScore
}

// CrossScore is a leave-one-category-out check of one profile: how much of
// the corpus score depends on the threshold having been fitted to the very
// files it scores.
type CrossScore struct {
	Profile string
	Rows    []CrossRow
	// Corpus, PerCategory and HeldOut are corpus-wide normalised scores
	// when every category is scored at, respectively, the corpus threshold
	// (the reported score), its own optimum (an upper bound) and the
	// threshold chosen without it (an estimate of the score on unseen
	// categories).
	Corpus, PerCategory, HeldOut float64
}

// Cross runs the leave-one-category-out check for profile p over cats
// (category -> its files, all of them in c).
func (c *Corpus) Cross(p Profile, cats map[string][]*File) CrossScore {
	names := make([]string, 0, len(cats))
	for n := range cats {
		names = append(names, n)
	}
	slices.Sort(names)
	corpusThr, _ := threshold(c.Files, p)
	out := CrossScore{Profile: p.Name}
	var null, perfectSum, rawCorpus, rawOwn, rawHeld float64
	for _, n := range names {
		fs := cats[n]
		var rest []*File
		for _, m := range names {
			if m != n {
				rest = append(rest, cats[m]...)
			}
		}
		ownThr, _ := threshold(fs, p)
		heldThr, _ := threshold(rest, p)
		r := CrossRow{
			Category: n,
			Files:    len(fs),
			AtCorpus: c.ScoreAt(p, corpusThr, fs),
			AtOwn:    c.ScoreAt(p, ownThr, fs),
			HeldOut:  c.ScoreAt(p, heldThr, fs),
		}
		for _, f := range fs {
			r.Windows += f.windows
		}
		out.Rows = append(out.Rows, r)
		null += r.AtCorpus.Null
		perfectSum += r.AtCorpus.Perfect
		rawCorpus += r.AtCorpus.Raw
		rawOwn += r.AtOwn.Raw
		rawHeld += r.HeldOut.Raw
	}
	if perfectSum != null {
		norm := func(raw float64) float64 { return 100 * (raw - null) / (perfectSum - null) }
		out.Corpus, out.PerCategory, out.HeldOut = norm(rawCorpus), norm(rawOwn), norm(rawHeld)
	}
	return out
}

// Print writes the check as a table.
func (x CrossScore) Print(w io.Writer) {
	fmt.Fprintf(w, "leave-one-category-out, %s profile (threshold / normalised score; raw where a category has no windows)\n", x.Profile)
	fmt.Fprintf(w, "  %-24s %5s %4s  %-18s %-18s %-18s\n", "category", "files", "win", "corpus thr", "own optimum", "held out")
	cell := func(s ProfileScore) string {
		if s.Perfect == s.Null {
			return fmt.Sprintf("%.4f raw %6.2f", s.Threshold, s.Raw)
		}
		return fmt.Sprintf("%.4f %10.2f", s.Threshold, s.Normalized)
	}
	for _, r := range x.Rows {
		fmt.Fprintf(w, "  %-24s %5d %4d  %-18s %-18s %-18s\n", r.Category, r.Files, r.Windows, cell(r.AtCorpus), cell(r.AtOwn), cell(r.HeldOut))
	}
	fmt.Fprintf(w, "  %-35s  %-18s %-18s %-18s\n", "corpus (each category at that thr)",
		fmt.Sprintf("%17.2f", x.Corpus), fmt.Sprintf("%17.2f", x.PerCategory), fmt.Sprintf("%17.2f", x.HeldOut))
}
