package spool_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/spool"
)

// fakeCH stands in for ClickHouse: it stores rows per token (a repeated
// token is deduplicated, as ClickHouse does) and can be "down".
type fakeCH struct {
	mu     sync.Mutex
	down   bool
	tokens map[string]int64
	order  []uint64 // first pid of each insert, in insert order
}

func (f *fakeCH) InsertWithToken(_ context.Context, kind collector.Kind, token string, recs []arrow.RecordBatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("connection refused")
	}
	if f.tokens == nil {
		f.tokens = map[string]int64{}
	}
	if _, dup := f.tokens[token]; dup {
		return nil
	}
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	f.tokens[token] = n
	f.order = append(f.order, uint64(recs[0].Column(2).(*array.Uint32).Value(0)))
	return nil
}

func (f *fakeCH) setDown(v bool) { f.mu.Lock(); f.down = v; f.mu.Unlock() }

func (f *fakeCH) rows() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, v := range f.tokens {
		n += v
	}
	return n
}

func execBatch(t testing.TB, first, n int) collector.Batch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, collector.Schema(collector.KindExec))
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(first + i))
		_ = b.Field(1).(*array.BinaryDictionaryBuilder).AppendString("h")
		b.Field(2).(*array.Uint32Builder).Append(uint32(first + i))
		for _, c := range []int{3, 4, 5} {
			b.Field(c).(*array.Uint32Builder).Append(0)
		}
		_ = b.Field(6).(*array.BinaryDictionaryBuilder).AppendString("sh")
		b.Field(7).(*array.StringBuilder).Append("/bin/sh")
		b.Field(8).(*array.ListBuilder).Append(true)
		b.Field(9).(*array.Uint64Builder).Append(uint64(first + i))
		_ = b.Field(10).(*array.BinaryDictionaryBuilder).AppendString("")
		_ = b.Field(11).(*array.BinaryDictionaryBuilder).AppendString("")
		b.Field(12).(*array.Uint32Builder).Append(0)
	}
	return collector.Batch{Kind: collector.KindExec, Record: b.NewRecordBatch()}
}

