package collector

import (
	"testing"

	execbpf "github.com/vigil-dev/vigil/bpf/exec"
)

// TestProcTableOrder checks that exec and exit, read by different
// goroutines, give the same table in either order.
func TestProcTableOrder(t *testing.T) {
	ev := &execbpf.ProbeExecEvent{Pid: 77, Ppid: 1, BootNs: 100}
	copy(ev.Filename[:], "/bin/x")
	for _, execFirst := range []bool{true, false} {
		tab := newProcTable(nil)
		if execFirst {
			tab.exec(ev)
			tab.exit(77, 200)
		} else {
			tab.exit(77, 200)
			tab.exec(ev)
		}
		p, ok := tab.procs[77]
		if !ok || !p.Exited || p.Exe != "/bin/x" {
			t.Errorf("exec first %v: %+v", execFirst, p)
		}
	}
	// A later exec reuses the pid: the new process is alive.
	tab := newProcTable(nil)
	tab.exit(77, 50)
	tab.exec(ev)
	if p := tab.procs[77]; p.Exited {
		t.Errorf("reused pid marked exited: %+v", p)
	}
}
