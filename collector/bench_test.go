package collector

import (
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	sysbpf "github.com/vigil-dev/vigil/bpf/sys"
)

// BenchmarkPrivArrow measures decode + Arrow append of the priv kind, the
// kind `vigil bench collector` loads.
func BenchmarkPrivArrow(b *testing.B) {
	var e sysbpf.ProbePrivEvent
	e.Pid, e.Tid, e.Nr = 4242, 4243, 117
	copy(e.Comm[:], "bench")
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e))
	d, err := NewDecoder(KindPriv, "bench", memory.DefaultAllocator)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Release()
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Append(raw); err != nil {
			b.Fatal(err)
		}
		if d.Len() == 8192 {
			d.Flush().Record.Release()
		}
	}
}
