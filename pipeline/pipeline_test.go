package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/vigil-dev/vigil/collector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "pid", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "comm", Type: arrow.BinaryTypes.String},
}, nil)

func testBatch(mem memory.Allocator, rows int) collector.Batch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	for i := range rows {
		b.Field(0).(*array.Uint32Builder).Append(uint32(i))
		b.Field(1).(*array.StringBuilder).Append("<b>sh</b>")
	}
	return collector.Batch{Kind: collector.KindExec, Record: b.NewRecordBatch()}
}

type countSink struct {
	rows    atomic.Int64
	flushed atomic.Bool
	block   chan struct{} // when non-nil, Consume waits on it
}

func (s *countSink) Run(ctx context.Context, in <-chan collector.Batch) error {
	for b := range in {
		if s.block != nil {
			select {
			case <-s.block:
			case <-ctx.Done():
				b.Record.Release()
				return ctx.Err()
			}
		}
		s.rows.Add(b.Record.NumRows())
		b.Record.Release()
	}
	s.flushed.Store(true)
	return nil
}

func TestFanOutDeliversEverythingAndFlushes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	a, b := &countSink{}, &countSink{}
	p := New(Options{}, Stage{Name: "a", Consumer: a, Queue: 1000}, Stage{Name: "b", Consumer: b, Queue: 1000})
	in := make(chan collector.Batch)
	done := make(chan error)
	go func() { done <- p.Run(in) }()
	for range 100 {
		in <- testBatch(mem, 10)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*countSink{"a": a, "b": b} {
		if s.rows.Load() != 1000 || !s.flushed.Load() {
			t.Errorf("sink %s: rows=%d flushed=%v, want 1000 and true", name, s.rows.Load(), s.flushed.Load())
		}
	}
}

func TestSlowSinkDropsOnlyItsOwnAndDoesNotBlock(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	fast := &countSink{}
	slow := &countSink{block: make(chan struct{})}
	p := New(Options{DrainTimeout: time.Second}, Stage{Name: "fast", Consumer: fast, Queue: 1000}, Stage{Name: "slow", Consumer: slow, Queue: 2})
	in := make(chan collector.Batch)
	done := make(chan error)
	go func() { done <- p.Run(in) }()
	start := time.Now()
	for range 200 {
		in <- testBatch(mem, 5)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("feeding 200 batches took %v: the slow sink blocked the fan-out", d)
	}
	st := p.Stats()
	if st[1].Dropped < 190 {
		t.Errorf("slow stage dropped %d batches, want >= 190", st[1].Dropped)
	}
	if st[1].DropRows != st[1].Dropped*5 {
		t.Errorf("dropped rows %d != 5 x dropped batches %d", st[1].DropRows, st[1].Dropped)
	}
	close(slow.block)
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fast.rows.Load() != 1000 {
		t.Errorf("fast sink got %d rows, want 1000", fast.rows.Load())
	}
}

func TestDrainDeadlineCancelsStuckSink(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	stuck := &countSink{block: make(chan struct{})}
	p := New(Options{DrainTimeout: 200 * time.Millisecond}, Stage{Name: "stuck", Consumer: stuck, Queue: 4})
	in := make(chan collector.Batch, 1)
	in <- testBatch(mem, 1)
	close(in)
	start := time.Now()
	_ = p.Run(in)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Run took %v with a 200ms drain timeout", d)
	}
}

type recordPub struct {
	mu   sync.Mutex
	msgs []any
}

func (r *recordPub) Publish(_ string, v any) { r.mu.Lock(); r.msgs = append(r.msgs, v); r.mu.Unlock() }

func TestLiveKeepsNewestAndBoundsPerBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	pub := &recordPub{}
	l := NewLive(pub, 3, 5)
	in := make(chan collector.Batch, 2)
	in <- testBatch(mem, 10)
	in <- testBatch(mem, 10)
	close(in)
	if err := l.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 6 {
		t.Fatalf("published %d events, want 6 (3 per batch)", len(pub.msgs))
	}
	if l.Coalesced() != 14 {
		t.Fatalf("coalesced = %d, want 14", l.Coalesced())
	}
	got := l.Recent(collector.KindExec, 10)
	if len(got) != 5 {
		t.Fatalf("recent = %d events, want 5 (ring size)", len(got))
	}
	if got[0]["pid"] != uint32(9) || got[0]["kind"] != "exec" || got[0]["comm"] != "<b>sh</b>" {
		t.Fatalf("newest event = %v", got[0])
	}
}
