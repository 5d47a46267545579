package collector

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	runqbpf "github.com/vigil-dev/vigil/bpf/runq"
)

// KindRunqLatency: run-queue latency histogram per cgroup per interval,
// aggregated in the kernel (table runq_latency).
const KindRunqLatency Kind = "runq_latency"

// runqSchema describes KindRunqLatency, one row per cgroup and non-empty
// log2 bucket in the interval:
//
//	ts           timestamp[ns, UTC]  end of the interval (harvest time)
//	host         dictionary<string>
//	cgroup_id    uint64              cgroup v2 id of the task that waited
//	slot         uint32              log2 bucket: waits of [2^slot, 2^(slot+1)) µs (slot 0: < 2 µs)
//	le_us        uint64              bucket's exclusive upper bound, 2^(slot+1) µs
//	count        uint64              waits in the bucket during the interval
//	interval_ns  uint64              length of the interval
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var runqSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("cgroup_id", typeU64),
	col("slot", typeU32),
	col("le_us", typeU64),
	col("count", typeU64),
	col("interval_ns", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

func openRunq(lo *loadOptions) (*probe, error) {
	spec, err := runqbpf.LoadProbe()
	if err != nil {
		return nil, &probeError{Step: "load", Err: err}
	}
	objs := new(runqbpf.ProbeObjects)
	if err := lo.loadAndAssign(spec, objs); err != nil {
		return nil, err
	}
	p := &probe{kind: KindRunqLatency, closers: []closer{objs}}
	for _, a := range []struct {
		prog *ebpf.Program
		name string
	}{
		{objs.HandleWakeup, "sched/sched_wakeup"},
		{objs.HandleWakeupNew, "sched/sched_wakeup_new"},
		{objs.HandleSwitch, "sched/sched_switch"},
	} {
		if err := p.attach(link.AttachTracing(link.TracingOptions{Program: a.prog})); err != nil {
			p.close()
			return nil, &probeError{Step: "attach tracepoint " + a.name, Err: err}
		}
	}
	h := &runqHarvester{hist: objs.Hist, last: time.Now()}
	p.harvest = h.harvest
	return p, nil
}

// runqHarvester drains the histogram map; used by one goroutine.
type runqHarvester struct {
	hist   *ebpf.Map
	last   time.Time
	keys   []runqbpf.ProbeHistKey
	values []uint64
}

func (h *runqHarvester) harvest(mem memory.Allocator, e *env) (arrow.RecordBatch, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	if h.keys == nil {
		h.keys = make([]runqbpf.ProbeHistKey, 1024)
		h.values = make([]uint64, len(h.keys)*ncpu)
	}
	now := time.Now()
	interval := uint64(now.Sub(h.last))
	h.last = now
	b := newRowBuilder(mem, runqSchema, e)
	defer b.release()
	ts := bootNow()
	err = drainPerCPU(h.hist, h.keys, h.values, ncpu, func(k runqbpf.ProbeHistKey, n uint64) {
		b.start(ts)
		b.u64(2, k.CgroupId)
		b.u32(3, k.Slot)
		b.u64(4, 2<<k.Slot)
		b.u64(5, n)
		b.u64(6, interval)
		b.container(7, k.CgroupId)
	})
	if err != nil {
		return nil, fmt.Errorf("harvest run-queue latency: %w", err)
	}
	if b.len() == 0 {
		return nil, nil
	}
	return b.flush(), nil
}
