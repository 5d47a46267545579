// Package collect measures the collector's throughput: events per second
// from the kernel's ring buffer to Arrow batches under a real in-kernel
// load, with kernel and user-space drops, the decoder's rate on its own and
// the process's peak RSS. `vigil bench collector` calls Run.
//
// The load is either a system call per event (the priv probe reports each
// call) or, with Options.Burst, a system call per Burst events written into
// the priv probe's ring buffer by a bench-only BPF program (bpf/benchload),
// which measures the collector beyond the rate one core can make calls at.
package collect

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sysbpf "github.com/vigil-dev/vigil/bpf/sys"
	"github.com/vigil-dev/vigil/collector"
)

// Options configure a run; zero fields take the defaults in brackets.
type Options struct {
	// Duration of the load [5s].
	Duration time.Duration
	// Workers are load threads, each making ptrace(PEEKDATA) calls on a
	// pid that does not exist, which the priv probe reports, one event per
	// call [1].
	Workers int
	// Burst, when above 0, switches the load to kernel-generated records:
	// each worker calls getppid, and bpf/benchload writes Burst records in
	// the priv probe's format into its ring buffer per call (at most
	// maxBurst). This measures the collector's capacity, not the cost of a
	// syscall per event. 0 is the syscall-per-event load.
	Burst int
	// Rate caps the load at this many events per second in total; 0 runs
	// the load as fast as it goes.
	Rate int
	// BatchRows per Arrow batch [8192].
	BatchRows int
	// DecodeRecords is how many records the decoder-only measurement
	// decodes [2,000,000].
	DecodeRecords int
	// Out receives a short table; nil prints nothing.
	Out io.Writer
	// Logger for the collector [slog.Default()].
	Logger *slog.Logger
}

// Result is what a run measured. JSON field names are stable.
type Result struct {
	Probe   string `json:"probe"`
	Workers int    `json:"workers"`
	// Burst is Options.Burst: records per load syscall, 0 for the
	// syscall-per-event load.
	Burst           int     `json:"burst"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Generated is the number of events the kernel produced: the calls
	// the load made, or with Burst the records bpf/benchload submitted or
	// failed to reserve, as it counted them.
	Generated uint64 `json:"generated"`
	// Events is the number of rows the collector delivered in batches.
	Events uint64 `json:"events"`
	// OtherEvents are the rows of Events from other processes (priv calls
	// made elsewhere during the run). Generated = Events - OtherEvents +
	// KernelDrops + UserDrops exactly unless another process's rows were
	// dropped too.
	OtherEvents  uint64  `json:"other_events"`
	EventsPerSec float64 `json:"events_per_sec"`
	Batches      uint64  `json:"batches"`
	KernelDrops  uint64  `json:"kernel_drops"`
	UserDrops    uint64  `json:"user_drops"`
	// DecodePerSec is records per second through the decoder and Arrow
	// builder alone, on one goroutine, without the kernel.
	DecodePerSec float64 `json:"decode_per_sec"`
	// PeakRSSBytes is the process's peak resident set (VmHWM).
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`
	// CollectorCPUSeconds is the process's CPU time during the run minus
	// the load threads' own: what reading, decoding and building cost.
	CollectorCPUSeconds float64 `json:"collector_cpu_seconds"`
	// EventsPerCPUSecond is Events / CollectorCPUSeconds: the rate one
	// fully used core would sustain, when the load cannot saturate it.
	EventsPerCPUSecond float64 `json:"events_per_cpu_second"`
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 8192
	}
	if o.DecodeRecords <= 0 {
		o.DecodeRecords = 2_000_000
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Run loads the priv probe, runs the load for opts.Duration and reports.
// It needs root (it loads BPF programs).
func Run(ctx context.Context, opts Options) (Result, error) {
	opts.defaults()
	if opts.Burst < 0 || opts.Burst > maxBurst {
		return Result{}, fmt.Errorf("bench collector: burst %d: want 0 to %d", opts.Burst, maxBurst)
	}
	res := Result{Probe: "priv", Workers: opts.Workers, Burst: opts.Burst}

	var err error
	if res.DecodePerSec, err = decodeRate(opts.DecodeRecords); err != nil {
		return res, err
	}

	c, err := collector.New(collector.Options{
		Probes:       []string{"priv"},
		Host:         "bench",
		BatchRows:    opts.BatchRows,
		QueueBatches: 256,
		Logger:       opts.Logger,
		IncludeSelf:  true, // the load runs in this process
	})
	if err != nil {
		return res, fmt.Errorf("bench collector: %w", err)
	}
	defer c.Close()
	var burst *burstLoad
	if opts.Burst > 0 {
		if burst, err = openBurst(c, opts.Burst); err != nil {
			return res, err
		}
		defer burst.Close() // before c.Close
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	out := make(chan collector.Batch, 64)
	var rows, other, batches atomic.Uint64
	var wg sync.WaitGroup
	self := uint32(os.Getpid())
	wg.Go(func() {
		for {
			select {
			case b := <-out:
				rows.Add(uint64(b.Record.NumRows()))
				other.Add(otherRows(b.Record, self))
				batches.Add(1)
				b.Record.Release()
			case <-runCtx.Done():
				return
			}
		}
	})
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx, out) }()

	cpu0 := processCPU()
	start := time.Now()
	generated, loadCPU := load(ctx, opts)
	res.DurationSeconds = time.Since(start).Seconds()
	if burst != nil {
		// The load has stopped: the counters are final.
		submitted, failed, err := burst.counts()
		if err != nil {
			return res, err
		}
		if generated*uint64(opts.Burst) != submitted+failed {
			opts.Logger.Warn("burst load: records counted differ from calls × burst",
				"calls", generated, "burst", opts.Burst, "submitted", submitted, "failed", failed)
		}
		generated = submitted + failed
	}

	// Let the readers drain the ring, then stop.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		s := c.Stats().Probes[0]
		if s.Events+s.KernelDrops >= generated {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // last age-based flush
	res.CollectorCPUSeconds = (processCPU() - cpu0 - loadCPU).Seconds()
	stop()
	if err := <-runErr; err != nil {
		return res, err
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		return res, err
	}
	s := c.Stats().Probes[0]
	res.Generated = generated
	res.Events = rows.Load()
	res.OtherEvents = other.Load()
	res.Batches = batches.Load()
	res.KernelDrops = s.KernelDrops
	res.UserDrops = s.UserDrops
	res.EventsPerSec = float64(res.Events) / res.DurationSeconds
	res.PeakRSSBytes = peakRSS()
	if res.CollectorCPUSeconds > 0 {
		res.EventsPerCPUSecond = float64(res.Events) / res.CollectorCPUSeconds
	}
	printTable(opts.Out, res)
	return res, nil
}

// load makes ptrace(PEEKDATA) calls on a pid that cannot exist (ESRCH), or
// with Burst getppid calls, on Workers locked threads until Duration
// passes, paced to Rate events per second if set, and returns how many
// calls it made and the CPU time the load threads used (with Burst, that
// includes writing the records, which runs in the calls).
func load(ctx context.Context, opts Options) (uint64, time.Duration) {
	var total, cpu atomic.Uint64
	var wg sync.WaitGroup
	end := time.Now().Add(opts.Duration)
	perCall := uint64(max(opts.Burst, 1)) // events per call
	perWorker := float64(opts.Rate) / float64(opts.Workers) / float64(perCall)
	for range opts.Workers {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			defer func() { cpu.Add(uint64(threadCPU() - cpu0)) }()
			start := time.Now()
			var n uint64
			const chunk = 256
			for ctx.Err() == nil {
				now := time.Now()
				if now.After(end) {
					break
				}
				if perWorker > 0 {
					due := start.Add(time.Duration(float64(n) / perWorker * float64(time.Second)))
					if d := due.Sub(now); d > 0 {
						time.Sleep(d)
						continue
					}
				}
				if opts.Burst > 0 {
					for range chunk {
						syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
					}
				} else {
					for range chunk {
						syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_PEEKDATA, 1<<22-1, 0)
					}
				}
				n += chunk
			}
			total.Add(n)
		})
	}
	wg.Wait()
	return total.Load(), time.Duration(cpu.Load())
}

