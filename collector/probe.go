package collector

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// builder turns one probe's raw ring buffer records into Arrow batches.
// A builder is used by one goroutine only.
type builder interface {
	// append decodes one record and appends it as a row; on error nothing
	// is appended.
	append(raw []byte) error
	// len is the number of rows appended since the last flush.
	len() int
	// flush returns the rows so far as a record batch and starts a new one.
	flush() arrow.RecordBatch
	release()
}

// env is what builders need beyond the record: shared, read-only after New
// apart from the clock, which is safe for concurrent use.
type env struct {
	host    []byte
	clock   *clock
	cgroups *cgroupResolver // nil: no container ids
	procs   *procTable      // nil: no process table
}

type closer interface{ Close() error }

// probe is one loaded and attached probe. Ring-buffer probes have ring and
// newBuilder; harvested probes (in-kernel aggregation) have harvest.
type probe struct {
	name string
	kind Kind

	ring     *ebpf.Map // BPF_MAP_TYPE_RINGBUF the probe writes to
	drops    *ebpf.Map // per-CPU array of failed reserves
	dropSlot uint32    // index of this probe's counter in drops

	newBuilder func(memory.Allocator, *env) builder
	// harvest reads and resets in-kernel aggregates; called by one goroutine.
	harvest func(mem memory.Allocator, e *env) (arrow.RecordBatch, error)

	links   []link.Link
	closers []closer // loaded objects, closed after links

	events      atomic.Uint64 // rows decoded
	userDrops   atomic.Uint64 // rows dropped because the batch queue was full
	decodeErrs  atomic.Uint64 // records that failed to decode
	kernelDrops atomic.Uint64 // last value read from drops
}

func (p *probe) attach(l link.Link, err error) error {
	if err != nil {
		return err
	}
	p.links = append(p.links, l)
	return nil
}

// close detaches and unloads the probe, joining errors.
func (p *probe) close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	for _, c := range p.closers {
		errs = append(errs, c.Close())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// readKernelDrops sums the per-CPU failed-reserve counter.
func (p *probe) readKernelDrops() uint64 {
	if p.drops == nil {
		return p.kernelDrops.Load()
	}
	var perCPU []uint64
	if err := p.drops.Lookup(p.dropSlot, &perCPU); err != nil {
		return p.kernelDrops.Load()
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	p.kernelDrops.Store(n)
	return n
}

// loadOptions is what every open function needs to load its object.
type loadOptions struct {
	selfTgid uint32
	opts     *Options
	sys      *sysObject // shared by file, priv and syscalls once loaded
	sysErr   error      // why sys could not be loaded, reported by each
}

// loadAndAssign sets the shared configuration variables that the object
// declares, then loads it into the kernel.
func (lo *loadOptions) loadAndAssign(spec *ebpf.CollectionSpec, objs any) error {
	if v, ok := spec.Variables["vigil_tgid"]; ok {
		if err := v.Set(lo.selfTgid); err != nil {
			return &probeError{Step: "configure", Err: err}
		}
	}
	if v, ok := spec.Variables["wakeup_bytes"]; ok {
		// Wake the reader when a sixteenth of the smallest ring is queued;
		// below that it picks records up on its poll deadline.
		var size uint32 = 1 << 30
		for _, m := range spec.Maps {
			if m.Type == ebpf.RingBuf && m.MaxEntries < size {
				size = m.MaxEntries
			}
		}
		if err := v.Set(uint64(size / 16)); err != nil {
			return &probeError{Step: "configure", Err: err}
		}
	}
	if err := spec.LoadAndAssign(objs, nil); err != nil {
		return &probeError{Step: "load", Err: err}
	}
	return nil
}

// probeError is a probe that could not be opened: which probe, which step
// and why, printed as one line such as
// "probe exec: attach tracepoint sched/sched_process_exec: permission denied (run as root)".
type probeError struct {
	Probe string
	Step  string
	Err   error
}

func (e *probeError) Error() string {
	return fmt.Sprintf("probe %s: %s: %s", e.Probe, e.Step, explain(e.Err))
}

func (e *probeError) Unwrap() error { return e.Err }

// explain turns a load or attach error into a short reason a user can act
// on, falling back to the first line of the error text.
func explain(err error) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		if os.Geteuid() != 0 {
			return "permission denied (run as root)"
		}
		return "permission denied by the kernel (lockdown or LSM policy?)"
	case errors.Is(err, btf.ErrNotFound), errors.Is(err, btf.ErrNotSupported):
		return "kernel BTF not available (need /sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y)"
	case errors.Is(err, os.ErrNotExist):
		return "not available in this kernel (" + firstLine(err.Error()) + ")"
	case errors.Is(err, ebpf.ErrNotSupported):
		return "not supported by this kernel (" + firstLine(err.Error()) + ")"
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
