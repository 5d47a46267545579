package nab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dev/vigil/models"
)

// Options configures Run.
type Options struct {
	DataDir    string // DataDir/<category>/<file>.csv, header timestamp,value
	OutDir     string // where OutDir/<category>/<file>.csv results go; empty writes nothing
	LabelsFile string // NAB combined_windows.json; empty skips scoring
	Detector   models.DetectorOptions
	Log        *slog.Logger
	Progress   io.Writer // human-readable summary; nil for none
	// Cross adds a leave-one-category-out check of every profile to the
	// result (needs LabelsFile).
	Cross bool
	// Every, above 1, keeps only every Every-th row of each file, from
	// row Offset on: the corpus as if sampled that much more coarsely,
	// with the same label windows. It is a robustness check of constants
	// counted in points; results hold the rows kept. Which rows are kept
	// matters (a one-row spike is kept or not), so a fair figure averages
	// the offsets 0 to Every-1.
	Every, Offset int
	// Baseline also runs NAB's windowed Gaussian over the same rows and
	// scores it (needs LabelsFile), as a reference in the same run.
	Baseline bool
}

// Result is what a run measured.
type Result struct {
	Files    int
	Points   int
	Elapsed  time.Duration // detector time only, excluding I/O
	Profiles []ProfileScore
	// Categories holds, per category, each profile's score at the
	// corpus-wide threshold, normalised against that category's own
	// null and perfect scores.
	Categories map[string][]ProfileScore
	// Cross is the leave-one-category-out check, one per profile, when
	// Options.Cross asked for it.
	Cross []CrossScore `json:",omitempty"`
	// Baseline is the windowed Gaussian's score per profile, when
	// Options.Baseline asked for it.
	Baseline []ProfileScore `json:",omitempty"`
	// Unlabelled are data files the labels do not name, and NoData the
	// labelled files with no data file: neither is scored, and the scores
	// are of the rest only.
	Unlabelled []string `json:",omitempty"`
	NoData     []string `json:",omitempty"`
}

// Standard returns the standard profile's normalised score.
func (r Result) Standard() float64 {
	for _, p := range r.Profiles {
		if p.Profile == "standard" {
			return p.Normalized
		}
	}
	return 0
}

// Run scores every series in opts.DataDir with a fresh detector, point by
// point in time order, writes the scores and, given labels, scores the
// corpus the way NAB does.
func Run(ctx context.Context, opts Options) (Result, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	files, err := filepath.Glob(filepath.Join(opts.DataDir, "*", "*.csv"))
	if err != nil {
		return res, fmt.Errorf("list data: %w", err)
	}
	if len(files) == 0 {
		return res, fmt.Errorf("list data: no <category>/<file>.csv under %s", opts.DataDir)
	}
	sort.Strings(files)
	var labels map[string][]Window
	if opts.LabelsFile != "" {
		if labels, err = ReadWindows(opts.LabelsFile); err != nil {
			return res, err
		}
	}
	corpus, base := &Corpus{}, &Corpus{}
	seen := map[string]bool{} // labelled files scored
	catFiles := map[string][]*File{}
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rel, _ := filepath.Rel(opts.DataDir, path)
		rel = filepath.ToSlash(rel)
		s, err := readFile(path)
		if err != nil {
			return res, err
		}
		if opts.Every > 1 {
			s = s.Every(opts.Every, opts.Offset)
		}
		start := time.Now()
		scores := Detect(s, opts.Detector)
		res.Elapsed += time.Since(start)
		res.Files++
		log.Info("nab: scored", "file", rel, "points", len(scores), "done", res.Files, "of", len(files))
		res.Points += len(scores)
		if opts.OutDir != "" {
			if err := writeScores(filepath.Join(opts.OutDir, filepath.FromSlash(rel)), s, scores); err != nil {
				return res, err
			}
		}
		if labels == nil {
			continue
		}
		w, ok := labels[rel]
		if !ok {
			log.Warn("no label windows, file not scored", "file", rel)
			res.Unlabelled = append(res.Unlabelled, rel)
			continue
		}
		seen[rel] = true
		if err := corpus.Add(rel, s.Times, scores, w); err != nil {
			return res, err
		}
		if opts.Baseline {
			if err := base.Add(rel, s.Times, WindowedGaussian(s.Values), w); err != nil {
				return res, err
			}
		}
		cat := filepath.Dir(filepath.FromSlash(rel))
		catFiles[cat] = append(catFiles[cat], corpus.Files[len(corpus.Files)-1])
	}
	for rel := range labels {
		if !seen[rel] {
			res.NoData = append(res.NoData, rel)
		}
	}
	slices.Sort(res.NoData)
	if len(res.NoData) > 0 {
		log.Warn("labelled files with no data file, not scored", "files", len(res.NoData), "first", res.NoData[0], "data", opts.DataDir)
	}
	if labels != nil {
		res.Categories = map[string][]ProfileScore{}
		for _, p := range Profiles {
			ps := corpus.Score(p)
			res.Profiles = append(res.Profiles, ps)
			for cat, fs := range catFiles {
				res.Categories[cat] = append(res.Categories[cat], corpus.ScoreAt(p, ps.Threshold, fs))
			}
			if opts.Cross {
				res.Cross = append(res.Cross, corpus.Cross(p, catFiles))
			}
			if opts.Baseline {
				res.Baseline = append(res.Baseline, base.Score(p))
			}
		}
	}
	if opts.Progress != nil {
		res.Print(opts.Progress)
	}
	return res, nil
}