func threadCPU() time.Duration  { return rusage(syscall.RUSAGE_THREAD) }
func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// otherRows counts the rows of a priv batch whose pid is not self.
func otherRows(rec arrow.RecordBatch, self uint32) uint64 {
	idx := rec.Schema().FieldIndices("pid")
	if len(idx) != 1 {
		return 0
	}
	pids, ok := rec.Column(idx[0]).(*array.Uint32)
	if !ok {
		return 0
	}
	var n uint64
	for _, pid := range pids.Uint32Values() {
		if pid != self {
			n++
		}
	}
	return n
}

// decodeRate times the priv decoder and Arrow builder on n records.
func decodeRate(n int) (float64, error) {
	d, err := collector.NewDecoder(collector.KindPriv, "bench", memory.DefaultAllocator)
	if err != nil {
		return 0, err
	}
	defer d.Release()
	var e sysbpf.ProbePrivEvent
	e.Pid, e.Tid, e.Nr, e.Args = 4242, 4243, 117, [3]uint64{1<<32 - 1, 1<<32 - 1, 1<<32 - 1}
	copy(e.Comm[:], "bench")
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e))
	start := time.Now()
	for range n {
		if err := d.Append(raw); err != nil {
			return 0, err
		}
		if d.Len() == 8192 {
			d.Flush().Record.Release()
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// peakRSS reads VmHWM from /proc/self/status.
func peakRSS() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func printTable(w io.Writer, r Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "probe\tworkers\tburst\tseconds\tgenerated\tevents\tother\tevents/s\tkernel drops\tuser drops\tcollector CPU s\tevents/CPU-s\tdecode/s\tpeak RSS MB\t\n")
	fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%d\t%d\t%d\t%.0f\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t\n", r.Probe, r.Workers, r.Burst, r.DurationSeconds,
		r.Generated, r.Events, r.OtherEvents, r.EventsPerSec, r.KernelDrops, r.UserDrops, r.CollectorCPUSeconds, r.EventsPerCPUSecond,
		r.DecodePerSec, float64(r.PeakRSSBytes)/(1<<20))
	tw.Flush()
}
