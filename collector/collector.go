// Package collector loads Vigil's eBPF probes, reads their ring buffers and
// in-kernel aggregates, and turns them into Arrow record batches, one Kind
// per batch (see Schema for each kind's columns).
//
// Data flows one way: kernel → one reader goroutine per probe (decode,
// append to that probe's Arrow builder, flush by size or age) → a bounded
// queue → Run's caller. A slow caller never blocks the readers: when the
// queue is full the batch is dropped and counted in Stats. The aggregated
// kinds (syscall_counts, runq_latency) are harvested from in-kernel maps
// once per interval instead.
//
// Probes (Options.Probes, ProbeNames): exec, exit, tcp, retransmit, file,
// priv, syscalls, signal, oom, runq. Their BPF sources live in bpf/<name>
// (file, priv and syscalls share bpf/sys). Rows can be printed with
// WriteJSONL, recorded with Recorder and replayed with ReadRecording.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// Options configure a Collector. The zero value of a field means its
// default (see DefaultOptions).
type Options struct {
	// Probes to load by name (see ProbeNames); nil or empty means all.
	Probes []string
	// Host is written on every row; default os.Hostname().
	Host string
	// BatchRows flushes a probe's batch when it has this many rows.
	BatchRows int
	// FlushInterval flushes a non-empty batch at the latest this long
	// after its first row.
	FlushInterval time.Duration
	// QueueBatches bounds the batches waiting for Run's caller; beyond it
	// batches are dropped and counted.
	QueueBatches int
	// Logger receives probe failures and read errors; default slog.Default().
	Logger *slog.Logger
	// FilePatterns are the paths the file probe reports opens of; nil
	// means DefaultFilePatterns. A pattern matches paths that start with
	// it, or only itself if it ends in '$'; one '*' stands for one path
	// segment ("/proc/*/mem$"), and "~/" expands to /root/ and /home/*/.
	// At most 16 after expansion.
	FilePatterns []string
	// Signals the signal probe reports; nil means DefaultSignals.
	Signals []syscall.Signal
	// IncludeSelf reports the collector's own process too. Off by
	// default so Vigil never observes itself; benchmarks turn it on to
	// generate load in-process.
	IncludeSelf bool

	// genericSyscalls makes the file and priv probes use the generic
	// raw_syscalls hooks, the fallback when the per-syscall tracepoints
	// cannot be attached, so that tests cover it.
	genericSyscalls bool
}

// DefaultOptions returns the defaults applied to zero fields of Options.
func DefaultOptions() Options {
	host, _ := os.Hostname()
	return Options{
		Probes:        ProbeNames(),
		Host:          host,
		BatchRows:     8192,
		FlushInterval: 200 * time.Millisecond,
		QueueBatches:  64,
		Logger:        slog.Default(),
	}
}

