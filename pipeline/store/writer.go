// Package store writes the collector's Arrow batches into ClickHouse.
//
// The Writer accumulates batches per table and inserts them column by column:
// every Arrow array becomes one typed-slice Append on the matching batch
// column, never a row loop. An insert happens when a table has MaxRows rows
// pending, or its oldest pending batch is MaxDelay old (Run only), or on
// Flush. Each insert carries an insert_deduplication_token, and a failed
// insert is retried with the same token, so ClickHouse stores it once even
// if the first attempt did commit and only the answer was lost (tables need
// non_replicated_deduplication_window, which pipeline/schema sets).
//
// Two ways to use it, both from a single goroutine:
//   - Run(ctx, in) owns the writer: it consumes a channel of batches, also
//     flushes by time, and keeps Inserters INSERTs in flight. The producer
//     should send without blocking and drop or count what does not fit, so a
//     slow ClickHouse never stalls the kernel reader.
//   - Write and Flush insert in the calling goroutine, one at a time, for
//     callers that manage time themselves.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-dev/vigil/collector"
)

// Defaults for Options.
const (
	DefaultDatabase     = "vigil"
	DefaultMaxRows      = 100_000
	DefaultMaxDelay     = time.Second
	DefaultRetries      = 5
	DefaultRetryBackoff = 200 * time.Millisecond
	DefaultFlushTimeout = 10 * time.Second
	DefaultInserters    = 2
)

// Options configures a Writer. The zero value means defaults.
type Options struct {
	// Database holding the tables. Default "vigil".
	Database string
	// MaxRows pending in one table trigger its insert. Default 100,000.
	MaxRows int
	// MaxDelay is the longest a batch waits for its insert under Run.
	// Default 1 s.
	MaxDelay time.Duration
	// Retries of a failed insert, with the same deduplication token.
	// Default 5 (about 6 s of backoff, enough for the supervisor to
	// restart a crashed embedded engine); negative means none.
	Retries int
	// RetryBackoff is the first pause before a retry; it doubles. Default 200 ms.
	RetryBackoff time.Duration
	// Inserters is how many INSERTs Run keeps in flight. Default 2: one
	// being converted while ClickHouse writes the other.
	Inserters int
	// FlushTimeout bounds the final flush when Run's ctx is cancelled.
	// Default 10 s.
	FlushTimeout time.Duration
	// TokenPrefix starts every deduplication token. Default: random per
	// Writer, so that a restarted writer never reuses an earlier one's
	// tokens (that would silently drop its inserts as duplicates).
	TokenPrefix string
	// Table maps a kind to its table. Default TableFor.
	Table func(collector.Kind) string
	// Logger. Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives the Stats as vigil_store_* counters.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.Inserters <= 0 {
		o.Inserters = DefaultInserters
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.TokenPrefix == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.TokenPrefix = hex.EncodeToString(b[:])
	}
	if o.Table == nil {
		o.Table = TableFor
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// aggregatedKinds are kinds whose table is named like the kind: the
// collector aggregates them in the kernel, they are not events.
var aggregatedKinds = map[collector.Kind]bool{"syscall_counts": true, "runq_latency": true, "metrics": true}

// TableFor is the default table of a kind: Kind+"_events", except for the
// aggregated kinds syscall_counts and runq_latency (and metrics), whose table
// is the kind itself.
func TableFor(k collector.Kind) string {
	if aggregatedKinds[k] {
		return string(k)
	}
	return string(k) + "_events"
}

// Stats counts what a Writer did; read it with Writer.Stats.
type Stats struct {
	Inserts     uint64 // successful INSERTs
	Rows        uint64 // rows inserted
	Retries     uint64 // insert attempts after a failure
	DroppedRows uint64 // rows given up on after all retries
}

// Writer inserts Arrow batches into ClickHouse. It is not safe for
// concurrent use: one goroutine calls Write/Flush, or Run.
type Writer struct {
	conn driver.Conn
	opts Options
	// pending holds the batches waiting for their insert, per table, in
	// arrival order. The Writer owns one reference to each record. Only the
	// goroutine using the Writer touches it.
	pending map[string]*pendingTable
	// seq numbers inserts for the deduplication tokens; same owner.
	seq    uint64
	closed bool

	// The counters are atomic: Run's inserter goroutines update them.
	inserts, rows, retries, dropped atomic.Uint64
	// latency is safe for concurrent use; registered with Options.Registerer.
	latency prometheus.Histogram
}

type pendingTable struct {
	recs   []arrow.RecordBatch
	rows   int
	oldest time.Time // arrival of recs[0]
}

// job is one INSERT: rows of one table with one schema, and the token that
// every attempt of it carries.
type job struct {
	table string
	token string
	recs  []arrow.RecordBatch
	rows  int
}

// NewWriter returns a Writer on conn. It starts nothing.
func NewWriter(conn driver.Conn, opts Options) *Writer {
	w := &Writer{conn: conn, opts: opts.withDefaults(), pending: map[string]*pendingTable{},
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_store_insert_seconds",
			Help:    "Time from preparing an INSERT to ClickHouse acknowledging it, successful inserts only.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		})}
	if w.opts.Registerer != nil {
		if err := w.register(w.opts.Registerer); err != nil {
			w.opts.Logger.Warn("register store metrics", "err", err)
		}
	}
	return w
}

func (w *Writer) register(reg prometheus.Registerer) error {
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"vigil_store_inserts_total", "INSERTs into ClickHouse that succeeded.", &w.inserts},
		{"vigil_store_rows_total", "Rows inserted into ClickHouse.", &w.rows},
		{"vigil_store_retries_total", "INSERT attempts repeated after a failure (same deduplication token).", &w.retries},
		{"vigil_store_dropped_rows_total", "Rows given up on after all retries.", &w.dropped},
	} {
		v := c.v
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(v.Load()) })); err != nil {
			return err
		}
	}
	return reg.Register(w.latency)
}

