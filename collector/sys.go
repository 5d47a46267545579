package collector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	sysbpf "github.com/vigil-dev/vigil/bpf/sys"
)

//go:generate go run gen_syscalls.go

// The kinds the syscall probe object produces.
const (
	// KindFile: one row per open of a path matching Options.FilePatterns.
	KindFile Kind = "file"
	// KindPriv: one row per setuid-family, capset or ptrace call.
	KindPriv Kind = "priv"
	// KindSyscallCounts: syscalls per process and syscall per interval,
	// aggregated in the kernel (table syscall_counts).
	KindSyscallCounts Kind = "syscall_counts"
)

// DefaultFilePatterns are the sensitive paths watched when
// Options.FilePatterns is nil. See Options.FilePatterns for the syntax.
// Credentials by name rather than whole home directories: on a host where
// people work as root, "/root" matched every build-cache and module read.
var DefaultFilePatterns = []string{
	"/etc/shadow",
	"/etc/gshadow",
	"/etc/sudoers",
	"/etc/ssh/ssh_host_",
	"~/.ssh",
	"~/.aws",
	"~/.kube",
	"~/.gnupg",
	"~/.docker/config.json",
	"/proc/*/mem$",
}

// fileSchema describes KindFile:
//
//	ts         timestamp[ns, UTC]  at entry to the open call
//	host       dictionary<string>
//	pid        uint32
//	tid        uint32
//	uid        uint32
//	comm       dictionary<string>
//	syscall    dictionary<string>  open | openat | openat2
//	path       string              as passed by the caller (not resolved: relative
//	                               paths and .. are not matched), ≤255 bytes
//	flags      uint32              open flags (O_RDONLY=0, O_WRONLY=1, O_RDWR=2, ...)
//	errno      uint32              0 on success, else the error number (13 = EACCES)
//	cgroup_id  uint64
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var fileSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("tid", typeU32),
	col("uid", typeU32),
	col("comm", typeDict),
	col("syscall", typeDict),
	col("path", typeString),
	col("flags", typeU32),
	col("errno", typeU32),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

// privSchema describes KindPriv:
//
//	ts             timestamp[ns, UTC]  at entry to the call
//	host           dictionary<string>
//	pid            uint32
//	tid            uint32
//	comm           dictionary<string>
//	syscall        dictionary<string>  setuid, setgid, setreuid, setregid, setresuid,
//	                                   setresgid, setfsuid, setfsgid, capset, ptrace
//	arg0..arg2     uint64              raw arguments; set*id: the ids (4294967295 = -1,
//	                                   unchanged); ptrace: request, target pid, address
//	uid_before     uint32              real uid before the call
//	euid_before    uint32
//	uid_after      uint32              real uid after the call
//	euid_after     uint32
//	cap_effective  uint64              capset: requested effective capability set
//	errno          uint32              0 on success, else the error number
//	cgroup_id      uint64
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var privSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("tid", typeU32),
	col("comm", typeDict),
	col("syscall", typeDict),
	col("arg0", typeU64),
	col("arg1", typeU64),
	col("arg2", typeU64),
	col("uid_before", typeU32),
	col("euid_before", typeU32),
	col("uid_after", typeU32),
	col("euid_after", typeU32),
	col("cap_effective", typeU64),
	col("errno", typeU32),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

// syscallCountsSchema describes KindSyscallCounts, one row per process and
// syscall that was called in the interval:
//
//	ts           timestamp[ns, UTC]  end of the interval (harvest time)
//	host         dictionary<string>
//	pid          uint32
//	comm         dictionary<string>  from /proc at harvest time, else from the process
//	                                 table (exec or exit event); empty if neither
//	syscall      dictionary<string>  name (x86-64), or the number if unknown
//	count        uint64              calls in the interval
//	interval_ns  uint64              length of the interval
var syscallCountsSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("comm", typeDict),
	col("syscall", typeDict),
	col("count", typeU64),
	col("interval_ns", typeU64),
}, nil)

