package collector

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	execbpf "github.com/vigil-dev/vigil/bpf/exec"
)

func TestExecProbe(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"exec"}})

	token := fmt.Sprintf("vigil-exec-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command("/bin/sh", "-c", "exit 0", "sh", token, "two words")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}

	r := out.wait(t, KindExec, 5*time.Second, func(r row) bool {
		return slices.Contains(r.strings("argv"), token)
	})
	if got, want := r.uint(t, "pid"), uint64(cmd.Process.Pid); got != want {
		t.Errorf("pid = %d, want %d", got, want)
	}
	if got, want := r.uint(t, "ppid"), uint64(os.Getpid()); got != want {
		t.Errorf("ppid = %d, want %d", got, want)
	}
	if got, want := r.uint(t, "uid"), uint64(os.Getuid()); got != want {
		t.Errorf("uid = %d, want %d", got, want)
	}
	if got, want := r.uint(t, "gid"), uint64(os.Getgid()); got != want {
		t.Errorf("gid = %d, want %d", got, want)
	}
	if got := r.str("comm"); got != "sh" {
		t.Errorf("comm = %q, want sh", got)
	}
	if got := r.str("filename"); got != "/bin/sh" {
		t.Errorf("filename = %q, want /bin/sh", got)
	}
	if got, want := r.strings("argv"), []string{"/bin/sh", "-c", "exit 0", "sh", token, "two words"}; !slices.Equal(got, want) {
		t.Errorf("argv = %q, want %q", got, want)
	}
	if got := r.str("host"); got != "test-host" {
		t.Errorf("host = %q", got)
	}
	if r.uint(t, "cgroup_id") == 0 {
		t.Errorf("cgroup_id = 0")
	}
	ts, err := time.Parse(time.RFC3339Nano, r.str("ts"))
	if err != nil || time.Since(ts).Abs() > time.Minute {
		t.Errorf("ts = %q (%v), want about now", r.str("ts"), err)
	}
}

// TestExecAncestor: a command run from a subshell (a fork-only copy of its
// shell, often gone before anything reads its pid) names the shell that
// exec'd as its exec_ancestor, however deep the subshells; a command whose
// parent exec'd names that parent.
func TestExecAncestor(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"exec"}})
	token := fmt.Sprintf("vigil-anc-%d", time.Now().UnixNano())
	// bash forks a subshell for each ( ... ) that runs two commands, and
	// one more for the command inside; exec_ancestor skips the subshells.
	script := `/bin/echo direct "$1"; ( /bin/echo sub1 "$1"; : ); ( ( /bin/echo sub2 "$1"; : ); : )`
	cmd := exec.Command("/bin/bash", "-c", script, "bash", token)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	shell := uint64(cmd.Process.Pid)
	for _, what := range []string{"direct", "sub1", "sub2"} {
		r := out.wait(t, KindExec, 5*time.Second, func(r row) bool {
			argv := r.strings("argv")
			return len(argv) == 3 && argv[1] == what && argv[2] == token
		})
		pp, anc := r.uint(t, "ppid"), r.uint(t, "exec_ancestor")
		if anc != shell {
			t.Errorf("%s: exec_ancestor = %d, want the shell %d (ppid %d)", what, anc, shell, pp)
		}
		if (what == "direct") != (pp == shell) {
			t.Errorf("%s: ppid = %d, shell %d: the subshells were not forked as this test expects", what, pp, shell)
		}
	}
	// The test process itself exec'd, so the shell's own row names it.
	r := out.wait(t, KindExec, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == shell && r.str("comm") == "bash"
	})
	if got, want := r.uint(t, "exec_ancestor"), uint64(os.Getpid()); got != want {
		t.Errorf("shell: exec_ancestor = %d, want the test process %d", got, want)
	}
}