// Stats returns the counters so far. It may be called from any goroutine.
func (w *Writer) Stats() Stats {
	return Stats{Inserts: w.inserts.Load(), Rows: w.rows.Load(), Retries: w.retries.Load(), DroppedRows: w.dropped.Load()}
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("store writer closed")

// add queues b and returns the inserts that became due: what was pending
// under another schema (one INSERT has one column list), and the table's
// rows once they reach MaxRows.
func (w *Writer) add(b collector.Batch) []job {
	table := w.opts.Table(b.Kind)
	p := w.pending[table]
	if p == nil {
		p = &pendingTable{}
		w.pending[table] = p
	}
	var due []job
	if len(p.recs) > 0 && !p.recs[0].Schema().Equal(b.Record.Schema()) {
		due = append(due, w.take(table, p))
	}
	if len(p.recs) == 0 {
		p.oldest = time.Now()
	}
	p.recs = append(p.recs, b.Record)
	p.rows += int(b.Record.NumRows())
	if p.rows >= w.opts.MaxRows {
		due = append(due, w.take(table, p))
	}
	return due
}

// take detaches a table's pending rows as a job with a fresh token.
func (w *Writer) take(table string, p *pendingTable) job {
	w.seq++
	j := job{table: table, recs: p.recs, rows: p.rows,
		token: w.opts.TokenPrefix + "-" + table + "-" + strconv.FormatUint(w.seq, 10)}
	p.recs, p.rows = nil, 0
	return j
}

// due returns the jobs of the tables whose oldest batch arrived before
// cutoff; the zero cutoff means all.
func (w *Writer) due(cutoff time.Time) []job {
	var out []job
	for table, p := range w.pending {
		if len(p.recs) == 0 || (!cutoff.IsZero() && !p.oldest.Before(cutoff)) {
			continue
		}
		out = append(out, w.take(table, p))
	}
	return out
}

// Write takes ownership of b.Record (it is released once inserted or
// dropped) and inserts its table's pending rows, in this goroutine, if they
// reach MaxRows. An error means those rows were dropped after all retries.
func (w *Writer) Write(ctx context.Context, b collector.Batch) error {
	if b.Record == nil {
		return nil
	}
	if w.closed {
		b.Record.Release()
		return ErrClosed
	}
	if b.Record.NumRows() == 0 {
		b.Record.Release()
		return nil
	}
	var errs []error
	for _, j := range w.add(b) {
		errs = append(errs, w.run(ctx, j))
	}
	return errors.Join(errs...)
}

// Flush inserts everything pending, in this goroutine.
func (w *Writer) Flush(ctx context.Context) error {
	var errs []error
	for _, j := range w.due(time.Time{}) {
		errs = append(errs, w.run(ctx, j))
	}
	return errors.Join(errs...)
}

// Run consumes in until it is closed (then inserts what is pending and
// returns nil) or ctx is cancelled (then inserts what is pending, and what
// was queued in in at that moment, within FlushTimeout and returns ctx's
// error). Besides MaxRows, a table is inserted
// when its oldest batch is MaxDelay old.
//
// Run inserts with Inserters goroutines that it starts and waits for, so
// that converting the next batch overlaps ClickHouse writing the previous
// one. When all are busy Run stops reading in: the producer sees a full
// channel and must drop or count, not block. Insert errors are logged and
// counted in Stats, not returned: the rows are dropped and Run goes on, so a
// ClickHouse outage costs data, not the pipeline.
func (w *Writer) Run(ctx context.Context, in <-chan collector.Batch) error {
	// Inserts outlive ctx by up to FlushTimeout so the final flush can land.
	insCtx, cancelIns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelIns()
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range w.opts.Inserters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				_ = w.logErr(w.run(insCtx, j))
			}
		}()
	}
	// Inserters always finish a job (insCtx bounds them), so these sends
	// cannot block forever.
	send := func(js []job) {
		for _, j := range js {
			jobs <- j
		}
	}
	stop := func() {
		close(jobs)
		wg.Wait()
	}
	tick := time.NewTicker(max(w.opts.MaxDelay/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				send(w.due(time.Time{}))
				stop()
				return nil
			}
			if b.Record == nil {
				continue
			}
			if w.closed || b.Record.NumRows() == 0 {
				b.Record.Release()
				continue
			}
			send(w.add(b))
		case <-tick.C:
			send(w.due(time.Now().Add(-w.opts.MaxDelay)))
		case <-ctx.Done():
			t := time.AfterFunc(w.opts.FlushTimeout, cancelIns)
			// Batches already queued are in memory and were accepted: keep
			// them. Only what is queued now, so a producer that goes on
			// sending cannot hold Run.
			for range len(in) {
				b, ok := <-in
				if !ok {
					break
				}
				if b.Record == nil {
					continue
				}
				if w.closed || b.Record.NumRows() == 0 {
					b.Record.Release()
					continue
				}
				send(w.add(b))
			}
			send(w.due(time.Time{}))
			stop()
			t.Stop()
			return ctx.Err()
		}
	}
}

