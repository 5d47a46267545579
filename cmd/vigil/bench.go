package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/bench/nab"
	"github.com/vigil-dev/vigil/models"
)

// benchReport is the JSON every `vigil bench` subcommand writes to --out:
// what ran, on what machine, and its figures.
type benchReport struct {
	Bench   string    `json:"bench"`
	Started time.Time `json:"started"`
	Machine machine   `json:"machine"`
	Result  any       `json:"result"`
}

type machine struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	Host   string `json:"host"`
}

func thisMachine() machine {
	h, _ := os.Hostname()
	return machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version(), Host: h}
}

// writeReport writes OUT/<bench>.json; an empty out writes nothing.
func writeReport(out, bench string, started time.Time, result any) error {
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create --out dir: %w", err)
	}
	b, err := json.MarshalIndent(benchReport{Bench: bench, Started: started.UTC(), Machine: thisMachine(), Result: result}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s results: %w", bench, err)
	}
	path := filepath.Join(out, bench+".json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a path: each subcommand prints a short table and writes JSON to --out",
		Args:  cobra.NoArgs,
	}
	cmd.PersistentFlags().String("out", "", "directory for the JSON results (default: print only)")
	cmd.AddCommand(newBenchNABCmd(), newBenchModelsCmd())
	cmd.AddCommand(extraBenchCmds()...)
	return cmd
}

func newBenchNABCmd() *cobra.Command {
	var data, labels string
	var cross, baseline bool
	var every, offset int
	cmd := &cobra.Command{
		Use:   "nab",
		Short: "Run the numeric detector over the Numenta Anomaly Benchmark and score it with NAB's rules",
		Long: `Reads DATA/<category>/<file>.csv (header timestamp,value) and scores every point, in time
order, with the same numeric detector the platform uses (one configuration for every file).
Writes OUT/<category>/<file>.csv (timestamp,value,anomaly_score). With --labels (NAB's
combined_windows.json) it also scores itself with NAB's rules and prints the three profiles.
--cross adds a leave-one-category-out check: each category scored at the threshold chosen on
the others, next to the corpus threshold and the category's own optimum. --every K scores the
corpus as if sampled K times more coarsely (every K-th row from row --offset, same label
windows): a check of how much the score owes to this corpus' cadence. --baseline scores NAB's
windowed Gaussian over the same rows in the same run, for reference.`,
		Example: `  vigil bench nab --data ../shared/nab/data --labels ../shared/nab/labels/combined_windows.json --out /tmp/nab`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, log, err := setup(cmd)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			if data == "" {
				return fmt.Errorf("--data is required: the NAB data directory (DIR/<category>/<file>.csv)")
			}
			if st, err := os.Stat(data); err != nil || !st.IsDir() {
				return fmt.Errorf("--data %s: not a directory", data)
			}
			if (cross || baseline) && labels == "" {
				return fmt.Errorf("--cross and --baseline score the run: they need --labels (NAB's combined_windows.json)")
			}
			if every < 1 {
				return fmt.Errorf("--every %d: must be at least 1 (1 scores every row)", every)
			}
			if offset < 0 || offset >= every {
				return fmt.Errorf("--offset %d: must be from 0 to --every minus 1 (%d)", offset, every-1)
			}
			started := time.Now()
			res, err := nab.Run(cmd.Context(), nab.Options{
				DataDir:    data,
				OutDir:     out,
				LabelsFile: labels,
				Detector:   models.DefaultDetectorOptions(),
				Log:        log,
				Progress:   cmd.OutOrStdout(),
				Cross:      cross,
				Every:      every,
				Offset:     offset,
				Baseline:   baseline,
			})
			if err != nil {
				return err
			}
			return writeReport(out, "nab", started, res)
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "NAB data directory: DIR/<category>/<file>.csv")
	cmd.Flags().StringVar(&labels, "labels", "", "NAB combined_windows.json, to score the run")
	cmd.Flags().BoolVar(&cross, "cross", false, "with --labels: leave-one-category-out threshold check")
	cmd.Flags().BoolVar(&baseline, "baseline", false, "with --labels: also score NAB's windowed Gaussian over the same rows, as a reference")
	cmd.Flags().IntVar(&every, "every", 1, "robustness check: keep every K-th row of each file (the corpus sampled K times more coarsely)")
	cmd.Flags().IntVar(&offset, "offset", 0, "with --every: the first row kept (0 to K-1)")
	return cmd
}

func newBenchModelsCmd() *cobra.Command {
	var points, series int
	cmd := &cobra.Command{
		Use:   "models",
		Short: "Numeric detector throughput per core and memory per live series",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := setup(cmd); err != nil {
				return err
			}
			if points <= 0 || series <= 0 {
				return fmt.Errorf("--points and --series must be positive")
			}
			out, _ := cmd.Flags().GetString("out")
			started := time.Now()
			res, err := models.BenchThroughput(cmd.Context(), models.ThroughputOptions{Points: points, LiveSeries: series})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-34s %14s %10s\n", "measure", "value", "goal")
			fmt.Fprintf(w, "%-34s %14.0f %10s\n", "detector points/s (one core)", res.PointsPerSec, ">= 5M")
			fmt.Fprintf(w, "%-34s %14.0f %10s\n", "bank points/s (hash+LRU, one core)", res.BankPointsPerS, "")
			fmt.Fprintf(w, "%-34s %14d %10s\n", "checkpoint bytes per series", res.StateBytes, "<= 2048")
			fmt.Fprintf(w, "%-34s %14.1f %10s\n", fmt.Sprintf("heap MB for %d live series", res.LiveSeries), float64(res.HeapBytes)/1e6, "< 200")
			return writeReport(out, "models", started, res)
		},
	}
	cmd.Flags().IntVar(&points, "points", 5_000_000, "points to push through one detector")
	cmd.Flags().IntVar(&series, "series", 100_000, "live series to hold for the memory figure")
	return cmd
}