// sysObject is the syscall probe object shared by the file, priv and
// syscalls probes: loaded by the first of them, closed with the last.
type sysObject struct {
	objs  sysbpf.ProbeObjects
	links []link.Link
	hooks sysHooks // where file and priv see their syscalls
	refs  int      // probes holding it; only touched by New and Close
}

// sysHooks is where the file and priv programs see the entries and exits
// of their syscalls (see sys.c for why).
type sysHooks uint8

// Measured with `vigil bench overhead` (write(2) to /dev/null, Linux 6.18
// VM), file+priv alone: 1.6x generic, 1.2x per-syscall; all probes: 1.65x
// generic, 1.4x per-syscall exits, 1.7x per-syscall entries and exits.
const (
	// hooksGeneric: entries in sys_enter on raw_syscalls/sys_enter, exits
	// in sys_exit on raw_syscalls/sys_exit, run for every syscall. The
	// fallback without tracefs.
	hooksGeneric sysHooks = iota
	// hooksPerSyscall: entries and exits on the per-syscall tracepoints
	// syscalls/sys_{enter,exit}_<name>. When syscall counts are off.
	hooksPerSyscall
	// hooksPerSyscallExit: entries in sys_enter, which counts run for
	// every syscall anyway, exits on the per-syscall tracepoints. The
	// entry tracepoints would add the kernel's per-syscall dispatcher as
	// a second hook on raw_syscalls/sys_enter, making every syscall call
	// both through an indirect call: dearer than the exit they save.
	hooksPerSyscallExit
)

func (h sysHooks) String() string {
	return [...]string{"raw_syscalls", "per-syscall tracepoints", "raw_syscalls entry, per-syscall tracepoint exits"}[h]
}

