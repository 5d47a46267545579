package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	sysbpf "github.com/vigil-dev/vigil/bpf/sys"
)

func init() {
	helpers["open"] = func(paths []string) error {
		for _, p := range paths {
			if f, err := os.Open(p); err == nil {
				f.Close()
			}
		}
		return nil
	}
	helpers["priv"] = func([]string) error {
		runtime.LockOSThread()
		// Raw calls: Go's syscall.Setresuid runs on every thread.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), ^uintptr(0), ^uintptr(0)); e != 0 {
			return e
		}
		// One argument: the others must be reported as 0 (x1, x2: stale
		// values for the kernel to ignore).
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETUID, uintptr(os.Getuid()), 0x1111, 0x2222); e != 0 {
			return e
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_ATTACH, 1<<22-1, 0); e != syscall.ESRCH {
			return fmt.Errorf("ptrace: %v, want ESRCH", e)
		}
		fmt.Println(syscall.Gettid())
		return nil
	}
	helpers["getppid"] = func(args []string) error {
		n, _ := strconv.Atoi(args[0])
		for range n {
			syscall.Getppid()
		}
		return nil
	}
}

// sysHookCase is one way to attach the file and priv probes.
type sysHookCase struct {
	name    string
	counts  bool // with the syscalls probe, which changes where entries are seen
	generic bool // Options.genericSyscalls
	want    sysHooks
}

// sysHookCases are the ways the file and priv probes can be attached, each
// checked against real syscalls: the probes alone, with syscall counts,
// and the fallback.
var sysHookCases = []sysHookCase{
	{"per-syscall", false, false, hooksPerSyscall},
	{"with counts", true, false, hooksPerSyscallExit},
	{"generic", false, true, hooksGeneric},
}

// startSysCollector starts a collector with probe (file or priv) attached
// as c says, skipping if this machine cannot attach it so.
func startSysCollector(t *testing.T, probe string, c sysHookCase, opts Options) *sink {
	t.Helper()
	opts.Probes = []string{probe}
	if c.counts {
		opts.Probes = append(opts.Probes, "syscalls")
	}
	opts.genericSyscalls = c.generic
	col, out := startCollector(t, opts)
	for _, p := range col.probes {
		if p.name == probe {
			if got := p.closers[0].(*sysObject).hooks; got != c.want {
				skipOrFail(t, fmt.Errorf("attached to %v, want %v", got, c.want))
			}
		}
	}
	return out
}

func TestFileProbe(t *testing.T) {
	for _, c := range sysHookCases {
		t.Run(c.name, func(t *testing.T) { testFileProbe(t, c) })
	}
}

func testFileProbe(t *testing.T, c sysHookCase) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a1", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "a1", "secret")
	other := filepath.Join(dir, "a1", "x", "secret")
	longer := filepath.Join(dir, "a1", "secretive") // '$': the path must end with the pattern
	key, keys := filepath.Join(dir, "a1", "key"), filepath.Join(dir, "a1", "keys")
	for _, p := range []string{secret, other, longer, key, keys} {
		os.WriteFile(p, nil, 0o600)
	}
	out := startSysCollector(t, "file", c, Options{FilePatterns: []string{"/etc/shadow", dir + "/*/secret$", key + "$"}})
	pid, _ := runHelper(t, nil, "open", "/etc/shadow", other, secret, longer, keys, key, "/etc/hostname", filepath.Join(dir, "nope", "secret"))
	for _, want := range []struct {
		path  string
		errno uint64
	}{{"/etc/shadow", 0}, {secret, 0}, {key, 0}, {filepath.Join(dir, "nope", "secret"), uint64(syscall.ENOENT)}} {
		r := out.wait(t, KindFile, 5*time.Second, func(r row) bool {
			return r.uint(t, "pid") == uint64(pid) && r.str("path") == want.path
		})
		if got := r.uint(t, "errno"); got != want.errno {
			t.Errorf("%s errno = %d, want %d", want.path, got, want.errno)
		}
		if r.str("syscall") != "openat" || r.str("comm") != helperComm() || r.uint(t, "tid") == 0 || r.uint(t, "flags") != uint64(syscall.O_RDONLY|syscall.O_CLOEXEC) {
			t.Errorf("row = %v", r)
		}
	}
	for _, r := range out.seen[KindFile] {
		if p := r.str("path"); r.uint(t, "pid") == uint64(pid) && (p == other || p == longer || p == keys || p == "/etc/hostname") {
			t.Errorf("unmatched path reported: %v", r)
		}
	}
}

