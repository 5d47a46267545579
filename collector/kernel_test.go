package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"testing"
	"time"
)

// skipOrFail is called when a probe cannot be loaded: a CI run must have a
// kernel that can load it, a local run may lack root or BTF.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot load probe: %v", err)
	}
	t.Skipf("cannot load probe (needs root and kernel BTF): %v", err)
}

// startCollector runs a collector with the given probes for the rest of the
// test and returns the channel its batches arrive on.
func startCollector(t *testing.T, opts Options) (*Collector, *sink) {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "test-host"
	}
	if opts.BatchRows == 0 {
		opts.BatchRows = 512
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 20 * time.Millisecond
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := New(opts)
	if err != nil {
		skipOrFail(t, err)
	}
	if f := c.Failed(); len(f) > 0 {
		c.Close()
		skipOrFail(t, f[0])
	}
	out := make(chan Batch, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		for {
			select {
			case b := <-out:
				b.Record.Release()
				continue
			default:
			}
			return
		}
	})
	return c, &sink{out: out, seen: map[Kind][]row{}}
}

// row is one decoded row, via WriteJSONL so that the JSON output is tested
// on every kernel test too.
type row map[string]any

func rows(t *testing.T, b Batch) []row {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, b); err != nil {
		t.Fatalf("WriteJSONL: %v", err)
	}
	var out []row
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	for dec.More() {
		var r row
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decode jsonl: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// sink accumulates the rows a collector delivers so that tests can wait
// for several rows that may arrive in one batch.
type sink struct {
	out  <-chan Batch
	seen map[Kind][]row
}

// wait returns the first row of the kind that matches, failing the test
// after timeout.
func (s *sink) wait(t *testing.T, kind Kind, timeout time.Duration, match func(row) bool) row {
	t.Helper()
	deadline := time.After(timeout)
	next := 0
	for {
		for rs := s.seen[kind]; next < len(rs); next++ {
			if match(rs[next]) {
				return rs[next]
			}
		}
		select {
		case b := <-s.out:
			if !b.Record.Schema().Equal(Schema(b.Kind)) {
				t.Fatalf("batch schema %v differs from Schema(%s)", b.Record.Schema(), b.Kind)
			}
			s.seen[b.Kind] = append(s.seen[b.Kind], rows(t, b)...)
			b.Record.Release()
		case <-deadline:
			for _, r := range s.seen[kind] {
				t.Logf("seen %s row: %v", kind, r)
			}
			t.Fatalf("no matching %s row within %v", kind, timeout)
		}
	}
}

func (r row) uint(t *testing.T, col string) uint64 {
	t.Helper()
	n, ok := r[col].(json.Number)
	if !ok {
		t.Fatalf("column %s = %#v, want a number", col, r[col])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("column %s: %v", col, err)
	}
	return uint64(v)
}

func (r row) str(col string) string {
	s, _ := r[col].(string)
	return s
}

func (r row) strings(col string) []string {
	l, _ := r[col].([]any)
	var out []string
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// until pulls batches until cond, which may inspect s.seen, holds.
func (s *sink) until(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case b := <-s.out:
			if !b.Record.Schema().Equal(Schema(b.Kind)) {
				t.Fatalf("batch schema %v differs from Schema(%s)", b.Record.Schema(), b.Kind)
			}
			s.seen[b.Kind] = append(s.seen[b.Kind], rows(t, b)...)
			b.Record.Release()
		case <-deadline:
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}
