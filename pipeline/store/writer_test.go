package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/schema"
	"github.com/vigil-dev/vigil/pipeline/store"
)

// execSchema is the collector's Arrow schema for kind exec, as agreed in
// docs/schema.md: host comes dictionary-encoded.
var execSchema = arrow.NewSchema([]arrow.Field{
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
	{Name: "host", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
	{Name: "pid", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "ppid", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "uid", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "gid", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "comm", Type: arrow.BinaryTypes.String},
	{Name: "filename", Type: arrow.BinaryTypes.String},
	{Name: "argv", Type: arrow.ListOf(arrow.BinaryTypes.String)},
	{Name: "cgroup_id", Type: arrow.PrimitiveTypes.Uint64},
}, nil)

// execRecord builds n exec rows starting at base, one per microsecond.
func execRecord(t testing.TB, n int, base time.Time, host string) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, execSchema)
	defer b.Release()
	ts := b.Field(0).(*array.TimestampBuilder)
	hosts := b.Field(1).(*array.BinaryDictionaryBuilder)
	argv := b.Field(8).(*array.ListBuilder)
	args := argv.ValueBuilder().(*array.StringBuilder)
	for i := range n {
		ts.Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Microsecond).UnixNano()))
		if err := hosts.AppendString(host); err != nil {
			t.Fatal(err)
		}
		b.Field(2).(*array.Uint32Builder).Append(uint32(1000 + i))
		b.Field(3).(*array.Uint32Builder).Append(1)
		b.Field(4).(*array.Uint32Builder).Append(uint32(i % 3))
		b.Field(5).(*array.Uint32Builder).Append(0)
		b.Field(6).(*array.StringBuilder).Append(fmt.Sprintf("cmd%d", i%5))
		b.Field(7).(*array.StringBuilder).Append(fmt.Sprintf("/usr/bin/cmd%d", i%5))
		argv.Append(true)
		for j := range i % 4 {
			args.Append(fmt.Sprintf("arg%d", j))
		}
		b.Field(9).(*array.Uint64Builder).Append(uint64(i))
	}
	return b.NewRecordBatch()
}

