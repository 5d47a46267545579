package collector

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	exitbpf "github.com/vigil-dev/vigil/bpf/exit"
)

func TestExitProbe(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"exit"}})

	// A shell that forks two children and starts no threads, then exits 7.
	status := exec.Command("/bin/sh", "-c", "/bin/true; /bin/true; sleep 0.2; exit 7")
	_ = status.Run()
	// A process killed by SIGKILL.
	killed := exec.Command("/bin/sleep", "30")
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	_ = killed.Process.Signal(syscall.SIGKILL)
	_ = killed.Wait()

	r := out.wait(t, KindExit, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == uint64(status.Process.Pid)
	})
	if got := r.uint(t, "exit_code"); got != 7 {
		t.Errorf("exit_code = %d, want 7", got)
	}
	if got := r.uint(t, "signal"); got != 0 {
		t.Errorf("signal = %d, want 0", got)
	}
	if got := r.uint(t, "forks"); got < 2 {
		t.Errorf("forks = %d, want >= 2", got)
	}
	if got := r.uint(t, "lifetime_ns"); got < uint64(150*time.Millisecond) || got > uint64(10*time.Second) {
		t.Errorf("lifetime_ns = %d, want about 0.2s", got)
	}
	if got := r.str("comm"); got != "sh" {
		t.Errorf("comm = %q", got)
	}

	r = out.wait(t, KindExit, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == uint64(killed.Process.Pid)
	})
	if got := r.uint(t, "signal"); got != uint64(syscall.SIGKILL) {
		t.Errorf("signal = %d, want %d", got, syscall.SIGKILL)
	}
	if got := r.str("comm"); got != "sleep" {
		t.Errorf("comm = %q", got)
	}
}

func FuzzExitDecode(f *testing.F) {
	f.Add(make([]byte, unsafe.Sizeof(exitbpf.ProbeExitEvent{})))
	f.Add([]byte{1})
	b := &exitBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), exitSchema, &env{clock: &clock{}})}
	defer b.release()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = b.append(raw)
		if b.len() > 1024 {
			b.flush().Release()
		}
	})
}