// TestExecArgvTruncated checks that an argv longer than the probe's buffer
// is cut, not dropped.
func TestExecArgvTruncated(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"exec"}})
	token := fmt.Sprintf("vigil-trunc-%d", time.Now().UnixNano())
	long := make([]byte, 3000)
	for i := range long {
		long[i] = 'x'
	}
	if err := exec.Command("/bin/sh", "-c", "exit 0", token, string(long)).Run(); err != nil {
		t.Fatal(err)
	}
	r := out.wait(t, KindExec, 5*time.Second, func(r row) bool {
		return slices.Contains(r.strings("argv"), token)
	})
	argv := r.strings("argv")
	if last := argv[len(argv)-1]; len(last) == 0 || len(last) >= len(long) {
		t.Errorf("last argument has %d bytes, want a cut of %d", len(last), len(long))
	}
}

func execRecord(argv ...string) []byte {
	var e execbpf.ProbeExecEvent
	e.BootNs = 123456789
	e.Pid, e.Ppid, e.ExecAncestor, e.Uid, e.Gid = 42, 41, 40, 1000, 1000
	e.CgroupId = 7
	copy(e.Comm[:], "bash")
	copy(e.Filename[:], "/usr/bin/bash")
	n := 0
	for _, a := range argv {
		n += copy(e.Argv[n:], a)
		if n < len(e.Argv) {
			e.Argv[n] = 0
			n++
		}
	}
	e.ArgvSize = uint32(n)
	return slices.Clone(unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e)))
}

func TestExecDecode(t *testing.T) {
	raw := execRecord("bash", "-c", "echo hi")
	b := newExecBuilder(memory.NewGoAllocator(), &env{host: []byte("h"), clock: &clock{}})
	defer b.release()
	if err := b.append(raw); err != nil {
		t.Fatal(err)
	}
	if err := b.append(raw[:10]); err == nil {
		t.Error("short record accepted")
	}
	bad := slices.Clone(raw)
	bad[unsafe.Offsetof(execbpf.ProbeExecEvent{}.ArgvSize)+1] = 0xff
	if err := b.append(bad); err == nil {
		t.Error("argv size out of range accepted")
	}
	rec := b.flush()
	defer rec.Release()
	rs := rows(t, Batch{Kind: KindExec, Record: rec})
	if len(rs) != 1 {
		t.Fatalf("%d rows, want 1", len(rs))
	}
	if got := rs[0].strings("argv"); !slices.Equal(got, []string{"bash", "-c", "echo hi"}) {
		t.Errorf("argv = %q", got)
	}
	if rs[0].uint(t, "ppid") != 41 || rs[0].uint(t, "exec_ancestor") != 40 {
		t.Errorf("ppid %d, exec_ancestor %d; want 41, 40", rs[0].uint(t, "ppid"), rs[0].uint(t, "exec_ancestor"))
	}
	if rs[0].str("comm") != "bash" || rs[0].str("filename") != "/usr/bin/bash" || rs[0]["kind"] != "exec" {
		t.Errorf("row = %v", rs[0])
	}
}

func FuzzExecDecode(f *testing.F) {
	f.Add(execRecord("a", "b"))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, unsafe.Sizeof(execbpf.ProbeExecEvent{})))
	b := newExecBuilder(memory.NewGoAllocator(), &env{host: []byte("h"), clock: &clock{}})
	defer b.release()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = b.append(raw) // must not panic
		if b.len() > 1024 {
			b.flush().Release()
		}
	})
}

func BenchmarkExecDecode(b *testing.B) {
	raw := execRecord("/usr/bin/curl", "-sS", "https://example.com/some/path")
	var scratch execbpf.ProbeExecEvent
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := decodeExec(raw, &scratch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecArrow(b *testing.B) {
	raw := execRecord("/usr/bin/curl", "-sS", "https://example.com/some/path")
	bld := newExecBuilder(memory.DefaultAllocator, &env{host: []byte("h"), clock: &clock{}})
	defer bld.release()
	b.ReportAllocs()
	for b.Loop() {
		if err := bld.append(raw); err != nil {
			b.Fatal(err)
		}
		if bld.len() == 8192 {
			bld.flush().Release()
		}
	}
}