func run(t *testing.T, w *spool.Writer, bs ...collector.Batch) {
	t.Helper()
	in := make(chan collector.Batch, len(bs))
	for _, b := range bs {
		in <- b
	}
	close(in)
	if err := w.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

// TestOutageThenRestart: while ClickHouse is down everything is spooled and
// nothing lost; a restarted writer replays the old segments before new data,
// oldest first.
func TestOutageThenRestart(t *testing.T) {
	dir := t.TempDir()
	ch := &fakeCH{down: true}
	opts := spool.Options{Dir: dir, MaxRows: 10, CloseTimeout: 100 * time.Millisecond, RetryBackoff: 10 * time.Millisecond}
	w1, err := spool.NewWriter(ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w1, execBatch(t, 0, 10), execBatch(t, 10, 10), execBatch(t, 20, 10))
	st := w1.Stats()
	if st.SpooledRows != 30 || st.Segments != 3 || ch.rows() != 0 {
		t.Fatalf("after outage: %+v, %d rows in ClickHouse", st, ch.rows())
	}
	// The dashboard's ingest lag: how long the oldest waiting row has
	// waited, growing while ClickHouse is down.
	time.Sleep(20 * time.Millisecond)
	if later := w1.Stats().Waiting; st.Waiting <= 0 || later < st.Waiting+20*time.Millisecond {
		t.Errorf("waiting %v, then %v 20ms later: want it positive and growing", st.Waiting, later)
	}
	// An unfinished write from a crash is not acknowledged data: removed.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000099.seg.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch.setDown(false)
	// Close waits only as long as the replay needs; the bound is generous
	// so a loaded machine does not fail the test.
	opts.CloseTimeout = 10 * time.Second
	w2, err := spool.NewWriter(ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st := w2.Stats(); st.Segments != 3 || st.Waiting <= 0 {
		t.Fatalf("restart sees %d segments waiting %v", st.Segments, st.Waiting)
	}
	run(t, w2, execBatch(t, 30, 10))
	if ch.rows() != 40 || len(ch.order) != 4 {
		t.Fatalf("%d rows in %d inserts, want 40 in 4", ch.rows(), len(ch.order))
	}
	if st := w2.Stats(); st.Waiting != 0 {
		t.Errorf("nothing left to insert, yet waiting %v", st.Waiting)
	}
	for i, first := range ch.order {
		if first != uint64(i*10) {
			t.Errorf("insert %d starts at pid %d: not oldest first", i, first)
		}
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg*")); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
}

// TestFullSpoolDropsCounted: beyond MaxBytes rows are dropped, counted per
// table and in the metrics, and never silently.
func TestFullSpoolDropsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	ch := &fakeCH{down: true}
	w, err := spool.NewWriter(ch, spool.Options{Dir: t.TempDir(), MaxRows: 100, MaxBytes: 20_000,
		CloseTimeout: 50 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var bs []collector.Batch
	for i := range 20 {
		bs = append(bs, execBatch(t, i*100, 100))
	}
	run(t, w, bs...)
	st := w.Stats()
	t.Logf("%+v", st)
	dropped := st.DroppedRows["exec_events"]
	if dropped == 0 || st.SpooledRows+dropped != 2000 || st.Bytes > 20_000 {
		t.Fatalf("stats = %+v", st)
	}
	if got := counterSum(t, reg, "vigil_spool_dropped_rows_total"); got != float64(dropped) {
		t.Errorf("metric = %v, want %d", got, dropped)
	}
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestCorruptSegmentSetAside: a segment that cannot be read does not block
// the ones behind it.
func TestCorruptSegmentSetAside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), []byte("vigil-spool 1 exec tok\nnot arrow"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := &fakeCH{}
	w, err := spool.NewWriter(ch, spool.Options{Dir: dir, CloseTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w, execBatch(t, 0, 5))
	if ch.rows() != 5 {
		t.Errorf("%d rows", ch.rows())
	}
	if _, err := os.Stat(filepath.Join(dir, "rejected", "00000000000000000001.seg")); err != nil {
		t.Errorf("corrupt segment not set aside: %v", err)
	}
}

// TestCancelIsACrash: a cancelled Run returns at once, counting what was in
// memory as aborted; what was spooled stays for the next run.
func TestCancelIsACrash(t *testing.T) {
	ch := &fakeCH{down: true}
	w, err := spool.NewWriter(ch, spool.Options{Dir: t.TempDir(), MaxRows: 10, MaxDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan collector.Batch, 2)
	in <- execBatch(t, 0, 10) // spooled: reaches MaxRows
	in <- execBatch(t, 10, 5) // pending in memory
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	for w.Stats().SpooledRows < 10 || len(in) > 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if st := w.Stats(); st.SpooledRows != 10 || st.AbortedRows != 5 || st.Segments != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestOneWriterPerDir: a second Writer on a directory in use is refused
// until the first has finished.
func TestOneWriterPerDir(t *testing.T) {
	dir := t.TempDir()
	w1, err := spool.NewWriter(&fakeCH{}, spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spool.NewWriter(&fakeCH{}, spool.Options{Dir: dir}); !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	run(t, w1)
	w2, err := spool.NewWriter(&fakeCH{}, spool.Options{Dir: dir})
	if err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
	_ = w2.Close()
	_ = w2.Close()
}

// BenchmarkSpool: rows through the spool (encode, write, fsync, read back,
// hand to a fake ClickHouse), 10 batches of 10k exec rows per op.
func BenchmarkSpool(b *testing.B) {
	bs := make([]collector.Batch, 10)
	for i := range bs {
		bs[i] = execBatch(b, i*10_000, 10_000)
	}
	defer func() {
		for _, x := range bs {
			x.Record.Release()
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		w, err := spool.NewWriter(&fakeCH{}, spool.Options{Dir: b.TempDir(), CloseTimeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		in := make(chan collector.Batch, len(bs))
		for _, x := range bs {
			x.Record.Retain()
			in <- x
		}
		close(in)
		if err := w.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100_000)/b.Elapsed().Seconds(), "rows/s")
}
