package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	oombpf "github.com/vigil-dev/vigil/bpf/oom"
	signalbpf "github.com/vigil-dev/vigil/bpf/signal"
)

func init() {
	// oom: join the memory cgroup args[0], then allocate until killed.
	helpers["oom"] = func(args []string) error {
		if err := os.WriteFile(filepath.Join(args[0], "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			return err
		}
		var hold [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = byte(i)
			}
			hold = append(hold, b)
		}
	}
}

func TestSignalProbe(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"signal"}})
	sleeper := exec.Command("/bin/sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGWINCH is not in the default set and must not be reported.
	killer := exec.Command("/bin/sh", "-c", fmt.Sprintf("kill -WINCH %d; kill -KILL %d", sleeper.Process.Pid, sleeper.Process.Pid))
	if err := killer.Run(); err != nil {
		t.Fatal(err)
	}
	sleeper.Wait()
	r := out.wait(t, KindSignal, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == uint64(sleeper.Process.Pid)
	})
	if r.str("signal") != "SIGKILL" || r.str("comm") != "sleep" || r.uint(t, "sender_pid") != uint64(killer.Process.Pid) ||
		r.str("sender_comm") != "sh" || r.str("code") != "SI_USER" || r.str("result") != "delivered" {
		t.Errorf("row = %v", r)
	}
	for _, r := range out.seen[KindSignal] {
		if r.str("signal") == "SIGWINCH" {
			t.Errorf("SIGWINCH reported: %v", r)
		}
	}
}

// memoryCgroup creates a child memory cgroup of the test's own with a
// small limit, or skips when there is none to create.
func memoryCgroup(t *testing.T) string {
	t.Helper()
	self, _ := os.ReadFile("/proc/self/cgroup")
	var candidates []string
	for _, line := range strings.Split(string(self), "\n") {
		f := strings.SplitN(line, ":", 3)
		switch {
		case len(f) == 3 && f[0] == "0":
			candidates = append(candidates, filepath.Join("/sys/fs/cgroup/unified", f[2]), filepath.Join("/sys/fs/cgroup", f[2]))
		case len(f) == 3 && strings.Contains(","+f[1]+",", ",memory,"):
			candidates = append(candidates, filepath.Join("/sys/fs/cgroup/memory", f[2]))
		}
	}
	for _, parent := range candidates {
		dir := filepath.Join(parent, fmt.Sprintf("vigil-oom-test-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		t.Cleanup(func() { os.Remove(dir) })
		for file, limit := range map[string]string{"memory.max": "32M", "memory.limit_in_bytes": "33554432"} {
			if os.WriteFile(filepath.Join(dir, file), []byte(limit), 0o644) == nil {
				os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
				return dir
			}
		}
	}
	t.Skip("no memory cgroup to limit")
	return ""
}

func TestOOMProbe(t *testing.T) {
	dir := memoryCgroup(t)
	_, out := startCollector(t, Options{Probes: []string{"oom"}})
	cmd := exec.Command(mustExecutable(t))
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER=oom", "VIGIL_TEST_ARGS="+dir)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not OOM-killed: %v", err)
	}
	r := out.wait(t, KindOOM, 5*time.Second, func(r row) bool {
		return r.uint(t, "pid") == uint64(cmd.Process.Pid)
	})
	if r.str("comm") != helperComm() || r.uint(t, "anon_rss") < 16<<20 || r.str("oom_score_adj") != "0" {
		t.Errorf("row = %v", r)
	}
}

func FuzzSignalOOMDecode(f *testing.F) {
	f.Add(make([]byte, unsafe.Sizeof(signalbpf.ProbeSignalEvent{})))
	f.Add(make([]byte, unsafe.Sizeof(oombpf.ProbeOomEvent{})))
	e := &env{clock: &clock{}}
	sb := &signalBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), signalSchema, e)}
	ob := &oomBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), oomSchema, e)}
	defer sb.release()
	defer ob.release()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = sb.append(raw)
		_ = ob.append(raw)
		if sb.len() > 1024 || ob.len() > 1024 {
			sb.flush().Release()
			ob.flush().Release()
		}
	})
}
