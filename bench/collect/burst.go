package collect

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/vigil-dev/vigil/bpf/benchload"
	"github.com/vigil-dev/vigil/collector"
)

// maxBurst is MAX_BURST in bpf/benchload/benchload.c: records per call.
const maxBurst = 65536

// burstLoad is bpf/benchload loaded against the collector's priv ring and
// attached: each getppid call of this process then writes burst priv
// records. Close detaches it.
type burstLoad struct {
	objs benchload.ProbeObjects
	link link.Link
}

// openBurst loads bpf/benchload with the priv probe's ring buffer, drop
// counter and wakeup threshold, so that its records are batched and
// counted like the probe's own.
func openBurst(c *collector.Collector, burst int) (*burstLoad, error) {
	ring, err := c.BenchPrivRing()
	if err != nil {
		return nil, fmt.Errorf("burst load: %w", err)
	}
	spec, err := benchload.LoadProbe()
	if err != nil {
		return nil, fmt.Errorf("burst load: %w", err)
	}
	for name, v := range map[string]any{
		benchload.ProbeVarLoadTgid:    uint32(os.Getpid()),
		benchload.ProbeVarBurst:       uint32(burst),
		benchload.ProbeVarDropSlot:    ring.DropSlot,
		benchload.ProbeVarWakeupBytes: ring.WakeupBytes,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("burst load: set %s: %w", name, err)
		}
	}
	l := &burstLoad{}
	err = spec.LoadAndAssign(&l.objs, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		benchload.ProbeMapPrivEvents: ring.Ring,
		benchload.ProbeMapDrops:      ring.Drops,
	}})
	if err != nil {
		return nil, fmt.Errorf("burst load: load: %w", err)
	}
	// The collector has mounted tracefs for the priv probe.
	if l.link, err = link.Tracepoint("syscalls", "sys_enter_getppid", l.objs.BurstGetppid, nil); err != nil {
		l.objs.Close()
		return nil, fmt.Errorf("burst load: attach syscalls/sys_enter_getppid: %w", err)
	}
	return l, nil
}

// counts returns the records the program submitted and those it could
// not reserve, summed over CPUs.
func (l *burstLoad) counts() (submitted, failed uint64, err error) {
	sum := func(slot uint32) (uint64, error) {
		var perCPU []uint64
		if err := l.objs.Generated.Lookup(slot, &perCPU); err != nil {
			return 0, fmt.Errorf("burst load: read counter: %w", err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		return n, nil
	}
	if submitted, err = sum(0); err != nil {
		return 0, 0, err
	}
	failed, err = sum(1)
	return submitted, failed, err
}

// Close detaches the program and releases its objects (the collector's
// maps are cloned, not closed). Safe to call twice.
func (l *burstLoad) Close() error {
	var err error
	if l.link != nil {
		err = l.link.Close()
		l.link = nil
	}
	return errors.Join(err, l.objs.Close())
}
