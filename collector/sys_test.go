package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

func TestFileProbe(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a1", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "a1", "secret")
	other := filepath.Join(dir, "a1", "x", "secret")
	for _, p := range []string{secret, other} {
		os.WriteFile(p, nil, 0o600)
	}
	_, out := startCollector(t, Options{
		Probes:       []string{"file"},
		FilePatterns: []string{"/etc/shadow", dir + "/*/secret"},
	})
	pid, _ := runHelper(t, nil, "open", "/etc/shadow", other, secret, "/etc/hostname", filepath.Join(dir, "nope", "secret"))
	for _, want := range []struct {
		path  string
		errno uint64
	}{{"/etc/shadow", 0}, {secret, 0}, {filepath.Join(dir, "nope", "secret"), uint64(syscall.ENOENT)}} {
		r := out.wait(t, KindFile, 5*time.Second, func(r row) bool {
			return r.uint(t, "pid") == uint64(pid) && r.str("path") == want.path
		})
		if got := r.uint(t, "errno"); got != want.errno {
			t.Errorf("%s errno = %d, want %d", want.path, got, want.errno)
		}
		if r.str("syscall") != "openat" || r.str("comm") != helperComm() {
			t.Errorf("row = %v", r)
		}
	}
	for _, r := range out.seen[KindFile] {
		if r.uint(t, "pid") == uint64(pid) && (r.str("path") == other || r.str("path") == "/etc/hostname") {
			t.Errorf("unmatched path reported: %v", r)
		}
	}
}

func TestPrivProbe(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"priv"}})
	pid, _ := runHelper(t, nil, "priv")
	r := out.wait(t, KindPriv, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == uint64(pid) && r.str("syscall") == "setresuid"
	})
	if r.uint(t, "arg0") != 1<<32-1 || r.uint(t, "errno") != 0 || r.uint(t, "uid_after") != uint64(os.Getuid()) {
		t.Errorf("setresuid row = %v", r)
	}
	r = out.wait(t, KindPriv, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == uint64(pid) && r.str("syscall") == "ptrace"
	})
	if r.uint(t, "errno") != uint64(syscall.ESRCH) || r.uint(t, "arg0") != syscall.PTRACE_ATTACH || r.uint(t, "arg1") != 1<<22-1 {
		t.Errorf("ptrace row = %v", r)
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

func TestCompilePatterns(t *testing.T) {
	ps, err := compilePatterns([]string{"/etc/shadow", "~/.ssh", "/proc/*/mem"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		s := string(p.Prefix[:p.PrefixLen])
		if p.HasStar == 1 {
			s += "*" + string(p.Suffix[:p.SuffixLen])
		}
		got = append(got, s)
	}
	if want := []string{"/etc/shadow", "/root/.ssh", "/home/*/.ssh", "/proc/*/mem"}; !slices.Equal(got, want) {
		t.Errorf("patterns = %q, want %q", got, want)
	}
	for _, bad := range []string{"etc", "/a/*/b/*/c"} {
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
