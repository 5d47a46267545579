// Package overhead measures what Vigil's probes cost the observed system:
// the time per write(2) of one byte to /dev/null in a tight loop with the
// probes attached, against the same loop with none, in one run.
// `vigil bench overhead` calls Run.
package overhead

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/vigil-dev/vigil/collector"
)

// Options configure a run; zero fields take the defaults in brackets.
type Options struct {
	// Duration of each phase [2s]; there are three: without probes, with,
	// and without again. Each phase reports its median batch of 1000 writes.
	Duration time.Duration
	// Probes to attach [all].
	Probes []string
	// Out receives a short table; nil prints nothing.
	Out io.Writer
	// Logger for the collector [slog.Default()].
	Logger *slog.Logger
}

// Result is what a run measured. JSON field names are stable.
type Result struct {
	Probes []string `json:"probes"`
	Failed []string `json:"failed,omitempty"`
	// BaselineNsPerOp is the mean of the two phases without probes.
	BaselineNsPerOp float64 `json:"baseline_ns_per_op"`
	ProbedNsPerOp   float64 `json:"probed_ns_per_op"`
	// Ratio is ProbedNsPerOp / BaselineNsPerOp (goal ≤ 1.5).
	Ratio float64 `json:"ratio"`
	// Drift is the difference between the two baselines relative to their
	// mean: how much to trust Ratio on a shared machine.
	Drift float64 `json:"drift"`
}

// Run measures. The loop runs in this process and the collector is told
// to observe it (Options.IncludeSelf), so the in-kernel programs do their
// full work for every call. It needs root.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Duration <= 0 {
		opts.Duration = 2 * time.Second
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var res Result
	f, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		return res, fmt.Errorf("overhead: %w", err)
	}
	defer f.Close()
	fd := f.Fd()

	base1 := loop(ctx, fd, opts.Duration)

	c, err := collector.New(collector.Options{Probes: opts.Probes, Logger: opts.Logger, IncludeSelf: true})
	if err != nil {
		return res, fmt.Errorf("overhead: %w", err)
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	out := make(chan collector.Batch, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case b := <-out:
				b.Record.Release()
			case <-runCtx.Done():
				return
			}
		}
	})
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx, out) }()
	time.Sleep(100 * time.Millisecond)

	probed := loop(ctx, fd, opts.Duration)

	stop()
	err = <-runErr
	wg.Wait()
	for _, p := range c.Stats().Probes {
		res.Probes = append(res.Probes, p.Probe)
	}
	res.Failed = c.Stats().Failed
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("overhead: %w", err)
	}

	base2 := loop(ctx, fd, opts.Duration)

	res.BaselineNsPerOp = (base1 + base2) / 2
	res.ProbedNsPerOp = probed
	res.Ratio = probed / res.BaselineNsPerOp
	res.Drift = (base2 - base1) / res.BaselineNsPerOp
	tw := tabwriter.NewWriter(opts.Out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "probes\tbaseline ns/write\tprobed ns/write\tratio\tbaseline drift\t\n")
	fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2fx\t%+.1f%%\t\n", len(res.Probes), res.BaselineNsPerOp, probed, res.Ratio, 100*res.Drift)
	tw.Flush()
	return res, nil
}

// loop writes one byte to fd on a locked thread for d, in batches of
// 1000, and returns the median ns per write over the batches: on a shared
// machine the median ignores batches that other work interrupted, which a
// mean would not.
func loop(ctx context.Context, fd uintptr, d time.Duration) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var b [1]byte
	p := uintptr(unsafe.Pointer(&b[0]))
	const batch = 1000
	var per []float64
	end := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(end) {
		t0 := time.Now()
		for range batch {
			syscall.RawSyscall(syscall.SYS_WRITE, fd, p, 1)
		}
		per = append(per, float64(time.Since(t0).Nanoseconds())/batch)
	}
	if len(per) == 0 {
		return 0
	}
	slices.Sort(per)
	return per[len(per)/2]
}
