package collector

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cilium/ebpf/link"

	exitbpf "github.com/vigil-dev/vigil/bpf/exit"
)

// KindExit: one row per process exit (last thread of a thread group).
const KindExit Kind = "exit"

// exitSchema describes KindExit:
//
//	ts           timestamp[ns, UTC]  when the last thread exited
//	host         dictionary<string>
//	pid          uint32              tgid
//	ppid         uint32              real parent's tgid at exit
//	uid          uint32              real uid
//	comm         dictionary<string>
//	exit_code    uint32              exit status 0-255 (0 when killed by a signal)
//	signal       uint32              terminating signal number, 0 for a normal exit
//	core_dumped  uint32              1 if a core was dumped
//	lifetime_ns  uint64              since the process started
//	forks        uint32              child processes it created (fork rate = forks / lifetime)
//	threads      uint32              threads it created
//	cgroup_id    uint64
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var exitSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("ppid", typeU32),
	col("uid", typeU32),
	col("comm", typeDict),
	col("exit_code", typeU32),
	col("signal", typeU32),
	col("core_dumped", typeU32),
	col("lifetime_ns", typeU64),
	col("forks", typeU32),
	col("threads", typeU32),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

func openExit(lo *loadOptions) (*probe, error) {
	spec, err := exitbpf.LoadProbe()
	if err != nil {
		return nil, &probeError{Step: "load", Err: err}
	}
	var objs exitbpf.ProbeObjects
	if err := lo.loadAndAssign(spec, &objs); err != nil {
		return nil, err
	}
	p := &probe{kind: KindExit, ring: objs.Events, drops: objs.Drops, closers: []closer{&objs}}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleFork})); err != nil {
		p.close()
		return nil, &probeError{Step: "attach tracepoint sched/sched_process_fork", Err: err}
	}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleExit})); err != nil {
		p.close()
		return nil, &probeError{Step: "attach tracepoint sched/sched_process_exit", Err: err}
	}
	p.newBuilder = ringKinds[KindExit].newBuilder
	return p, nil
}

type exitBuilder struct {
	rowBuilder
	scratch exitbpf.ProbeExitEvent
}

func (b *exitBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	b.start(e.BootNs)
	b.u32(2, e.Pid)
	b.u32(3, e.Ppid)
	b.u32(4, e.Uid)
	b.dict(5, cstring(e.Comm[:]))
	b.u32(6, e.ExitCode)
	b.u32(7, e.Signal)
	b.u32(8, e.CoreDumped)
	b.u64(9, e.LifetimeNs)
	b.u32(10, e.Forks)
	b.u32(11, e.Threads)
	b.u64(12, e.CgroupId)
	b.container(13, e.CgroupId)
	b.env.procs.exit(e)
	return nil
}
