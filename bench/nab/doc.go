// Package nab runs Vigil's numeric detector over the Numenta Anomaly
// Benchmark (NAB) and scores it with a Go port of NAB v1's scoring rules.
//
// Run reads DataDir/<category>/<file>.csv, feeds each series point by point
// in file order to a fresh models.Detector built from one configuration
// (the platform's defaults unless Options.Detector says otherwise), writes
// OutDir/<category>/<file>.csv with timestamp,value,anomaly_score, and, given
// NAB's combined_windows.json, scores the corpus for the three profiles.
//
// The scorer follows numenta/NAB's nab/sweeper.py: windows are entered and
// left at their limit rows, the first 15% of each file (at most 750 rows)
// is not scored and a window inside it is not counted, only the earliest
// detection in a window counts (TP x S(x)/S(-1)), every detection outside a
// window costs FP x S(d) with d measured from the end of the preceding
// window over its width minus one (full cost before the first window or from
// 3 widths on), a missed window costs FN, one threshold per profile is
// chosen over the whole corpus by sweeping every distinct score, and scores
// are normalised against the null (never fires) and perfect (fires at the
// start of every window) detectors. Unit tests check hand-worked cases; the
// scores it prints on the development split were also checked against a
// line-by-line Python port of sweeper.py and agreed to 1e-4.
package nab
