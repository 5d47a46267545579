package collector

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cilium/ebpf/link"

	execbpf "github.com/vigil-dev/vigil/bpf/exec"
)

// openExec loads the exec probe and attaches it to sched/sched_process_exec.
func openExec(lo *loadOptions) (*probe, error) {
	spec, err := execbpf.LoadProbe()
	if err != nil {
		return nil, &probeError{Step: "load", Err: err}
	}
	var objs execbpf.ProbeObjects
	if err := lo.loadAndAssign(spec, &objs); err != nil {
		return nil, err
	}
	p := &probe{kind: KindExec, ring: objs.Events, drops: objs.Drops, closers: []closer{&objs}}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleExec})); err != nil {
		p.close()
		return nil, &probeError{Step: "attach tracepoint sched/sched_process_exec", Err: err}
	}
	p.newBuilder = ringKinds[KindExec].newBuilder
	return p, nil
}

// decodeExec checks one exec ring buffer record and returns a view of it.
func decodeExec(raw []byte, scratch *execbpf.ProbeExecEvent) (*execbpf.ProbeExecEvent, error) {
	e, err := view(raw, scratch)
	if err != nil {
		return nil, err
	}
	if int(e.ArgvSize) > len(e.Argv) {
		return nil, fmt.Errorf("%w: argv size %d", errBadRecord, e.ArgvSize)
	}
	return e, nil
}

// execBuilder appends exec records to an Arrow batch with execSchema and
// keeps the process table current.
type execBuilder struct {
	rowBuilder
	scratch execbpf.ProbeExecEvent // for unaligned records
}

func newExecBuilder(mem memory.Allocator, e *env) *execBuilder {
	return &execBuilder{rowBuilder: newRowBuilder(mem, execSchema, e)}
}

func (b *execBuilder) append(raw []byte) error {
	e, err := decodeExec(raw, &b.scratch)
	if err != nil {
		return err
	}
	b.start(e.BootNs)
	b.u32(2, e.Pid)
	b.u32(3, e.Ppid)
	b.u32(4, e.Uid)
	b.u32(5, e.Gid)
	b.dict(6, cstring(e.Comm[:]))
	b.str(7, cstring(e.Filename[:]))
	b.strs(8, e.Argv[:e.ArgvSize])
	b.u64(9, e.CgroupId)
	b.container(10, e.CgroupId)
	b.u32(12, e.ExecAncestor)
	b.env.procs.exec(e)
	return nil
}