func (s *sysObject) Close() error {
	s.refs--
	if s.refs > 0 {
		return nil
	}
	// Closed concurrently: the kernel waits for an RCU grace period as
	// each per-syscall tracepoint event goes, some 60ms apiece here.
	errs := make([]error, len(s.links)+1)
	var wg sync.WaitGroup
	for i, l := range s.links {
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	errs[len(s.links)] = s.objs.Close()
	return errors.Join(errs...)
}

// openSys loads the shared object once, with each feature switched on that
// some requested probe needs.
func (lo *loadOptions) openSys() (*sysObject, error) {
	if lo.sys != nil {
		lo.sys.refs++
		return lo.sys, nil
	}
	if lo.sysErr != nil {
		return nil, lo.sysErr
	}
	s, err := lo.loadSys()
	if err != nil {
		lo.sysErr = err
		return nil, err
	}
	lo.sys = s
	return s, nil
}

// loadSys loads and attaches the object. File and priv go on the
// per-syscall tracepoints, mounting tracefs if need be, so that other
// syscalls pay almost nothing for them; where that fails they fall back to
// hooking every syscall's exit, and say so in the log.
func (lo *loadOptions) loadSys() (*sysObject, error) {
	patterns, err := compilePatterns(lo.opts.FilePatterns)
	if err != nil {
		return nil, &probeError{Step: "configure", Err: err}
	}
	counts, file, priv := lo.wants("syscalls"), lo.wants("file"), lo.wants("priv")
	log := lo.opts.Logger
	const fallback = "file and priv probes: per-syscall tracepoints unavailable, hooking every syscall's exit instead"
	hooks := hooksGeneric
	if (file || priv) && !lo.opts.genericSyscalls {
		if err := ensureTracefs(log); err != nil {
			log.Warn(fallback, "err", err)
		} else if counts {
			hooks = hooksPerSyscallExit
		} else {
			hooks = hooksPerSyscall
		}
	}
	s, err := lo.loadSysObject(patterns, counts, file, priv, hooks)
	if err == nil && hooks != hooksGeneric {
		if err = s.attachPerSyscall(file, priv, hooks == hooksPerSyscallExit); err != nil {
			log.Warn(fallback, "err", err)
			s.Close()
			hooks = hooksGeneric
			s, err = lo.loadSysObject(patterns, counts, file, priv, hooks)
		}
	}
	if err != nil {
		return nil, err
	}
	type hook struct {
		prog *ebpf.Program
		name string
	}
	var attach []hook
	if counts || (file || priv) && hooks != hooksPerSyscall {
		attach = append(attach, hook{s.objs.SysEnter, "raw_syscalls/sys_enter"})
	}
	if (file || priv) && hooks == hooksGeneric {
		attach = append(attach, hook{s.objs.SysExit, "raw_syscalls/sys_exit"})
	}
	for _, h := range attach {
		l, err := link.AttachTracing(link.TracingOptions{Program: h.prog})
		if err != nil {
			s.Close()
			return nil, &probeError{Step: "attach tracepoint " + h.name, Err: err}
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

func (lo *loadOptions) wants(probe string) bool { return slices.Contains(lo.opts.Probes, probe) }

// loadSysObject loads the object with each feature switched on that is
// wanted where hooks puts it, and sets the file patterns. Nothing is
// attached.
func (lo *loadOptions) loadSysObject(patterns []sysbpf.ProbePattern, counts, file, priv bool, hooks sysHooks) (*sysObject, error) {
	spec, err := sysbpf.LoadProbe()
	if err != nil {
		return nil, &probeError{Step: "load", Err: err}
	}
	inSysEnter := hooks != hooksPerSyscall
	for v, on := range map[string]bool{
		"enable_counts": counts,
		"generic_file":  file && inSysEnter,
		"generic_priv":  priv && inSysEnter,
	} {
		var flag uint32
		if on {
			flag = 1
		}
		if err := spec.Variables[v].Set(flag); err != nil {
			return nil, &probeError{Step: "configure", Err: err}
		}
	}
	s := &sysObject{refs: 1, hooks: hooks}
	if err := lo.loadAndAssign(spec, &s.objs); err != nil {
		return nil, err
	}
	for i, p := range patterns {
		if err := s.objs.Patterns.Update(uint32(i), &p, ebpf.UpdateAny); err != nil {
			s.Close()
			return nil, &probeError{Step: "configure file patterns", Err: err}
		}
	}
	return s, nil
}

// attachPerSyscall attaches the file and priv programs to the exit
// tracepoints (syscalls/sys_exit_<name>) of their syscalls and, unless
// exitsOnly, to the entry ones (sys_enter_<name>). A syscall this kernel
// lacks is skipped; a probe with none of its syscalls is an error.
func (s *sysObject) attachPerSyscall(file, priv, exitsOnly bool) error {
	type hook struct {
		name        string
		enter, exit *ebpf.Program
	}
	o := &s.objs
	var sets [][]hook
	if file {
		sets = append(sets, []hook{
			{"open", o.FileSysEnter, o.FileSysExit},
			{"openat", o.FileSysEnter, o.FileSysExit},
			{"openat2", o.FileSysEnter, o.FileSysExit},
		})
	}
	if priv {
		// The kernel refuses a program that reads beyond the event's
		// arguments: one entry program per number of arguments.
		enter1, enter2, enter3, exit := o.PrivSysEnter1, o.PrivSysEnter2, o.PrivSysEnter3, o.PrivSysExit
		sets = append(sets, []hook{
			{"setuid", enter1, exit}, {"setgid", enter1, exit},
			{"setfsuid", enter1, exit}, {"setfsgid", enter1, exit},
			{"setreuid", enter2, exit}, {"setregid", enter2, exit}, {"capset", enter2, exit},
			{"setresuid", enter3, exit}, {"setresgid", enter3, exit}, {"ptrace", enter3, exit},
		})
	}
	for _, set := range sets {
		attached := 0
		for _, h := range set {
			// Exit first: an entry without its exit would leave its
			// call pending.
			exit, err := link.Tracepoint("syscalls", "sys_exit_"+h.name, h.exit, nil)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("attach tracepoint syscalls/sys_exit_%s: %w", h.name, err)
			}
			s.links = append(s.links, exit)
			attached++
			if exitsOnly {
				continue
			}
			enter, err := link.Tracepoint("syscalls", "sys_enter_"+h.name, h.enter, nil)
			if err != nil {
				return fmt.Errorf("attach tracepoint syscalls/sys_enter_%s: %w", h.name, err)
			}
			s.links = append(s.links, enter)
		}
		if attached == 0 {
			return fmt.Errorf("no tracepoint syscalls/sys_exit_%s: %w", set[0].name, os.ErrNotExist)
		}
	}
	return nil
}

// compilePatterns turns path patterns into the kernel's form: a prefix,
// optionally followed by one '*' (any characters but '/') and a suffix that
// must follow it. "~/" expands to both /root/ and /home/*/. A pattern
// matches as a prefix ("/etc/sudoers" also matches /etc/sudoers.d/x)
// unless it ends in '$': "/proc/*/mem$" is /proc/<pid>/mem and not
// /proc/pressure/memory, which every memory-pressure monitor reads.
func compilePatterns(list []string) ([]sysbpf.ProbePattern, error) {
	if list == nil {
		list = DefaultFilePatterns
	}
	var expanded []string
	for _, p := range list {
		if rest, ok := strings.CutPrefix(p, "~/"); ok {
			expanded = append(expanded, "/root/"+rest, "/home/*/"+rest)
			continue
		}
		expanded = append(expanded, p)
	}
	var out []sysbpf.ProbePattern
	seen := map[string]bool{}
	for _, p := range expanded {
		if seen[p] {
			continue
		}
		seen[p] = true
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("file pattern %q: must be absolute", p)
		}
		var k sysbpf.ProbePattern
		k.Used = 1
		body, exact := strings.CutSuffix(p, "$")
		if strings.Contains(body, "$") {
			return nil, fmt.Errorf("file pattern %q: '$' only at the end", p)
		}
		prefix, suffix, star := strings.Cut(body, "*")
		if exact {
			// The kernel compares the path's terminating NUL too: the
			// path ends where the pattern does, at no cost in the
			// verifier (an explicit end test made it give up).
			if star {
				suffix += "\x00"
			} else {
				prefix += "\x00"
			}
		}
		if strings.Contains(suffix, "*") {
			return nil, fmt.Errorf("file pattern %q: at most one '*'", p)
		}
		if len(prefix) > len(k.Prefix) || len(suffix) > len(k.Suffix) {
			return nil, fmt.Errorf("file pattern %q: longer than %d bytes before or %d after '*' (a final '$' counts as one)", p, len(k.Prefix), len(k.Suffix))
		}
		k.PrefixLen = uint32(copy(k.Prefix[:], prefix))
		if star {
			k.HasStar = 1
			k.SuffixLen = uint32(copy(k.Suffix[:], suffix))
		}
		out = append(out, k)
	}
	if len(out) > 16 {
		return nil, fmt.Errorf("%d file patterns, at most 16", len(out))
	}
	return out, nil
}

func openFile(lo *loadOptions) (*probe, error) {
	s, err := lo.openSys()
	if err != nil {
		return nil, err
	}
	p := &probe{kind: KindFile, ring: s.objs.FileEvents, drops: s.objs.Drops, dropSlot: 0, closers: []closer{s}}
	p.newBuilder = ringKinds[KindFile].newBuilder
	return p, nil
}

func openPriv(lo *loadOptions) (*probe, error) {
	s, err := lo.openSys()
	if err != nil {
		return nil, err
	}
	p := &probe{kind: KindPriv, ring: s.objs.PrivEvents, drops: s.objs.Drops, dropSlot: 1, closers: []closer{s}}
	p.newBuilder = ringKinds[KindPriv].newBuilder
	return p, nil
}

func openSyscallCounts(lo *loadOptions) (*probe, error) {
	s, err := lo.openSys()
	if err != nil {
		return nil, err
	}
	h := &countsHarvester{slots: s.objs.CountSlots, counts: s.objs.Counts, epoch: s.objs.CountEpoch, last: time.Now()}
	return &probe{kind: KindSyscallCounts, closers: []closer{s}, harvest: h.harvest}, nil
}

// syscallNameBytes holds syscallNames as bytes, so rows append them
// without allocating.
var syscallNameBytes = func() [][]byte {
	out := make([][]byte, len(syscallNames))
	for i, n := range syscallNames {
		if n != "" {
			out[i] = []byte(n)
		}
	}
	return out
}()

// syscallName returns the name of an x86-64 syscall number, or the number
// as text for one it does not know.
func syscallName(nr uint32) []byte {
	if int(nr) < len(syscallNameBytes) && syscallNameBytes[nr] != nil {
		return syscallNameBytes[nr]
	}
	return strconv.AppendUint(nil, uint64(nr), 10)
}

// errnoOf turns a syscall return value into an errno, 0 for success.
func errnoOf(ret int64) uint32 {
	if ret < 0 && ret >= -4095 {
		return uint32(-ret)
	}
	return 0
}

type fileBuilder struct {
	rowBuilder
	scratch sysbpf.ProbeFileEvent
}

func (b *fileBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	b.start(e.BootNs)
	b.u32(2, e.Pid)
	b.u32(3, e.Tid)
	b.u32(4, e.Uid)
	b.dict(5, cstring(e.Comm[:]))
	b.dict(6, syscallName(e.Nr))
	b.str(7, cstring(e.Path[:]))
	b.u32(8, e.Flags)
	b.u32(9, errnoOf(int64(e.Ret)))
	b.u64(10, e.CgroupId)
	b.container(11, e.CgroupId)
	return nil
}

type privBuilder struct {
	rowBuilder
	scratch sysbpf.ProbePrivEvent
}

func (b *privBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	name := syscallName(e.Nr)
	args := e.Args
	if string(name) != "ptrace" && string(name) != "capset" {
		for i := range args {
			args[i] = uint64(uint32(args[i])) // uid_t/gid_t are 32 bits
		}
	}
	b.start(e.BootNs)
	b.u32(2, e.Pid)
	b.u32(3, e.Tid)
	b.dict(4, cstring(e.Comm[:]))
	b.dict(5, name)
	b.u64(6, args[0])
	b.u64(7, args[1])
	b.u64(8, args[2])
	b.u32(9, e.UidBefore)
	b.u32(10, e.EuidBefore)
	b.u32(11, e.UidAfter)
	b.u32(12, e.EuidAfter)
	b.u64(13, uint64(e.CapEffective[0])|uint64(e.CapEffective[1])<<32)
	b.u32(14, errnoOf(int64(e.Ret)))
	b.u64(15, e.CgroupId)
	b.container(16, e.CgroupId)
	return nil
}

// countSlots is COUNT_SLOTS in sys.c: the size of each half of the
// direct-mapped per-CPU count table.
const countSlots = 16384

// countsHarvester drains the syscall counts: it flips count_epoch so the
// kernel counts into the other half of count_slots, reads and zeroes the
// half it left, and drains the overflow hash. Used by one goroutine (the
// probe's harvest loop).
type countsHarvester struct {
	slots  *ebpf.Map      // per-CPU array, 2*countSlots ProbeCountSlot
	counts *ebpf.Map      // per-CPU overflow hash
	epoch  *ebpf.Variable // count_epoch
	cur    uint32         // half the kernel counts into
	last   time.Time      // end of the previous interval
	keys   []sysbpf.ProbeCountKey
	values []uint64 // per-CPU, len(keys)*possible CPUs
	slotK  []uint32
	slotV  []sysbpf.ProbeCountSlot // per-CPU, countSlots*possible CPUs
	zero   []sysbpf.ProbeCountSlot
	sums   map[sysbpf.ProbeCountKey]uint64
	comms  map[uint32][]byte
}

func (h *countsHarvester) harvest(mem memory.Allocator, e *env) (arrow.RecordBatch, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	if h.keys == nil {
		h.keys = make([]sysbpf.ProbeCountKey, 1024)
		h.values = make([]uint64, len(h.keys)*ncpu)
		h.slotK = make([]uint32, countSlots)
		h.slotV = make([]sysbpf.ProbeCountSlot, countSlots*ncpu)
		h.zero = make([]sysbpf.ProbeCountSlot, countSlots*ncpu)
		h.sums = make(map[sysbpf.ProbeCountKey]uint64)
	}
	now := time.Now()
	interval := uint64(now.Sub(h.last))
	h.last = now
	clear(h.sums)
	h.comms = make(map[uint32][]byte)

	// Flip, then give programs that read the old epoch time to finish.
	old := h.cur
	h.cur ^= 1
	if err := h.epoch.Set(h.cur); err != nil {
		return nil, fmt.Errorf("harvest syscall counts: flip epoch: %w", err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := h.drainHalf(old, ncpu); err != nil {
		return nil, fmt.Errorf("harvest syscall counts: %w", err)
	}
	err = drainPerCPU(h.counts, h.keys, h.values, ncpu, func(k sysbpf.ProbeCountKey, sum uint64) {
		h.sums[k] += sum
	})
	if err != nil {
		return nil, fmt.Errorf("harvest syscall counts: %w", err)
	}
	if len(h.sums) == 0 {
		return nil, nil
	}
	b := newRowBuilder(mem, syscallCountsSchema, e)
	ts := bootNow()
	for k, n := range h.sums {
		b.start(ts)
		b.u32(2, k.Tgid)
		b.dict(3, h.comm(k.Tgid, e.procs))
		b.dict(4, syscallName(k.Nr))
		b.u64(5, n)
		b.u64(6, interval)
	}
	return b.flush(), nil
}

// drainHalf adds half of count_slots to sums and zeroes it.
func (h *countsHarvester) drainHalf(half uint32, ncpu int) error {
	var cursor ebpf.MapBatchCursor
	// Array batches go in key order: skip the first half when reading the
	// second.
	for chunk := uint32(0); chunk <= half; chunk++ {
		n, err := h.slots.BatchLookup(&cursor, h.slotK, h.slotV, nil)
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("read count slots: %w", err)
		}
		if chunk < half {
			continue
		}
		for i := range n {
			for _, s := range h.slotV[i*ncpu : (i+1)*ncpu] {
				if s.Count != 0 {
					h.sums[sysbpf.ProbeCountKey{Tgid: s.Tgid, Nr: s.Nr}] += s.Count
				}
			}
		}
		for i := range h.slotK {
			h.slotK[i] = half*countSlots + uint32(i)
		}
		if _, err := h.slots.BatchUpdate(h.slotK, h.zero, nil); err != nil {
			return fmt.Errorf("zero count slots: %w", err)
		}
	}
	return nil
}

// comm reads a process's name from /proc once per harvest. A process that
// has exited since its last counted call (most short-lived ones) is named by
// the process table, which keeps exited processes for a while with the name
// from their exec or exit event.
func (h *countsHarvester) comm(pid uint32, procs *procTable) []byte {
	if c, ok := h.comms[pid]; ok {
		return c
	}
	c, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/comm")
	if err != nil {
		c = []byte(procs.comm(pid))
	}
	c = bytes.TrimSuffix(c, []byte("\n"))
	h.comms[pid] = c
	return c
}

// drainPerCPU reads and deletes every entry of a per-CPU hash of uint64
// counters, calling fn with each key and the sum over CPUs. keys and
// values are scratch space: values must hold len(keys)*ncpu.
func drainPerCPU[K any](m *ebpf.Map, keys []K, values []uint64, ncpu int, fn func(K, uint64)) error {
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookupAndDelete(&cursor, keys, values, nil)
		for i := range n {
			var sum uint64
			for _, v := range values[i*ncpu : (i+1)*ncpu] {
				sum += v
			}
			fn(keys[i], sum)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