func (w *Writer) logErr(err error) error {
	if err != nil {
		w.opts.Logger.Error("insert into clickhouse", "err", err)
	}
	return err
}

// Close releases pending records without inserting them (Flush first, or
// let Run finish, to keep them). It is safe to call more than once, but not
// while Run is running.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	for _, p := range w.pending {
		for _, r := range p.recs {
			r.Release()
		}
		p.recs, p.rows = nil, 0
	}
	return nil
}

// run inserts j, retrying with the same token, then releases its records
// whatever the outcome.
func (w *Writer) run(ctx context.Context, j job) error {
	defer func() {
		for _, r := range j.recs {
			r.Release()
		}
	}()
	backoff := w.opts.RetryBackoff
	var err error
	for attempt := 0; ; attempt++ {
		err = w.insert(ctx, j.table, j.token, j.recs)
		if err == nil {
			w.inserts.Add(1)
			w.rows.Add(uint64(j.rows))
			return nil
		}
		var ce *convertError
		if attempt >= w.opts.Retries || errors.As(err, &ce) || ctx.Err() != nil {
			break
		}
		w.retries.Add(1)
		w.opts.Logger.Warn("insert failed; retrying with the same token", "table", j.table, "rows", j.rows, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	w.dropped.Add(uint64(j.rows))
	return fmt.Errorf("insert %d rows into %s: %w", j.rows, j.table, err)
}

// insert sends recs (same schema) as one INSERT with an explicit column list
// taken from the Arrow schema, so that column order in the table never
// matters and a missing column fails loudly.
func (w *Writer) insert(ctx context.Context, table, token string, recs []arrow.RecordBatch) error {
	start := time.Now()
	schema := recs[0].Schema()
	cols := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		cols[i] = quoteIdent(f.Name)
	}
	query := "INSERT INTO " + quoteIdent(w.opts.Database) + "." + quoteIdent(table) + " (" + strings.Join(cols, ", ") + ")"
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	batch, err := w.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer batch.Close()
	types := batch.Columns()
	if len(types) != len(cols) {
		return &convertError{fmt.Errorf("table has %d of the %d columns", len(types), len(cols))}
	}
	for i := range cols {
		chType := string(types[i].Type())
		for _, r := range recs {
			if err := appendColumn(batch.Column(i), chType, r.Column(i)); err != nil {
				return &convertError{fmt.Errorf("column %s (%s): %w", schema.Field(i).Name, chType, err)}
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	w.latency.Observe(time.Since(start).Seconds())
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
