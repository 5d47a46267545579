package collector

import (
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	execbpf "github.com/vigil-dev/vigil/bpf/exec"
	exitbpf "github.com/vigil-dev/vigil/bpf/exit"
	oombpf "github.com/vigil-dev/vigil/bpf/oom"
	signalbpf "github.com/vigil-dev/vigil/bpf/signal"
	sysbpf "github.com/vigil-dev/vigil/bpf/sys"
	tcpbpf "github.com/vigil-dev/vigil/bpf/tcp"
)

// ringKinds lists, for every kind read from a ring buffer, the size of its
// record (the bpf2go struct) and its builder.
var ringKinds = map[Kind]struct {
	size       int
	newBuilder func(memory.Allocator, *env) builder
}{
	KindExec: {int(unsafe.Sizeof(execbpf.ProbeExecEvent{})), func(m memory.Allocator, e *env) builder {
		return newExecBuilder(m, e)
	}},
	KindExit: {int(unsafe.Sizeof(exitbpf.ProbeExitEvent{})), func(m memory.Allocator, e *env) builder {
		return &exitBuilder{rowBuilder: newRowBuilder(m, exitSchema, e)}
	}},
	KindTCP: {int(unsafe.Sizeof(tcpbpf.ProbeTcpEvent{})), func(m memory.Allocator, e *env) builder {
		return &tcpBuilder{rowBuilder: newRowBuilder(m, tcpSchema, e)}
	}},
	KindRetransmit: {int(unsafe.Sizeof(tcpbpf.ProbeRetransmitEvent{})), func(m memory.Allocator, e *env) builder {
		return &retransmitBuilder{rowBuilder: newRowBuilder(m, retransmitSchema, e)}
	}},
	KindFile: {int(unsafe.Sizeof(sysbpf.ProbeFileEvent{})), func(m memory.Allocator, e *env) builder {
		return &fileBuilder{rowBuilder: newRowBuilder(m, fileSchema, e)}
	}},
	KindPriv: {int(unsafe.Sizeof(sysbpf.ProbePrivEvent{})), func(m memory.Allocator, e *env) builder {
		return &privBuilder{rowBuilder: newRowBuilder(m, privSchema, e)}
	}},
	KindSignal: {int(unsafe.Sizeof(signalbpf.ProbeSignalEvent{})), func(m memory.Allocator, e *env) builder {
		return &signalBuilder{rowBuilder: newRowBuilder(m, signalSchema, e)}
	}},
	KindOOM: {int(unsafe.Sizeof(oombpf.ProbeOomEvent{})), func(m memory.Allocator, e *env) builder {
		return &oomBuilder{rowBuilder: newRowBuilder(m, oomSchema, e)}
	}},
}

// Decoder turns raw ring buffer records of one kind (the bytes of the
// kind's bpf2go struct, as in bpf/<probe>) into Arrow batches exactly as
// the collector's readers do. It exists for benchmarks and for tools that
// capture raw records. A Decoder is not safe for concurrent use.
type Decoder struct {
	kind Kind
	size int
	b    builder
}

// NewDecoder returns a Decoder for a ring-buffer kind (not for the
// aggregated kinds). Timestamps are converted with the current boot-time
// offset. mem is accepted for API stability; rows are built in Go memory
// and handed to Arrow without copying.
func NewDecoder(k Kind, host string, mem memory.Allocator) (*Decoder, error) {
	rk, ok := ringKinds[k]
	if !ok {
		return nil, fmt.Errorf("no decoder for kind %q", k)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	e := &env{host: []byte(host), clock: &clock{}}
	e.clock.sync()
	return &Decoder{kind: k, size: rk.size, b: rk.newBuilder(mem, e)}, nil
}

// RecordSize is the size in bytes of one raw record of the decoder's kind.
func (d *Decoder) RecordSize() int { return d.size }

// Append decodes one record and appends it as a row.
func (d *Decoder) Append(raw []byte) error { return d.b.append(raw) }

// Len is the number of rows appended since the last Flush.
func (d *Decoder) Len() int { return d.b.len() }

// Flush returns the rows so far as a batch; the caller owns its Record.
func (d *Decoder) Flush() Batch { return Batch{Kind: d.kind, Record: d.b.flush()} }

// Release frees the decoder's builders.
func (d *Decoder) Release() { d.b.release() }
