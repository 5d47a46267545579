package collector

import (
	"os/exec"
	"testing"
	"time"
)

func TestRunqProbe(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"runq"}, FlushInterval: 100 * time.Millisecond})
	// Three busy loops on two CPUs must wait on the run queue.
	var cmds []*exec.Cmd
	for range 3 {
		c := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	var waits, slow uint64
	out.until(t, 10*time.Second, "run-queue waits of 1ms or more", func() bool {
		waits, slow = 0, 0
		for _, r := range out.seen[KindRunqLatency] {
			waits += r.uint(t, "count")
			if r.uint(t, "le_us") > 1024 {
				slow += r.uint(t, "count")
			}
			if r.uint(t, "le_us") != 2<<r.uint(t, "slot") || r.uint(t, "interval_ns") == 0 {
				t.Fatalf("row = %v", r)
			}
		}
		return slow > 0
	})
	t.Logf("%d waits, %d of them ≥1ms", waits, slow)
}