func migrated(t *testing.T) (*enginetest.Handle, context.Context) {
	t.Helper()
	h := enginetest.Start(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, h.Conn(t), schema.Options{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return h, ctx
}

func count(t *testing.T, h *enginetest.Handle, q string) uint64 {
	t.Helper()
	var n uint64
	if err := h.Conn(t).QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestWriter(t *testing.T) {
	h, ctx := migrated(t)
	conn := h.Conn(t)
	base := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)

	t.Run("rows and values", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		w := store.NewWriter(conn, store.Options{MaxRows: 2500, Registerer: reg})
		defer w.Close()
		// 3 records of 1000: the third crosses MaxRows and inserts all.
		for i := range 3 {
			rec := execRecord(t, 1000, base.Add(time.Duration(i)*time.Second), "host-a")
			if err := w.Write(ctx, collector.Batch{Kind: collector.KindExec, Record: rec}); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		if got := w.Stats().Inserts; got != 1 {
			t.Fatalf("inserts after 3000 rows with MaxRows 2500 = %d, want 1", got)
		}
		// A slice of a record: offsets must be honoured.
		rec := execRecord(t, 100, base.Add(10*time.Second), "host-b")
		sl := rec.NewSlice(10, 30)
		rec.Release()
		if err := w.Write(ctx, collector.Batch{Kind: collector.KindExec, Record: sl}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-a'"); n != 3000 {
			t.Errorf("host-a rows = %d, want 3000", n)
		}
		if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-b'"); n != 20 {
			t.Errorf("host-b rows = %d, want 20", n)
		}
		var (
			ts       time.Time
			pid      uint32
			comm     string
			filename string
			argv     []string
			cg       uint64
		)
		err := conn.QueryRow(ctx, "SELECT ts, pid, comm, filename, argv, cgroup_id FROM vigil.exec_events WHERE host = 'host-b' ORDER BY ts LIMIT 1 OFFSET 3").
			Scan(&ts, &pid, &comm, &filename, &argv, &cg)
		if err != nil {
			t.Fatal(err)
		}
		// Row 13 of the unsliced record.
		wantTS := base.Add(10*time.Second + 13*time.Microsecond)
		if !ts.Equal(wantTS) || pid != 1013 || comm != "cmd3" || filename != "/usr/bin/cmd3" || fmt.Sprint(argv) != "[arg0]" || cg != 13 {
			t.Errorf("row = %v %d %q %q %q %d, want %v 1013 cmd3 /usr/bin/cmd3 [arg0] 13", ts, pid, comm, filename, argv, cg, wantTS)
		}
		if ts.Nanosecond() != wantTS.Nanosecond() {
			t.Errorf("nanoseconds lost: %d, want %d", ts.Nanosecond(), wantTS.Nanosecond())
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "vigil_store_rows_total" {
				if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 3020 {
					t.Errorf("vigil_store_rows_total = %v, want 3020", v)
				}
				return
			}
		}
		t.Error("no vigil_store_rows_total metric")
	})

	t.Run("retried batch stored once", func(t *testing.T) {
		// Two writers with the same token prefix send the same first insert:
		// the second is what a retry after a lost answer looks like.
		for range 2 {
			w := store.NewWriter(conn, store.Options{TokenPrefix: "retry-test"})
			rec := execRecord(t, 500, base.Add(time.Hour), "host-retry")
			if err := w.Write(ctx, collector.Batch{Kind: collector.KindExec, Record: rec}); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
		if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-retry'"); n != 500 {
			t.Errorf("rows after a retried insert = %d, want 500", n)
		}
		// The rollup must not count the duplicate either.
		if n := count(t, h, "SELECT sum(execs) FROM vigil.exec_events_1m WHERE host = 'host-retry'"); n != 500 {
			t.Errorf("rollup execs after a retried insert = %d, want 500", n)
		}
		// Identical content under a new token is new data, not a retry.
		w := store.NewWriter(conn, store.Options{})
		defer w.Close()
		if err := w.Write(ctx, collector.Batch{Kind: collector.KindExec, Record: execRecord(t, 500, base.Add(time.Hour), "host-retry")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-retry'"); n != 1000 {
			t.Errorf("rows after a second distinct insert = %d, want 1000", n)
		}
	})

	t.Run("run flushes by time and on close of input", func(t *testing.T) {
		w := store.NewWriter(conn, store.Options{MaxDelay: 100 * time.Millisecond})
		defer w.Close()
		in := make(chan collector.Batch, 4)
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx, in) }()
		in <- collector.Batch{Kind: collector.KindExec, Record: execRecord(t, 10, base.Add(2*time.Hour), "host-run")}
		deadline := time.Now().Add(10 * time.Second)
		for count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-run'") != 10 {
			if time.Now().After(deadline) {
				t.Fatal("batch not inserted within 10 s of MaxDelay 100 ms")
			}
			time.Sleep(50 * time.Millisecond)
		}
		in <- collector.Batch{Kind: collector.KindExec, Record: execRecord(t, 7, base.Add(3*time.Hour), "host-run")}
		close(in)
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-run'"); n != 17 {
			t.Errorf("rows = %d, want 17", n)
		}
	})
}

