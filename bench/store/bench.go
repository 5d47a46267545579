// Package store measures how fast the pipeline's Writer gets Arrow batches
// into ClickHouse, against the row-by-row baseline (clickhouse-go
// batch.Append per row, as many Arrow ingesters do), in one run on the same
// rows, and reports the ratio.
package store

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	pstore "github.com/vigil-dev/vigil/pipeline/store"
)

// Options configures Run.
type Options struct {
	// Conn is the ClickHouse to measure, normally the embedded engine.
	Conn driver.Conn
	// Database for the benchmark table, dropped and recreated. Default
	// "vigil_bench".
	Database string
	// Rows to insert with each method in each round. Default 1,000,000.
	Rows int
	// BatchRows per Arrow record and per INSERT. Default 100,000.
	BatchRows int
	// Rounds alternates the two methods this many times, each on a fresh
	// table, and keeps each method's best round: on a shared machine the
	// best round is the closest to what the code can do. Default 3.
	Rounds int
	// Inserters for the columnar path (pipeline/store.Options.Inserters).
	// Default that of the store, 2. The baseline always inserts one at a time,
	// as row-by-row ingesters do.
	Inserters int
}

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = "vigil_bench"
	}
	if o.Rows <= 0 {
		o.Rows = 1_000_000
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 100_000
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	return o
}

// Result of one Run.
type Result struct {
	Rows     int
	Columns  int
	Rounds   int
	Columnar Measure // pipeline/store.Writer, column by column
	RowByRow Measure // batch.Append per row
}

// Measure is one method's figures in its best round.
type Measure struct {
	Elapsed    time.Duration
	RowsPerSec float64
	// ClientCPU is the CPU time this process spent (user+system, all
	// threads): the part of the cost the method itself controls, unlike the
	// server's, which is much the same for both.
	ClientCPU time.Duration
}

// Ratio is columnar rows/s over row-by-row rows/s.
func (r Result) Ratio() float64 {
	if r.RowByRow.RowsPerSec == 0 {
		return 0
	}
	return r.Columnar.RowsPerSec / r.RowByRow.RowsPerSec
}

// WriteTable prints the result as a short table.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "method\trows\tcolumns\tseconds\trows/s\tclient CPU ns/row\t\n")
	for _, m := range []struct {
		name string
		m    Measure
	}{{"columnar (store.Writer)", r.Columnar}, {"row by row (batch.Append)", r.RowByRow}} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.0f\t%.0f\t\n", m.name, r.Rows, r.Columns, m.m.Elapsed.Seconds(), m.m.RowsPerSec,
			float64(m.m.ClientCPU.Nanoseconds())/float64(max(r.Rows, 1)))
	}
	fmt.Fprintf(tw, "ratio (best of %d rounds)\t\t\t\t%.2fx\t\t\n", r.Rounds, r.Ratio())
	return tw.Flush()
}

func (r Result) String() string {
	var b strings.Builder
	_ = r.WriteTable(&b)
	return b.String()
}

const table = "bench_events"

// createTable has the shape and settings of the real event tables
// (pipeline/schema), with 12 columns.
const createTable = `CREATE TABLE %s.` + table + ` (
    ts         DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    host       LowCardinality(String),
    pid        UInt32,
    ppid       UInt32,
    uid        UInt32,
    gid        UInt32,
    comm       LowCardinality(String),
    filename   String,
    argv       Array(String),
    cgroup_id  UInt64,
    ret        Int32,
    latency_ns UInt64
) ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
SETTINGS non_replicated_deduplication_window = 1000`

var benchSchema = arrow.NewSchema([]arrow.Field{
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
	{Name: "ret", Type: arrow.PrimitiveTypes.Int32},
	{Name: "latency_ns", Type: arrow.PrimitiveTypes.Uint64},
}, nil)

// Run recreates the benchmark table, inserts the same generated rows once
// with each method and returns the rates. Generating the rows is not timed.
func Run(ctx context.Context, opts Options) (Result, error) {
	opts = opts.withDefaults()
	if opts.Conn == nil {
		return Result{}, fmt.Errorf("bench store: no connection")
	}
	recs, err := generate(opts.Rows, opts.BatchRows)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	res := Result{Rows: opts.Rows, Columns: len(benchSchema.Fields()), Rounds: opts.Rounds}
	methods := []struct {
		name string
		run  func() error
		best *Measure
	}{
		{"columnar", func() error { return columnar(ctx, opts, recs) }, &res.Columnar},
		{"row by row", func() error { return rowByRow(ctx, opts, recs) }, &res.RowByRow},
	}
	for range opts.Rounds {
		for _, m := range methods {
			if err := reset(ctx, opts); err != nil {
				return Result{}, err
			}
			got, err := measure(opts.Rows, m.run)
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", m.name, err)
			}
			if err := checkCount(ctx, opts); err != nil {
				return Result{}, fmt.Errorf("%s: %w", m.name, err)
			}
			if got.RowsPerSec > m.best.RowsPerSec {
				*m.best = got
			}
		}
	}
	return res, opts.Conn.Exec(ctx, "DROP DATABASE IF EXISTS "+opts.Database)
}

func measure(rows int, f func() error) (Measure, error) {
	cpu0 := cpuTime()
	start := time.Now()
	if err := f(); err != nil {
		return Measure{}, err
	}
	d := time.Since(start)
	return Measure{Elapsed: d, RowsPerSec: float64(rows) / d.Seconds(), ClientCPU: cpuTime() - cpu0}, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reset(ctx context.Context, opts Options) error {
	for _, q := range []string{
		"DROP DATABASE IF EXISTS " + opts.Database,
		"CREATE DATABASE " + opts.Database,
		fmt.Sprintf(createTable, opts.Database),
	} {
		if err := opts.Conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("bench store: prepare table: %w", err)
		}
	}
	return nil
}

