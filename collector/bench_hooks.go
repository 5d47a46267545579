package collector

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// BenchRing is a loaded probe's ring buffer as its object uses it. For
// benchmarks only (bench/collect's burst mode): it lets a benchmark's own
// BPF program write records into the ring the collector reads.
type BenchRing struct {
	// Ring is the probe's BPF_MAP_TYPE_RINGBUF.
	Ring *ebpf.Map
	// Drops is the per-CPU failed-reserve counter the collector reports
	// as kernel drops, and DropSlot the probe's index in it.
	Drops    *ebpf.Map
	DropSlot uint32
	// WakeupBytes is the probe object's wakeup_bytes: the queued bytes at
	// which its records wake the reader.
	WakeupBytes uint64
}

// BenchPrivRing returns the priv probe's ring buffer, for benchmarks only.
// The maps stay the collector's: a caller that loads them into its own
// object (cilium/ebpf clones them) must not Close these, and should detach
// its program before Close. Fails if the priv probe is not loaded.
func (c *Collector) BenchPrivRing() (BenchRing, error) {
	for _, p := range c.probes {
		if p.kind != KindPriv {
			continue
		}
		for _, cl := range p.closers {
			s, ok := cl.(*sysObject)
			if !ok {
				continue
			}
			r := BenchRing{Ring: p.ring, Drops: p.drops, DropSlot: p.dropSlot}
			if err := s.objs.WakeupBytes.Get(&r.WakeupBytes); err != nil {
				return BenchRing{}, fmt.Errorf("read priv probe wakeup_bytes: %w", err)
			}
			return r, nil
		}
	}
	return BenchRing{}, errors.New("priv probe not loaded")
}