// TestWriterTypes writes every Arrow type the converter supports into a
// table of its own, so the test does not depend on the evolving schema.
func TestWriterTypes(t *testing.T) {
	h := enginetest.Start(t)
	ctx := context.Background()
	conn := h.Conn(t)
	for _, q := range []string{
		"CREATE DATABASE typestest",
		`CREATE TABLE typestest.t (
			ts DateTime64(6), u8 UInt8, u16 UInt16, i32 Int32, i64 Int64, f64 Float64, ok Bool,
			ls String, lc LowCardinality(String), ns Nullable(String), nu Nullable(UInt32), au Array(UInt64)
		) ENGINE = MergeTree ORDER BY ts`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "u16", Type: arrow.PrimitiveTypes.Uint16},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "ls", Type: arrow.BinaryTypes.LargeString},
		{Name: "lc", Type: arrow.BinaryTypes.String},
		{Name: "ns", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "nu", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: "au", Type: arrow.ListOf(arrow.PrimitiveTypes.Uint64)},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	base := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	const n = 10
	for i := range n {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Second).UnixMicro()))
		b.Field(1).(*array.Uint8Builder).Append(uint8(i))
		b.Field(2).(*array.Uint16Builder).Append(uint16(i * 1000))
		b.Field(3).(*array.Int32Builder).Append(int32(-i))
		b.Field(4).(*array.Int64Builder).Append(int64(i) << 40)
		b.Field(5).(*array.Float64Builder).Append(float64(i) / 2)
		b.Field(6).(*array.BooleanBuilder).Append(i%2 == 0)
		b.Field(7).(*array.LargeStringBuilder).Append(fmt.Sprint("large-", i))
		b.Field(8).(*array.StringBuilder).Append(fmt.Sprint("lc-", i%3))
		if i%3 == 0 {
			b.Field(9).(*array.StringBuilder).AppendNull()
			b.Field(10).(*array.Uint32Builder).AppendNull()
		} else {
			b.Field(9).(*array.StringBuilder).Append(fmt.Sprint("ns-", i))
			b.Field(10).(*array.Uint32Builder).Append(uint32(i))
		}
		lb := b.Field(11).(*array.ListBuilder)
		lb.Append(true)
		for j := range i % 3 {
			lb.ValueBuilder().(*array.Uint64Builder).Append(uint64(j))
		}
	}
	w := store.NewWriter(conn, store.Options{Database: "typestest", Table: func(collector.Kind) string { return "t" }})
	defer w.Close()
	if err := w.Write(ctx, collector.Batch{Kind: "t", Record: b.NewRecordBatch()}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got string
	err := conn.QueryRow(ctx, `SELECT toString(tuple(count(), min(ts), sum(u8), sum(u16), sum(i32), sum(i64), sum(f64),
		countIf(ok), sum(length(ls)), uniqExact(lc), countIf(ns IS NULL), sum(nu), sum(length(au)), sum(arraySum(au)))) FROM typestest.t`).Scan(&got)
	if err != nil {
		t.Fatal(err)
	}
	// 10 rows; nulls at i = 0, 3, 6, 9; sum(length(au)) = 0+1+2 repeated.
	want := "(10,'2026-11-24 08:00:00.000000',45,45000,-45,49478023249920,22.5,5,70,3,4,27,9,3)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestWriterErrors(t *testing.T) {
	h, ctx := migrated(t)
	conn := h.Conn(t)
	t.Run("missing table is retried, then dropped", func(t *testing.T) {
		w := store.NewWriter(conn, store.Options{Retries: 1, RetryBackoff: time.Millisecond})
		defer w.Close()
		err := w.Write(ctx, collector.Batch{Kind: "nope", Record: execRecord(t, 5, time.Now(), "h")})
		if err == nil {
			err = w.Flush(ctx)
		}
		if err == nil {
			t.Fatal("no error for a missing table")
		}
		st := w.Stats()
		if st.Retries != 1 || st.DroppedRows != 5 || st.Rows != 0 {
			t.Errorf("stats = %+v, want 1 retry, 5 dropped, 0 rows", st)
		}
	})
	t.Run("unsupported type is not retried", func(t *testing.T) {
		sc := arrow.NewSchema([]arrow.Field{{Name: "ts", Type: arrow.FixedWidthTypes.Duration_s}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer b.Release()
		b.Field(0).(*array.DurationBuilder).Append(1)
		w := store.NewWriter(conn, store.Options{Retries: 3, RetryBackoff: time.Millisecond})
		defer w.Close()
		_ = w.Write(ctx, collector.Batch{Kind: collector.KindExec, Record: b.NewRecordBatch()})
		if err := w.Flush(ctx); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("err = %v, want not supported", err)
		}
		if st := w.Stats(); st.Retries != 0 {
			t.Errorf("retries = %d, want 0", st.Retries)
		}
	})
	t.Run("write after close", func(t *testing.T) {
		w := store.NewWriter(conn, store.Options{})
		w.Close()
		w.Close()
		if err := w.Write(ctx, collector.Batch{Kind: collector.KindExec, Record: execRecord(t, 1, time.Now(), "h")}); !errors.Is(err, store.ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	})
}

// lostAnswerConn commits the first INSERT and then reports it failed, as a
// connection that drops after the server committed would.
type lostAnswerConn struct {
	driver.Conn
	failed bool
}

func (c *lostAnswerConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := c.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		return nil, err
	}
	return &lostAnswerBatch{Batch: b, c: c}, nil
}

type lostAnswerBatch struct {
	driver.Batch
	c *lostAnswerConn
}

func (b *lostAnswerBatch) Send() error {
	if err := b.Batch.Send(); err != nil {
		return err
	}
	if !b.c.failed {
		b.c.failed = true
		return errors.New("connection reset after commit (simulated)")
	}
	return nil
}

func TestWriterRetryAfterLostAnswer(t *testing.T) {
	h, ctx := migrated(t)
	conn := &lostAnswerConn{Conn: h.Conn(t)}
	w := store.NewWriter(conn, store.Options{RetryBackoff: time.Millisecond})
	defer w.Close()
	in := make(chan collector.Batch, 1)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx, in) }()
	in <- collector.Batch{Kind: collector.KindExec, Record: execRecord(t, 321, time.Now(), "host-lost")}
	// Cancelling Run still inserts what is pending (within FlushTimeout).
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	if !conn.failed {
		t.Fatal("the simulated failure did not happen")
	}
	if st := w.Stats(); st.Retries != 1 || st.Rows != 321 || st.DroppedRows != 0 {
		t.Errorf("stats = %+v, want 1 retry, 321 rows, none dropped", st)
	}
	if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-lost'"); n != 321 {
		t.Errorf("rows = %d, want 321: the retry of a committed insert was stored again", n)
	}
}