// Print writes a human-readable summary.
func (r Result) Print(w io.Writer) {
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(r.Points) / r.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "NAB: %d files, %d points, detector %.1fM points/s\n", r.Files, r.Points, rate/1e6)
	for _, miss := range []struct {
		what  string
		files []string
	}{{"with no label windows", r.Unlabelled}, {"labelled but with no data file", r.NoData}} {
		if n := len(miss.files); n > 0 {
			more := ""
			if n > 5 {
				more = ", …"
			}
			fmt.Fprintf(w, "  not scored: %d file(s) %s, the scores are of the rest only: %s%s\n", n, miss.what, strings.Join(miss.files[:min(n, 5)], ", "), more)
		}
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(w, "  %-20s %6.2f  (raw %.3f, threshold %.4f)\n", p.Profile, p.Normalized, p.Raw, p.Threshold)
	}
	cats := make([]string, 0, len(r.Categories))
	for c := range r.Categories {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	for _, c := range cats {
		fmt.Fprintf(w, "  %-24s", c)
		for _, p := range r.Categories[c] {
			if p.Perfect == p.Null {
				// No windows: nothing to normalise against; show what
				// false positives cost.
				fmt.Fprintf(w, " %s raw %.2f", p.Profile, p.Raw)
				continue
			}
			fmt.Fprintf(w, " %s %.2f", p.Profile, p.Normalized)
		}
		fmt.Fprintln(w)
	}
	for _, x := range r.Cross {
		x.Print(w)
	}
	if len(r.Baseline) > 0 {
		fmt.Fprintf(w, "baseline in the same run: NAB's windowed Gaussian\n")
		for _, p := range r.Baseline {
			fmt.Fprintf(w, "  %-20s %6.2f  (raw %.3f, threshold %.4f)\n", p.Profile, p.Normalized, p.Raw, p.Threshold)
		}
	}
}

// Detect runs a fresh detector over s and returns one score per row.
// Scores are rounded to 6 decimals, exactly what the output file holds, so
// the scorer sees what NAB's would.
func Detect(s *Series, o models.DetectorOptions) []float64 {
	d := models.NewDetector(o)
	out := make([]float64, len(s.Values))
	for i, v := range s.Values {
		sc := d.Update(s.Times[i], v)
		out[i] = float64(int64(sc.Value*1e6+0.5)) / 1e6
	}
	return out
}

func readFile(path string) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open series: %w", err)
	}
	defer f.Close()
	s, err := ReadSeries(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

func writeScores(path string, s *Series, scores []float64) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close output: %w", cerr)
		}
	}()
	w := bufio.NewWriter(f)
	w.WriteString("timestamp,value,anomaly_score\n")
	var buf []byte
	for i := range scores {
		buf = appendField(buf[:0], s.Raw[i])
		buf = append(buf, ',')
		buf = appendField(buf, s.Text[i])
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, scores[i], 'f', 6, 64)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// appendField appends a CSV field, quoting it if it needs quotes (it came
// from a CSV reader, so it may hold anything a quoted field can).
func appendField(b []byte, f string) []byte {
	if !strings.ContainsAny(f, ",\"\r\n") {
		return append(b, f...)
	}
	return append(append(append(b, '"'), strings.ReplaceAll(f, `"`, `""`)...), '"')
}

// ReadWindows reads NAB's combined_windows.json: file path relative to the
// data directory -> list of [start, end] timestamps.
func ReadWindows(path string) (map[string][]Window, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return ParseWindows(b)
}

// ParseWindows parses combined_windows.json content.
func ParseWindows(b []byte) (map[string][]Window, error) {
	var raw map[string][][]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse labels: %w", err)
	}
	out := make(map[string][]Window, len(raw))
	for file, ws := range raw {
		list := make([]Window, 0, len(ws))
		for _, w := range ws {
			if len(w) != 2 {
				return nil, fmt.Errorf("parse labels: %s: window with %d ends", file, len(w))
			}
			a, err := ParseTime(w[0])
			if err != nil {
				return nil, fmt.Errorf("parse labels: %s: %w", file, err)
			}
			z, err := ParseTime(w[1])
			if err != nil {
				return nil, fmt.Errorf("parse labels: %s: %w", file, err)
			}
			list = append(list, Window{Start: a, End: z})
		}
		slices.SortFunc(list, func(a, b Window) int { return a.Start.Compare(b.Start) })
		out[file] = list
	}
	return out, nil
}
