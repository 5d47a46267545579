package collector

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestAllProbes loads every probe, with one that fails, and checks that
// the failure is reported in one line while the others run.
func TestAllProbes(t *testing.T) {
	saved := registry
	t.Cleanup(func() { registry = saved })
	registry = append(slices.Clone(registry), struct {
		name string
		open func(*loadOptions) (*probe, error)
	}{"broken", func(*loadOptions) (*probe, error) {
		return nil, &probeError{Step: "attach tracepoint x/y", Err: os.ErrNotExist}
	}})

	c, err := New(Options{Host: "test-host", FlushInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		skipOrFail(t, err)
	}
	defer c.Close()
	failed := c.Failed()
	if len(failed) != 1 || strings.Contains(failed[0].Error(), "\n") ||
		!strings.HasPrefix(failed[0].Error(), "probe broken: attach tracepoint x/y: ") {
		t.Fatalf("Failed() = %v, want one line for probe broken", failed)
	}
	var loaded []string
	for _, p := range c.Stats().Probes {
		loaded = append(loaded, p.Probe)
	}
	if want := slices.DeleteFunc(ProbeNames(), func(s string) bool { return s == "broken" }); !slices.Equal(loaded, want) {
		t.Errorf("loaded %v, want %v", loaded, want)
	}

	out := make(chan Batch, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, out) }()
	s := &sink{out: out, seen: map[Kind][]row{}}
	cmd := exec.Command("/bin/true", "vigil-all-probes")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	s.wait(t, KindExec, 5*time.Second, func(r row) bool { return slices.Contains(r.strings("argv"), "vigil-all-probes") })
	s.wait(t, KindExit, 5*time.Second, func(r row) bool { return r.uint(t, "pid") == uint64(cmd.Process.Pid) })

	// The process table learnt the exec.
	p, ok := c.Process(uint32(cmd.Process.Pid))
	if !ok || p.Exe != "/bin/true" || !slices.Equal(p.Cmdline, []string{"/bin/true", "vigil-all-probes"}) || !p.Exited {
		t.Errorf("Process = %+v, %v", p, ok)
	}
	if l := c.Lineage(uint32(os.Getpid())); len(l) == 0 || l[0].Pid != uint32(os.Getpid()) {
		t.Errorf("Lineage(self) = %+v", l)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for b := range len(out) {
		_ = b
		(<-out).Record.Release()
	}
	for _, ps := range c.Stats().Probes {
		if ps.DecodeErrors != 0 {
			t.Errorf("%s: %d decode errors", ps.Probe, ps.DecodeErrors)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{Probes: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `unknown probe "nope"`) {
		t.Errorf("New(nope) = %v", err)
	}
	saved := registry
	t.Cleanup(func() { registry = saved })
	registry = registry[:0:0]
	registry = append(registry, struct {
		name string
		open func(*loadOptions) (*probe, error)
	}{"exec", func(*loadOptions) (*probe, error) {
		return nil, &probeError{Step: "load", Err: errors.New("boom")}
	}})
	_, err := New(Options{Probes: []string{"exec"}, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, ErrNoProbes) || !strings.Contains(err.Error(), "probe exec: load: boom") {
		t.Errorf("New = %v", err)
	}
}

// TestSharedLoadError checks that the probes sharing the syscall object
// each name themselves when it cannot be loaded.
func TestSharedLoadError(t *testing.T) {
	_, err := New(Options{Probes: []string{"file", "priv"}, FilePatterns: []string{"relative"}, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Fatal("bad pattern accepted")
	}
	for _, want := range []string{"probe file: configure: ", "probe priv: configure: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestSlowConsumer checks that a caller that never reads does not block
// the probe goroutines: batches beyond the queue are dropped and counted,
// and Run still returns when asked to.
func TestSlowConsumer(t *testing.T) {
	saved := registry
	t.Cleanup(func() { registry = saved })
	registry = registry[:0:0]
	registry = append(registry, struct {
		name string
		open func(*loadOptions) (*probe, error)
	}{"fake", func(*loadOptions) (*probe, error) {
		p := &probe{kind: KindRunqLatency}
		p.harvest = func(mem memory.Allocator, e *env) (arrow.RecordBatch, error) {
			b := newRowBuilder(mem, runqSchema, e)
			for range 10 {
				b.start(1)
				b.u64(2, 1)
				b.u32(3, 0)
				b.u64(4, 2)
				b.u64(5, 1)
				b.u64(6, 1)
				b.container(7, 0)
			}
			return b.flush(), nil
		}
		return p, nil
	}})
	c, err := New(Options{Probes: []string{"fake"}, QueueBatches: 2, FlushInterval: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := harvestEvery
	harvestEvery = func(time.Duration) time.Duration { return time.Millisecond }
	defer func() { harvestEvery = old }()

	out := make(chan Batch) // never read
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, out) }()
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Probes[0].UserDrops < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v, want user drops", c.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	s := c.Stats().Probes[0]
	if s.Events != s.UserDrops {
		t.Errorf("events %d, user drops %d: every row should be dropped", s.Events, s.UserDrops)
	}
}