func checkCount(ctx context.Context, opts Options) error {
	var n uint64
	if err := opts.Conn.QueryRow(ctx, "SELECT count() FROM "+opts.Database+"."+table).Scan(&n); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	if int(n) != opts.Rows {
		return fmt.Errorf("table has %d rows, inserted %d", n, opts.Rows)
	}
	return nil
}

// columnar is the pipeline's path: Writer.Run fed by a channel, one insert
// per BatchRows, Inserters in flight.
func columnar(ctx context.Context, opts Options, recs []arrow.RecordBatch) error {
	w := pstore.NewWriter(opts.Conn, pstore.Options{
		Database: opts.Database, MaxRows: opts.BatchRows, Retries: -1, Inserters: opts.Inserters,
		Table: func(collector.Kind) string { return table },
	})
	defer w.Close()
	in := make(chan collector.Batch, 4)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	for _, r := range recs {
		r.Retain() // the Writer releases its reference
		in <- collector.Batch{Kind: "bench", Record: r}
	}
	close(in)
	if err := <-done; err != nil {
		return err
	}
	if st := w.Stats(); st.DroppedRows > 0 {
		return fmt.Errorf("%d rows dropped", st.DroppedRows)
	}
	return nil
}

// rowByRow reads each row out of Arrow into Go values and appends it with
// batch.Append, one INSERT per record.
func rowByRow(ctx context.Context, opts Options, recs []arrow.RecordBatch) error {
	for _, r := range recs {
		batch, err := opts.Conn.PrepareBatch(ctx, "INSERT INTO "+opts.Database+"."+table)
		if err != nil {
			return err
		}
		ts := r.Column(0).(*array.Timestamp)
		host := r.Column(1).(*array.Dictionary)
		hostDict := host.Dictionary().(*array.String)
		pid := r.Column(2).(*array.Uint32)
		ppid := r.Column(3).(*array.Uint32)
		uid := r.Column(4).(*array.Uint32)
		gid := r.Column(5).(*array.Uint32)
		comm := r.Column(6).(*array.String)
		filename := r.Column(7).(*array.String)
		argv := r.Column(8).(*array.List)
		argvVals := argv.ListValues().(*array.String)
		cg := r.Column(9).(*array.Uint64)
		ret := r.Column(10).(*array.Int32)
		lat := r.Column(11).(*array.Uint64)
		for i := 0; i < int(r.NumRows()); i++ {
			beg, end := argv.ValueOffsets(i)
			args := make([]string, 0, end-beg)
			for j := beg; j < end; j++ {
				args = append(args, argvVals.Value(int(j)))
			}
			if err := batch.Append(
				time.Unix(0, int64(ts.Value(i))), hostDict.Value(host.GetValueIndex(i)),
				pid.Value(i), ppid.Value(i), uid.Value(i), gid.Value(i),
				comm.Value(i), filename.Value(i), args, cg.Value(i), ret.Value(i), lat.Value(i),
			); err != nil {
				_ = batch.Abort()
				return err
			}
		}
		if err := batch.Send(); err != nil {
			return err
		}
	}
	return nil
}

// generate makes rows shaped like exec events: a few hosts, tens of
// commands, hundreds of files, up to 3 arguments, increasing timestamps.
func generate(rows, per int) ([]arrow.RecordBatch, error) {
	hosts := []string{"web-1", "web-2", "db-1", "batch-7"}
	comms := make([]string, 48)
	for i := range comms {
		comms[i] = fmt.Sprintf("proc-%02d", i)
	}
	files := make([]string, 300)
	for i := range files {
		files[i] = fmt.Sprintf("/usr/lib/vigil/bench/%03d/bin/tool", i)
	}
	base := time.Now().Add(-time.Hour).UnixNano()
	var out []arrow.RecordBatch
	b := array.NewRecordBuilder(memory.DefaultAllocator, benchSchema)
	defer b.Release()
	for done := 0; done < rows; {
		n := min(per, rows-done)
		ts := b.Field(0).(*array.TimestampBuilder)
		host := b.Field(1).(*array.BinaryDictionaryBuilder)
		argv := b.Field(8).(*array.ListBuilder)
		args := argv.ValueBuilder().(*array.StringBuilder)
		for k := range n {
			i := done + k
			ts.Append(arrow.Timestamp(base + int64(i)*1000))
			if err := host.AppendString(hosts[i%len(hosts)]); err != nil {
				return nil, fmt.Errorf("generate: %w", err)
			}
			b.Field(2).(*array.Uint32Builder).Append(uint32(i))
			b.Field(3).(*array.Uint32Builder).Append(uint32(i / 7))
			b.Field(4).(*array.Uint32Builder).Append(uint32(i % 1000))
			b.Field(5).(*array.Uint32Builder).Append(uint32(i % 100))
			b.Field(6).(*array.StringBuilder).Append(comms[(i*7)%len(comms)])
			b.Field(7).(*array.StringBuilder).Append(files[(i*13)%len(files)])
			argv.Append(true)
			for j := range i % 4 {
				args.Append(comms[(i+j)%len(comms)])
			}
			b.Field(9).(*array.Uint64Builder).Append(uint64(i % 5000))
			b.Field(10).(*array.Int32Builder).Append(int32(i%3) - 1)
			b.Field(11).(*array.Uint64Builder).Append(uint64(i * 31 % 1_000_000))
		}
		out = append(out, b.NewRecordBatch())
		done += n
	}
	return out, nil
}