// TestWriterSurvivesEngineCrash kills the engine in the middle of a stream
// of inserts: every row must arrive exactly once, whether the insert in
// flight at the crash had committed or not.
func TestWriterSurvivesEngineCrash(t *testing.T) {
	h, ctx := migrated(t)
	conn := h.Conn(t)
	w := store.NewWriter(conn, store.Options{MaxRows: 1000, Retries: 10, RetryBackoff: 100 * time.Millisecond})
	defer w.Close()
	in := make(chan collector.Batch)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	base := time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)
	const batches = 20
	for i := range batches {
		if i == batches/2 {
			if err := syscall.Kill(h.Supervisor.PID(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		in <- collector.Batch{Kind: collector.KindExec, Record: execRecord(t, 1000, base.Add(time.Duration(i)*time.Second), "host-crash")}
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	t.Logf("stats after a crash: %+v", st)
	if st.DroppedRows != 0 || st.Rows != batches*1000 {
		t.Errorf("stats = %+v, want %d rows and none dropped", st, batches*1000)
	}
	if n := count(t, h, "SELECT count() FROM vigil.exec_events WHERE host = 'host-crash'"); n != batches*1000 {
		t.Errorf("rows = %d, want %d", n, batches*1000)
	}
	if n := count(t, h, "SELECT count() FROM (SELECT ts, pid FROM vigil.exec_events WHERE host = 'host-crash' GROUP BY ts, pid HAVING count() > 1)"); n != 0 {
		t.Errorf("%d rows stored twice", n)
	}
}
