package collector

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"

	execbpf "github.com/vigil-dev/vigil/bpf/exec"
	exitbpf "github.com/vigil-dev/vigil/bpf/exit"
)

// Process is what the collector knows about a process: seeded from /proc
// when the collector starts and kept current from exec and exit events.
type Process struct {
	Pid         uint32   `json:"pid"`
	PPid        uint32   `json:"ppid"`
	Comm        string   `json:"comm"`
	Exe         string   `json:"exe"`
	Cmdline     []string `json:"cmdline"`
	CgroupID    uint64   `json:"cgroup_id"`
	ContainerID string   `json:"container_id,omitempty"`
	PodUID      string   `json:"pod_uid,omitempty"`
	Exited      bool     `json:"exited,omitempty"`

	// Boot-time stamps of the last exec and of the exit, so that events
	// from different ring buffers (exec and exit are read by different
	// goroutines) can be applied in either order.
	execNs, exitNs uint64
}

// procTable is the bounded process table. Exited processes stay for a
// while (up to maxExited) so that late events can still be attributed.
// Safe for concurrent use; nil is a valid, empty table.
type procTable struct {
	cgroups *cgroupResolver

	mu     sync.RWMutex
	procs  map[uint32]*Process // guarded by mu
	exited []uint32            // FIFO of exited pids still in procs; guarded by mu
}

const (
	maxProcs  = 65536
	maxExited = 4096
)

func newProcTable(cg *cgroupResolver) *procTable {
	return &procTable{cgroups: cg, procs: make(map[uint32]*Process)}
}

// seed reads every process in /proc.
func (t *procTable) seed() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if p, ok := readProc(uint32(pid)); ok {
			t.put(p)
		}
	}
}

// readProc reads one process from /proc; ok is false if it is gone.
func readProc(pid uint32) (*Process, bool) {
	dir := "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/"
	stat, err := os.ReadFile(dir + "stat")
	if err != nil {
		return nil, false
	}
	p := &Process{Pid: pid}
	// pid (comm) state ppid ...; comm may contain spaces and parentheses.
	if open, close := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')'); open >= 0 && close > open {
		p.Comm = string(stat[open+1 : close])
		if f := strings.Fields(string(stat[close+1:])); len(f) > 1 {
			ppid, _ := strconv.ParseUint(f[1], 10, 32)
			p.PPid = uint32(ppid)
		}
	}
	p.Exe, _ = os.Readlink(dir + "exe")
	if cmd, err := os.ReadFile(dir + "cmdline"); err == nil {
		p.Cmdline = splitNUL(cmd)
	}
	if cg, err := os.ReadFile(dir + "cgroup"); err == nil {
		for _, line := range strings.Split(string(cg), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				c, pod := parseCgroupPath(rest)
				p.ContainerID, p.PodUID = string(c), string(pod)
			}
		}
	}
	return p, true
}

func splitNUL(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

func (t *procTable) put(p *Process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.procs[p.Pid]; !ok && len(t.procs) >= maxProcs {
		t.evictLocked()
	}
	t.procs[p.Pid] = p
}

// evictLocked drops the oldest exited process, or any process if none
// has exited.
func (t *procTable) evictLocked() {
	for len(t.exited) > 0 {
		pid := t.exited[0]
		t.exited = t.exited[1:]
		if p, ok := t.procs[pid]; ok && p.Exited {
			delete(t.procs, pid)
			return
		}
	}
	for pid := range t.procs {
		delete(t.procs, pid)
		return
	}
}

// exec records a new program image from an exec event.
func (t *procTable) exec(e *execbpf.ProbeExecEvent) {
	if t == nil {
		return
	}
	p := &Process{
		Pid:      e.Pid,
		PPid:     e.Ppid,
		Comm:     string(cstring(e.Comm[:])),
		Exe:      string(cstring(e.Filename[:])),
		Cmdline:  splitNUL(e.Argv[:e.ArgvSize]),
		CgroupID: e.CgroupId,
		execNs:   e.BootNs,
	}
	info := t.cgroups.lookup(e.CgroupId)
	p.ContainerID, p.PodUID = string(info.containerID), string(info.podUID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.procs[p.Pid]; ok && old.Exited && old.exitNs >= p.execNs {
		// The exit was read first: this exec belongs to the exited process.
		p.Exited, p.exitNs = true, old.exitNs
	}
	if _, ok := t.procs[p.Pid]; !ok && len(t.procs) >= maxProcs {
		t.evictLocked()
	}
	t.procs[p.Pid] = p
}

// exit marks a process exited at the event's time; it is dropped later,
// oldest first. An exit for an unknown process (a fork that never called
// exec, or one whose exec is still on its way) leaves a placeholder with the
// exit's name and parent, so that the process's last syscall counts, read
// after it is gone from /proc, still have a name; its exec, if it comes,
// replaces it.
func (t *procTable) exit(e *exitbpf.ProbeExitEvent) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.procs[e.Pid]
	if ok && p.Exited {
		return
	}
	var cp Process
	if ok {
		cp = *p
	} else {
		if len(t.procs) >= maxProcs {
			t.evictLocked()
		}
		cp.Pid, cp.PPid, cp.Comm = e.Pid, e.Ppid, string(cstring(e.Comm[:]))
	}
	cp.Exited, cp.exitNs = true, e.BootNs
	t.procs[e.Pid] = &cp
	t.exited = append(t.exited, e.Pid)
	if len(t.exited) > maxExited {
		old := t.exited[0]
		t.exited = t.exited[1:]
		if q, ok := t.procs[old]; ok && q.Exited {
			delete(t.procs, old)
		}
	}
}

// comm returns the name the table holds for pid, without reading /proc.
func (t *procTable) comm(pid uint32) string {
	if t == nil {
		return ""
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if p, ok := t.procs[pid]; ok {
		return p.Comm
	}
	return ""
}

// get returns a copy of a process, reading /proc for one not seen yet.
func (t *procTable) get(pid uint32) (Process, bool) {
	if t == nil {
		return Process{}, false
	}
	t.mu.RLock()
	p, ok := t.procs[pid]
	t.mu.RUnlock()
	if ok {
		return *p, true
	}
	np, ok := readProc(pid)
	if !ok {
		return Process{}, false
	}
	t.put(np)
	return *np, true
}

// Process returns what the collector knows about pid: from exec events
// while it runs, from /proc otherwise. Exited processes are kept for a
// while. Safe for concurrent use.
func (c *Collector) Process(pid uint32) (Process, bool) {
	return c.env.procs.get(pid)
}

// Lineage returns pid's process and its ancestors, nearest first, up to
// pid 1 or 32 levels.
func (c *Collector) Lineage(pid uint32) []Process {
	var out []Process
	for range 32 {
		p, ok := c.env.procs.get(pid)
		if !ok {
			break
		}
		out = append(out, p)
		if p.PPid == 0 || p.Pid == 1 || p.PPid == p.Pid {
			break
		}
		pid = p.PPid
	}
	return out
}
