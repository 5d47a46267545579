package collector

import (
	"testing"

	execbpf "github.com/vigil-dev/vigil/bpf/exec"
	exitbpf "github.com/vigil-dev/vigil/bpf/exit"
)

func exitEvent(pid, ppid uint32, comm string, bootNs uint64) *exitbpf.ProbeExitEvent {
	e := &exitbpf.ProbeExitEvent{Pid: pid, Ppid: ppid, BootNs: bootNs}
	copy(e.Comm[:], comm)
	return e
}

// TestProcTableOrder checks that exec and exit, read by different
// goroutines, give the same table in either order.
func TestProcTableOrder(t *testing.T) {
	ev := &execbpf.ProbeExecEvent{Pid: 77, Ppid: 1, BootNs: 100}
	copy(ev.Filename[:], "/bin/x")
	for _, execFirst := range []bool{true, false} {
		tab := newProcTable(nil)
		if execFirst {
			tab.exec(ev)
			tab.exit(exitEvent(77, 1, "x", 200))
		} else {
			tab.exit(exitEvent(77, 1, "x", 200))
			tab.exec(ev)
		}
		p, ok := tab.procs[77]
		if !ok || !p.Exited || p.Exe != "/bin/x" {
			t.Errorf("exec first %v: %+v", execFirst, p)
		}
	}
	// A later exec reuses the pid: the new process is alive.
	tab := newProcTable(nil)
	tab.exit(exitEvent(77, 1, "x", 50))
	tab.exec(ev)
	if p := tab.procs[77]; p.Exited {
		t.Errorf("reused pid marked exited: %+v", p)
	}
}

// TestProcTableExitNames checks that a process known only from its exit (a
// fork that never called exec) keeps the exit's name and parent, which is
// what names its last syscall counts, and that an exec does not lose to it.
func TestProcTableExitNames(t *testing.T) {
	tab := newProcTable(nil)
	tab.exit(exitEvent(90, 12, "bash", 300))
	if got := tab.comm(90); got != "bash" {
		t.Errorf("comm of a fork seen only at exit = %q, want bash", got)
	}
	if p := tab.procs[90]; p.PPid != 12 || !p.Exited {
		t.Errorf("placeholder = %+v, want ppid 12, exited", p)
	}

	ev := &execbpf.ProbeExecEvent{Pid: 91, Ppid: 1, BootNs: 100}
	copy(ev.Comm[:], "cat")
	tab.exec(ev)
	tab.exit(exitEvent(91, 1, "renamed", 200))
	if got := tab.comm(91); got != "cat" {
		t.Errorf("comm after exec then exit = %q, want the exec's cat", got)
	}
	if got := tab.comm(92); got != "" {
		t.Errorf("comm of an unknown pid = %q, want empty", got)
	}
	var none *procTable
	if got := none.comm(1); got != "" {
		t.Errorf("nil table comm = %q", got)
	}
}
