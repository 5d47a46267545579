package collector

import (
	"fmt"
	"strconv"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cilium/ebpf/link"

	oombpf "github.com/vigil-dev/vigil/bpf/oom"
	signalbpf "github.com/vigil-dev/vigil/bpf/signal"
)

// The kinds of the signal and oom probes.
const (
	// KindSignal: one row per generated signal in Options.Signals.
	KindSignal Kind = "signal"
	// KindOOM: one row per OOM-killer victim.
	KindOOM Kind = "oom"
)

// DefaultSignals are the signals reported when Options.Signals is nil: the
// ones that end a process abnormally.
var DefaultSignals = []syscall.Signal{
	syscall.SIGKILL, syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGBUS, syscall.SIGILL,
	syscall.SIGFPE, syscall.SIGSYS, syscall.SIGTERM, syscall.SIGQUIT,
}

// signalSchema describes KindSignal:
//
//	ts           timestamp[ns, UTC]  when the signal was generated
//	host         dictionary<string>
//	signal       dictionary<string>  e.g. SIGKILL
//	pid          uint32              target tgid
//	comm         dictionary<string>  target
//	sender_pid   uint32              task that generated it (the target itself for faults)
//	sender_comm  dictionary<string>
//	code         dictionary<string>  si_code: SI_USER, SI_KERNEL, SI_TKILL, SI_QUEUE, or the number
//	result       dictionary<string>  delivered | ignored | already_pending | overflow_fail | lose_info
//	cgroup_id    uint64              target's cgroup
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var signalSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("signal", typeDict),
	col("pid", typeU32),
	col("comm", typeDict),
	col("sender_pid", typeU32),
	col("sender_comm", typeDict),
	col("code", typeDict),
	col("result", typeDict),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

// oomSchema describes KindOOM:
//
//	ts              timestamp[ns, UTC]  when the victim was chosen
//	host            dictionary<string>
//	pid             uint32              victim tgid
//	comm            dictionary<string>  victim
//	uid             uint32
//	total_vm        uint64              bytes of virtual memory
//	anon_rss        uint64              bytes (approximate)
//	file_rss        uint64              bytes (approximate)
//	shmem_rss       uint64              bytes (approximate)
//	oom_score_adj   dictionary<string>  -1000..1000, as text (it is signed)
//	trigger_pid     uint32              task whose allocation invoked the OOM killer
//	trigger_comm    dictionary<string>
//	cgroup_id       uint64              victim's cgroup
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var oomSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("comm", typeDict),
	col("uid", typeU32),
	col("total_vm", typeU64),
	col("anon_rss", typeU64),
	col("file_rss", typeU64),
	col("shmem_rss", typeU64),
	col("oom_score_adj", typeDict),
	col("trigger_pid", typeU32),
	col("trigger_comm", typeDict),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

func openSignal(lo *loadOptions) (*probe, error) {
	spec, err := signalbpf.LoadProbe()
	if err != nil {
		return nil, &probeError{Step: "load", Err: err}
	}
	signals := lo.opts.Signals
	if signals == nil {
		signals = DefaultSignals
	}
	var mask uint64
	for _, s := range signals {
		if s <= 0 || s >= 64 {
			return nil, &probeError{Step: "configure", Err: fmt.Errorf("signal %d out of range", s)}
		}
		mask |= 1 << uint(s)
	}
	if err := spec.Variables["signal_mask"].Set(mask); err != nil {
		return nil, &probeError{Step: "configure", Err: err}
	}
	var objs signalbpf.ProbeObjects
	if err := lo.loadAndAssign(spec, &objs); err != nil {
		return nil, err
	}
	p := &probe{kind: KindSignal, ring: objs.Events, drops: objs.Drops, closers: []closer{&objs}}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleSignal})); err != nil {
		p.close()
		return nil, &probeError{Step: "attach tracepoint signal/signal_generate", Err: err}
	}
	p.newBuilder = ringKinds[KindSignal].newBuilder
	return p, nil
}