func (o *Options) applyDefaults() {
	d := DefaultOptions()
	if len(o.Probes) == 0 {
		o.Probes = d.Probes
	}
	if o.Host == "" {
		o.Host = d.Host
	}
	if o.BatchRows <= 0 {
		o.BatchRows = d.BatchRows
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = d.FlushInterval
	}
	if o.QueueBatches <= 0 {
		o.QueueBatches = d.QueueBatches
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
}

// registry lists every probe in a stable order with the function that
// loads and attaches it.
var registry = []struct {
	name string
	open func(*loadOptions) (*probe, error)
}{
	{"exec", openExec},
	{"exit", openExit},
	{"tcp", openTCP},
	{"retransmit", openRetransmit},
	{"file", openFile},
	{"priv", openPriv},
	{"syscalls", openSyscallCounts},
	{"signal", openSignal},
	{"oom", openOOM},
	{"runq", openRunq},
}

// ProbeNames returns the names of every probe, in load order.
func ProbeNames() []string {
	names := make([]string, len(registry))
	for i, r := range registry {
		names[i] = r.name
	}
	return names
}

// ErrNoProbes is returned by New when not a single requested probe could be
// opened; it wraps each probe's reason.
var ErrNoProbes = errors.New("no probe could be loaded")

// Collector owns loaded probes and, while Run is active, one goroutine per
// probe. Use New, then Run, then Close.
type Collector struct {
	opts Options
	log  *slog.Logger
	env  *env

	probes  []*probe          // opened probes; immutable after New
	failed  []error           // probes that could not be opened, one-line errors
	readers []*ringbuf.Reader // parallel to probes; nil for harvested probes
	// ringMu orders Stats' reads of the rings' positions before Close
	// unmaps them (held for writing only while Close closes the readers).
	ringMu sync.RWMutex

	queue   chan Batch    // bounded hand-off from readers to Run's caller
	done    chan struct{} // closed by Close to stop Run
	running atomic.Bool   // Run is active; guards against a second Run
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New loads and attaches the probes named in opts.Probes. A probe that
// fails is logged and reported by Stats and Failed; New fails only when an
// option is invalid or no probe at all could be opened, with ErrNoProbes
// wrapping every reason.
func New(opts Options) (*Collector, error) {
	opts.applyDefaults()
	for _, name := range opts.Probes {
		if !slices.Contains(ProbeNames(), name) {
			return nil, fmt.Errorf("unknown probe %q (known: %v)", name, ProbeNames())
		}
	}
	c := &Collector{
		opts:  opts,
		log:   opts.Logger,
		env:   &env{host: []byte(opts.Host), clock: &clock{}, cgroups: newCgroupResolver()},
		queue: make(chan Batch, opts.QueueBatches),
		done:  make(chan struct{}),
	}
	c.env.clock.sync()
	c.env.procs = newProcTable(c.env.cgroups)
	c.env.procs.seed()

	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; failure here
	// surfaces as a load error below.
	_ = rlimit.RemoveMemlock()

	lo := &loadOptions{selfTgid: uint32(os.Getpid()), opts: &c.opts}
	if opts.IncludeSelf {
		lo.selfTgid = 0
	}
	for _, r := range registry {
		if !slices.Contains(opts.Probes, r.name) {
			continue
		}
		p, err := r.open(lo)
		if err == nil && p.ring != nil {
			var rd *ringbuf.Reader
			if rd, err = ringbuf.NewReader(p.ring); err != nil {
				p.close()
				err = &probeError{Step: "open ring buffer", Err: err}
			} else {
				c.readers = append(c.readers, rd)
			}
		} else if err == nil {
			c.readers = append(c.readers, nil)
		}
		if err != nil {
			// Copy: probes sharing an object share its load error.
			named := probeError{Step: "open", Err: err}
			if pe := (*probeError)(nil); errors.As(err, &pe) {
				named = *pe
			}
			named.Probe = r.name
			err = &named
			c.log.Warn("probe not loaded", "probe", r.name, "err", err.Error())
			c.failed = append(c.failed, err)
			continue
		}
		p.name = r.name
		c.probes = append(c.probes, p)
	}
	if len(c.probes) == 0 {
		c.env.cgroups.close()
		return nil, fmt.Errorf("%w: %w", ErrNoProbes, errors.Join(c.failed...))
	}
	return c, nil
}

// Failed returns one error per requested probe that could not be opened.
func (c *Collector) Failed() []error { return slices.Clone(c.failed) }

// Run reads every probe and sends its batches to out until ctx is done or
// Close is called, then returns nil. It never blocks a probe reader on out:
// batches wait in a queue of Options.QueueBatches and are dropped (and
// counted as user-space drops) beyond it. Run may be called once.
func (c *Collector) Run(ctx context.Context, out chan<- Batch) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("collector: Run called twice")
	}
	select {
	case <-c.done:
		return errors.New("collector: closed")
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var readers sync.WaitGroup
	for i, p := range c.probes {
		readers.Add(1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer readers.Done()
			if c.readers[i] != nil {
				c.readLoop(ctx, p, c.readers[i])
			} else {
				c.harvestLoop(ctx, p)
			}
		}()
	}
	readersDone := make(chan struct{})
	go func() { readers.Wait(); close(readersDone) }()

	for {
		select {
		case b := <-c.queue:
			select {
			case out <- b:
				continue
			case <-ctx.Done():
				c.drop(b)
			case <-c.done:
				c.drop(b)
			}
		case <-ctx.Done():
		case <-c.done:
		}
		break
	}
	cancel()
	<-readersDone
	// Hand over what the readers flushed on their way out, without waiting.
	for {
		select {
		case b := <-c.queue:
			select {
			case out <- b:
			default:
				c.drop(b)
			}
		default:
			return nil
		}
	}
}

// drop releases a batch that could not be delivered and counts its rows.
func (c *Collector) drop(b Batch) {
	n := uint64(b.Record.NumRows())
	b.Record.Release()
	for _, p := range c.probes {
		if p.kind == b.Kind {
			p.userDrops.Add(n)
			return
		}
	}
}

// emit queues a batch without blocking; a full queue drops it.
func (c *Collector) emit(p *probe, b Batch) {
	select {
	case c.queue <- b:
	default:
		p.userDrops.Add(uint64(b.Record.NumRows()))
		b.Record.Release()
	}
}

// pollInterval bounds how long a reader sleeps without a wakeup: records
// submitted with BPF_RB_NO_WAKEUP are picked up at this cadence.
func (c *Collector) pollInterval() time.Duration {
	return min(max(c.opts.FlushInterval/8, 5*time.Millisecond), 20*time.Millisecond)
}

// readLoop is one probe's reader: decode records into the probe's builder
// and flush by size or age. It returns when ctx is done or rd is closed.
func (c *Collector) readLoop(ctx context.Context, p *probe, rd *ringbuf.Reader) {
	b := p.newBuilder(memory.DefaultAllocator, c.env)
	defer b.release()
	var (
		rec     ringbuf.Record
		first   time.Time // when the oldest unflushed row arrived
		poll    = c.pollInterval()
		maxRows = c.opts.BatchRows
	)
	flush := func() {
		if b.len() == 0 {
			return
		}
		c.env.clock.sync()
		c.emit(p, Batch{Kind: p.kind, Record: b.flush()})
	}
	defer flush()
	rd.SetDeadline(time.Now().Add(poll))
	for {
		err := rd.ReadInto(&rec)
		if err == nil {
			if err := b.append(rec.RawSample); err != nil {
				if p.decodeErrs.Add(1) == 1 {
					c.log.Warn("undecodable record", "probe", p.name, "err", err)
				}
				continue
			}
			p.events.Add(1)
			n := b.len()
			if n == 1 {
				first = time.Now()
			}
			if n >= maxRows {
				flush()
			} else if n%1024 == 0 && time.Since(first) >= c.opts.FlushInterval {
				flush() // a busy ring never reaches the deadline branch
			}
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			rd.SetDeadline(time.Now().Add(poll))
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return
		default:
			c.log.Error("read ring buffer", "probe", p.name, "err", err)
			return
		}
		if b.len() > 0 && time.Since(first) >= c.opts.FlushInterval {
			flush()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// harvestLoop reads a probe's in-kernel aggregates every FlushInterval.
func (c *Collector) harvestLoop(ctx context.Context, p *probe) {
	t := time.NewTicker(harvestEvery(c.opts.FlushInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.env.clock.sync()
		rec, err := p.harvest(memory.DefaultAllocator, c.env)
		if err != nil {
			if p.decodeErrs.Add(1) == 1 {
				c.log.Warn("harvest", "probe", p.name, "err", err)
			}
			continue
		}
		if rec == nil {
			continue
		}
		p.events.Add(uint64(rec.NumRows()))
		c.emit(p, Batch{Kind: p.kind, Record: rec})
	}
}

// harvestEvery is the aggregation window of harvested probes for a flush
// interval: at least a second, so that rows stay few. A variable so tests
// can shorten it.
var harvestEvery = func(flush time.Duration) time.Duration {
	return max(flush, time.Second)
}

// Close stops Run, detaches every probe and frees kernel objects. It is
// safe to call more than once and from any goroutine; errors are joined.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		var errs []error
		c.ringMu.Lock()
		for _, rd := range c.readers {
			if rd != nil {
				errs = append(errs, rd.Close()) // unblocks ReadInto
			}
		}
		c.ringMu.Unlock()
		c.wg.Wait() // no goroutine touches the maps past this point
		for _, p := range c.probes {
			p.readKernelDrops() // keep the final count for Stats
			errs = append(errs, p.close())
		}
		for {
			select {
			case b := <-c.queue:
				b.Record.Release()
				continue
			default:
			}
			break
		}
		c.env.cgroups.close()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// ProbeStats counts one probe's records. KernelDrops are records the probe
// could not reserve ring buffer space for; UserDrops are rows decoded but
// dropped because Run's caller was too slow.
type ProbeStats struct {
	Probe        string `json:"probe"`
	Kind         Kind   `json:"kind"`
	Events       uint64 `json:"events"`
	KernelDrops  uint64 `json:"kernel_drops"`
	UserDrops    uint64 `json:"user_drops"`
	DecodeErrors uint64 `json:"decode_errors"`
	// RingUsedBytes is what waits in the probe's ring buffer now, of
	// RingSizeBytes; both 0 for harvested probes and after Close.
	RingUsedBytes uint64 `json:"ring_used_bytes"`
	RingSizeBytes uint64 `json:"ring_size_bytes"`
}

// Stats is a snapshot of every loaded probe's counters plus the probes
// that failed to load.
type Stats struct {
	Probes []ProbeStats `json:"probes"`
	Failed []string     `json:"failed,omitempty"`
}

// Stats returns current counters. Safe to call at any time, also after
// Close (it then reports the final counts).
func (c *Collector) Stats() Stats {
	var s Stats
	// The rings are read under ringMu, and closed is decided under it:
	// Close closes done before it takes ringMu to unmap them.
	c.ringMu.RLock()
	defer c.ringMu.RUnlock()
	closed := false
	select {
	case <-c.done:
		closed = true
	default:
	}
	for i, p := range c.probes {
		kd := p.kernelDrops.Load()
		if !closed {
			kd = p.readKernelDrops()
		}
		ps := ProbeStats{
			Probe:        p.name,
			Kind:         p.kind,
			Events:       p.events.Load(),
			KernelDrops:  kd,
			UserDrops:    p.userDrops.Load(),
			DecodeErrors: p.decodeErrs.Load(),
		}
		if rd := c.readers[i]; rd != nil && !closed {
			ps.RingUsedBytes, ps.RingSizeBytes = uint64(rd.AvailableBytes()), uint64(rd.BufferSize())
		}
		s.Probes = append(s.Probes, ps)
	}
	for _, err := range c.failed {
		s.Failed = append(s.Failed, err.Error())
	}
	return s
}