func TestPrivProbe(t *testing.T) {
	for _, c := range sysHookCases {
		t.Run(c.name, func(t *testing.T) {
			out := startSysCollector(t, "priv", c, Options{})
			pid, tid := runHelper(t, nil, "priv")
			r := out.wait(t, KindPriv, 5*time.Second, func(r row) bool {
				return r.uint(t, "pid") == uint64(pid) && r.str("syscall") == "setresuid"
			})
			if r.uint(t, "arg0") != 1<<32-1 || r.uint(t, "arg2") != 1<<32-1 || r.uint(t, "errno") != 0 ||
				r.uint(t, "uid_after") != uint64(os.Getuid()) || strconv.FormatUint(r.uint(t, "tid"), 10) != tid {
				t.Errorf("setresuid row = %v", r)
			}
			r = out.wait(t, KindPriv, 5*time.Second, func(r row) bool {
				return r.uint(t, "pid") == uint64(pid) && r.str("syscall") == "setuid"
			})
			if r.uint(t, "arg0") != uint64(os.Getuid()) || r.uint(t, "arg1") != 0 || r.uint(t, "arg2") != 0 || r.uint(t, "errno") != 0 {
				t.Errorf("setuid row = %v", r)
			}
			r = out.wait(t, KindPriv, 5*time.Second, func(r row) bool {
				return r.uint(t, "pid") == uint64(pid) && r.str("syscall") == "ptrace"
			})
			if r.uint(t, "errno") != uint64(syscall.ESRCH) || r.uint(t, "arg0") != syscall.PTRACE_ATTACH || r.uint(t, "arg1") != 1<<22-1 {
				t.Errorf("ptrace row = %v", r)
			}
		})
	}
}

func TestSyscallCounts(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"syscalls"}, FlushInterval: 100 * time.Millisecond})
	pid, _ := runHelper(t, nil, "getppid", "5000")
	var sum uint64
	out.until(t, 10*time.Second, "5000 getppid counted", func() bool {
		sum = 0
		for _, r := range out.seen[KindSyscallCounts] {
			if r.uint(t, "pid") == uint64(pid) && r.str("syscall") == "getppid" {
				sum += r.uint(t, "count")
			}
		}
		return sum >= 5000
	})
	if sum != 5000 {
		t.Errorf("counted %d getppid calls, want 5000", sum)
	}
}

// TestSyscallCountsNameExited checks that the counts of a process that is
// gone by the harvest (most short-lived ones) carry its name, from the
// process table, not an empty comm.
func TestSyscallCountsNameExited(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"syscalls", "exit"}, FlushInterval: 100 * time.Millisecond})
	pid, _ := runHelper(t, nil, "getppid", "3000")
	var rows []row
	out.until(t, 10*time.Second, "3000 getppid counted", func() bool {
		rows = rows[:0]
		var sum uint64
		for _, r := range out.seen[KindSyscallCounts] {
			if r.uint(t, "pid") == uint64(pid) {
				rows = append(rows, r)
				if r.str("syscall") == "getppid" {
					sum += r.uint(t, "count")
				}
			}
		}
		return sum >= 3000
	})
	for _, r := range rows {
		if got := r.str("comm"); got != helperComm() {
			t.Errorf("pid %d %s: comm %q, want %q", pid, r.str("syscall"), got, helperComm())
		}
	}
}

func TestCompilePatterns(t *testing.T) {
	ps, err := compilePatterns([]string{"/etc/shadow", "~/.ssh", "/proc/*/mem$", "/etc/passwd$"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		s := string(p.Prefix[:p.PrefixLen])
		if p.HasStar == 1 {
			s += "*" + string(p.Suffix[:p.SuffixLen])
		}
		got = append(got, strings.Replace(s, "\x00", "$", 1))
	}
	if want := []string{"/etc/shadow", "/root/.ssh", "/home/*/.ssh", "/proc/*/mem$", "/etc/passwd$"}; !slices.Equal(got, want) {
		t.Errorf("patterns = %q, want %q", got, want)
	}
	for _, bad := range []string{"etc", "/a/*/b/*/c", "/a$b", "/a$$"} {
		if _, err := compilePatterns([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func FuzzSysDecode(f *testing.F) {
	f.Add(make([]byte, unsafe.Sizeof(sysbpf.ProbeFileEvent{})))
	f.Add(make([]byte, unsafe.Sizeof(sysbpf.ProbePrivEvent{})))
	e := &env{clock: &clock{}}
	fb := &fileBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), fileSchema, e)}
	pb := &privBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), privSchema, e)}
	defer fb.release()
	defer pb.release()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = fb.append(raw)
		_ = pb.append(raw)
		if fb.len() > 1024 || pb.len() > 1024 {
			fb.flush().Release()
			pb.flush().Release()
		}
	})
}

// TestDefaultFilePatternsCompile: the defaults fit the kernel's pattern
// table once "~/" is expanded.
func TestDefaultFilePatternsCompile(t *testing.T) {
	if _, err := compilePatterns(DefaultFilePatterns); err != nil {
		t.Fatalf("default patterns: %v", err)
	}
}