func openOOM(lo *loadOptions) (*probe, error) {
	spec, err := oombpf.LoadProbe()
	if err != nil {
		return nil, &probeError{Step: "load", Err: err}
	}
	var objs oombpf.ProbeObjects
	if err := lo.loadAndAssign(spec, &objs); err != nil {
		return nil, err
	}
	p := &probe{kind: KindOOM, ring: objs.Events, drops: objs.Drops, closers: []closer{&objs}}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleMarkVictim})); err != nil {
		p.close()
		return nil, &probeError{Step: "attach tracepoint oom/mark_victim", Err: err}
	}
	p.newBuilder = ringKinds[KindOOM].newBuilder
	return p, nil
}

// signalNames holds SIGxxx for signals 1-64 (real-time ones as SIGRTMIN+n).
var signalNames = func() [65][]byte {
	var n [65][]byte
	for i := 1; i < len(n); i++ {
		if i >= 34 {
			n[i] = []byte("SIGRTMIN+" + strconv.Itoa(i-34))
		} else {
			n[i] = []byte(unixSignalName(syscall.Signal(i)))
		}
	}
	return n
}()

// unixSignalName returns SIGxxx for the classic signals.
func unixSignalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
		syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
		syscall.SIGSTKFLT: "SIGSTKFLT", syscall.SIGCHLD: "SIGCHLD", syscall.SIGCONT: "SIGCONT",
		syscall.SIGSTOP: "SIGSTOP", syscall.SIGTSTP: "SIGTSTP", syscall.SIGTTIN: "SIGTTIN",
		syscall.SIGTTOU: "SIGTTOU", syscall.SIGURG: "SIGURG", syscall.SIGXCPU: "SIGXCPU",
		syscall.SIGXFSZ: "SIGXFSZ", syscall.SIGVTALRM: "SIGVTALRM", syscall.SIGPROF: "SIGPROF",
		syscall.SIGWINCH: "SIGWINCH", syscall.SIGIO: "SIGIO", syscall.SIGPWR: "SIGPWR",
		syscall.SIGSYS: "SIGSYS",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return "SIG" + strconv.Itoa(int(s))
}

var signalResults = [...][]byte{
	[]byte("delivered"), []byte("ignored"), []byte("already_pending"), []byte("overflow_fail"), []byte("lose_info"),
}

// siCodeName names the common si_code values.
func siCodeName(dst []byte, code int32) []byte {
	switch code {
	case 0:
		return append(dst, "SI_USER"...)
	case 0x80:
		return append(dst, "SI_KERNEL"...)
	case -1:
		return append(dst, "SI_QUEUE"...)
	case -6:
		return append(dst, "SI_TKILL"...)
	}
	return strconv.AppendInt(dst, int64(code), 10)
}

type signalBuilder struct {
	rowBuilder
	scratch signalbpf.ProbeSignalEvent
	buf     []byte
}

func (b *signalBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	if e.Sig == 0 || int(e.Sig) >= len(signalNames) {
		return fmt.Errorf("%w: signal %d", errBadRecord, e.Sig)
	}
	result := []byte("unknown")
	if int(e.Result) < len(signalResults) {
		result = signalResults[e.Result]
	}
	b.start(e.BootNs)
	b.dict(2, signalNames[e.Sig])
	b.u32(3, e.Pid)
	b.dict(4, cstring(e.Comm[:]))
	b.u32(5, e.SenderPid)
	b.dict(6, cstring(e.SenderComm[:]))
	b.buf = siCodeName(b.buf[:0], e.Code)
	b.dict(7, b.buf)
	b.dict(8, result)
	b.u64(9, e.CgroupId)
	b.container(10, e.CgroupId)
	return nil
}

type oomBuilder struct {
	rowBuilder
	scratch oombpf.ProbeOomEvent
	buf     []byte
}

func (b *oomBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	b.start(e.BootNs)
	b.u32(2, e.Pid)
	b.dict(3, cstring(e.Comm[:]))
	b.u32(4, e.Uid)
	b.u64(5, e.TotalVm)
	b.u64(6, e.AnonRss)
	b.u64(7, e.FileRss)
	b.u64(8, e.ShmemRss)
	b.buf = strconv.AppendInt(b.buf[:0], int64(e.OomScoreAdj), 10)
	b.dict(9, b.buf)
	b.u32(10, e.TriggerPid)
	b.dict(11, cstring(e.TriggerComm[:]))
	b.u64(12, e.CgroupId)
	b.container(13, e.CgroupId)
	return nil
}
