// Package spool keeps the ClickHouse writer from losing data when ClickHouse
// is slow or down. Writer is a pipeline Consumer in front of store.Writer:
// it groups batches into inserts, writes each insert to an on-disk segment
// (Arrow IPC, fsync'd) together with its insert_deduplication_token, and a
// replay goroutine inserts the segments oldest first, deleting each once
// ClickHouse has it. While ClickHouse is down the segments pile up, up to
// MaxBytes; beyond that new inserts are dropped and counted per table.
//
// Exactly once: a batch is acknowledged when its segment is fsync'd. Every
// attempt at a segment's insert, before or after a crash of vigil or of
// ClickHouse, carries the token stored in the segment, so an insert that
// reached ClickHouse but was not yet deleted from the spool is deduplicated
// by ClickHouse (non_replicated_deduplication_window, set by pipeline/schema,
// must exceed the inserts made to a table while a segment waits for replay).
// A segment is deleted only after ClickHouse acknowledged its insert.
//
// The spool is written ahead of every insert, not only on failure: one
// sequential write and fsync per insert (one per MaxRows rows or MaxDelay)
// buys a single, crash-proof acknowledgement point and keeps the order
// "spooled data before new data" without a second code path.
package spool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/store"
)

// Inserter inserts a set of records with a given deduplication token, once,
// without taking ownership of them. *store.Writer implements it.
type Inserter interface {
	InsertWithToken(ctx context.Context, kind collector.Kind, token string, recs []arrow.RecordBatch) error
}

var _ Inserter = (*store.Writer)(nil)

// Defaults for Options.
const (
	DefaultMaxBytes      = 1 << 30
	DefaultMaxRows       = 100_000
	DefaultMaxDelay      = time.Second
	DefaultRetryBackoff  = 200 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultCloseTimeout  = 3 * time.Second
	DefaultInsertTimeout = 30 * time.Second
)

// Options configures a Writer. Dir is required; zero values mean defaults.
type Options struct {
	// Dir holds the segments. It is created if missing. One Writer per Dir.
	Dir string
	// MaxBytes bounds the segments on disk. Default 1 GiB.
	MaxBytes int64
	// MaxRows pending for one kind make an insert (a segment). Default 100,000.
	MaxRows int
	// MaxDelay is the longest a batch waits in memory before it is spooled
	// (acknowledged). Default 1 s.
	MaxDelay time.Duration
	// RetryBackoff is the first pause after a failed insert; it doubles up
	// to MaxBackoff. Defaults 200 ms and 5 s.
	RetryBackoff, MaxBackoff time.Duration
	// CloseTimeout bounds how long Run, once its input is closed, keeps
	// replaying the spool before it returns; what is left stays on disk
	// for the next start. Default 3 s.
	CloseTimeout time.Duration
	// InsertTimeout bounds one insert, so that a ClickHouse that hangs
	// instead of failing is retried too. Default 30 s.
	InsertTimeout time.Duration
	// TokenPrefix starts every new deduplication token. Default: random per
	// Writer, so that a restarted vigil never reuses an earlier token.
	TokenPrefix string
	// Table names a kind's table in Stats and metrics. Default store.TableFor.
	Table func(collector.Kind) string
	// Logger. Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives vigil_spool_* metrics.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = DefaultInsertTimeout
	}
	if o.TokenPrefix == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.TokenPrefix = "spool-" + hex.EncodeToString(b[:])
	}
	if o.Table == nil {
		o.Table = store.TableFor
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Stats is a snapshot of a Writer's counters.
type Stats struct {
	// SpooledRows were fsync'd into segments: acknowledged.
	SpooledRows uint64 `json:"spooled_rows"`
	// InsertedRows were inserted into ClickHouse from segments (a replay
	// deduplicated by ClickHouse counts again: it cannot be told apart).
	InsertedRows uint64 `json:"inserted_rows"`
	// InsertFailures counts failed insert attempts (each is retried).
	InsertFailures uint64 `json:"insert_failures"`
	// Segments and Bytes are on disk now, waiting for ClickHouse.
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
	MaxBytes int64 `json:"max_bytes"`
	// Waiting is how long the oldest segment has waited since its first
	// row reached the spool: 0 when ClickHouse has everything spooled.
	// Rows still batching in memory (at most MaxDelay) are not counted.
	Waiting time.Duration `json:"waiting_ns"`
	// DroppedRows per table: rows refused because the spool was full or
	// could not be written.
	DroppedRows map[string]uint64 `json:"dropped_rows"`
	// RejectedRows could never be inserted (columns that do not convert);
	// their segments are kept in Dir/rejected.
	RejectedRows uint64 `json:"rejected_rows"`
	// AbortedRows were in memory, not yet spooled, when Run's ctx was
	// cancelled: never acknowledged, lost.
	AbortedRows uint64 `json:"aborted_rows"`
}

// Writer is a pipeline Consumer that spools inserts to disk and replays them
// into ClickHouse. Create it with NewWriter; call Run once.
type Writer struct {
	ins  Inserter
	opts Options
	// lock is the flock'd Dir/LOCK file, held from NewWriter to Close.
	lockMu sync.Mutex // guards lock
	lock   *os.File

	// pending holds batches per kind not yet spooled, in arrival order;
	// only Run's goroutine touches it (and seq).
	pending map[collector.Kind]*pendingKind
	seq     uint64 // last segment number; Run's goroutine

	mu    sync.Mutex // guards segs and bytes
	segs  []*segment // on disk, oldest first
	bytes int64      // sum of segs' sizes

	// wake has room for one signal: "a segment was added". Non-blocking send.
	wake chan struct{}

	dropMu  sync.Mutex // guards dropped
	dropped map[string]uint64
	dropVec *prometheus.CounterVec

	tokenSeq                                       atomic.Uint64
	spooled, inserted, failures, rejected, aborted atomic.Uint64
}

type pendingKind struct {
	recs   []arrow.RecordBatch
	rows   int
	oldest time.Time
}

// NewWriter opens (creating if needed) the spool in opts.Dir over ins,
// locks it (ErrLocked if another Writer has it) and lists the segments a
// previous run left; Run replays them before anything new. It starts
// nothing. Run releases the lock when it returns; Close releases it for a
// Writer that never runs.
func NewWriter(ins Inserter, opts Options) (*Writer, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	segs, err := scanDir(opts.Dir)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("spool: scan %s: %w", opts.Dir, err)
	}
	w := &Writer{ins: ins, opts: opts, lock: lock, pending: map[collector.Kind]*pendingKind{},
		segs: segs, wake: make(chan struct{}, 1), dropped: map[string]uint64{}}
	for _, s := range segs {
		w.bytes += s.size
		w.seq = max(w.seq, s.seq)
	}
	if len(segs) > 0 {
		opts.Logger.Info("spool: replaying segments left by an earlier run", "dir", opts.Dir, "segments", len(segs), "bytes", w.bytes)
	}
	if opts.Registerer != nil {
		if err := w.register(opts.Registerer); err != nil {
			opts.Logger.Warn("register spool metrics", "err", err)
		}
	}
	return w, nil
}

func (w *Writer) register(reg prometheus.Registerer) error {
	w.dropVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_spool_dropped_rows_total",
		Help: "Rows refused by the spool (full or unwritable), per table."}, []string{"table"})
	cs := []prometheus.Collector{w.dropVec}
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"vigil_spool_spooled_rows_total", "Rows fsync'd into spool segments (acknowledged).", &w.spooled},
		{"vigil_spool_inserted_rows_total", "Rows inserted into ClickHouse from the spool.", &w.inserted},
		{"vigil_spool_insert_failures_total", "Failed inserts from the spool (retried).", &w.failures},
		{"vigil_spool_rejected_rows_total", "Rows ClickHouse can never accept, kept in the rejected folder.", &w.rejected},
		{"vigil_spool_aborted_rows_total", "Rows in memory, not yet spooled, lost at an aborted shutdown.", &w.aborted},
	} {
		v := c.v
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(v.Load()) }))
	}
	cs = append(cs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_spool_bytes", Help: "Bytes of segments waiting for ClickHouse."},
			func() float64 { return float64(w.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_spool_segments", Help: "Segments waiting for ClickHouse."},
			func() float64 { return float64(w.Stats().Segments) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_spool_waiting_seconds",
			Help: "How long the oldest segment waiting for ClickHouse has waited; 0 when none waits."},
			func() float64 { return w.Stats().Waiting.Seconds() }))
	var errs []error
	for _, c := range cs {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// Stats returns the counters so far. It may be called from any goroutine.
func (w *Writer) Stats() Stats {
	s := Stats{SpooledRows: w.spooled.Load(), InsertedRows: w.inserted.Load(), InsertFailures: w.failures.Load(),
		RejectedRows: w.rejected.Load(), AbortedRows: w.aborted.Load(), MaxBytes: w.opts.MaxBytes,
		DroppedRows: map[string]uint64{}}
	w.mu.Lock()
	s.Segments, s.Bytes = len(w.segs), w.bytes
	if len(w.segs) > 0 {
		s.Waiting = max(0, time.Since(w.segs[0].since))
	}
	w.mu.Unlock()
	w.dropMu.Lock()
	for k, v := range w.dropped {
		s.DroppedRows[k] = v
	}
	w.dropMu.Unlock()
	return s
}

// Run consumes in until it is closed or ctx is cancelled, and replays the
// spool into ClickHouse meanwhile, oldest segment first, starting with what
// an earlier run left.
//
// When in is closed, Run spools what it holds in memory (so everything it
// received is acknowledged), replays for at most CloseTimeout and returns
// nil; unreplayed segments stay in Dir for the next start. When ctx is
// cancelled Run returns ctx's error at once, as a crash would: batches not
// yet spooled are lost (counted as AbortedRows), an insert in flight is
// abandoned and its segment replayed, with the same token, next time.
//
// Run never blocks on ClickHouse: inserts happen in a replay goroutine that
// Run starts and waits for.
func (w *Writer) Run(ctx context.Context, in <-chan collector.Batch) error {
	defer w.Close()
	replayCtx, cancelReplay := context.WithCancel(ctx)
	defer cancelReplay()
	closing := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { w.replay(replayCtx, closing) })

	tick := time.NewTicker(max(w.opts.MaxDelay/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				w.spoolDue(time.Time{})
				close(closing)
				t := time.AfterFunc(w.opts.CloseTimeout, cancelReplay)
				wg.Wait()
				t.Stop()
				if n := w.Stats().Segments; n > 0 {
					w.opts.Logger.Warn("spool: segments left for the next start", "segments", n, "dir", w.opts.Dir)
				}
				return nil
			}
			w.add(b)
		case <-tick.C:
			w.spoolDue(time.Now().Add(-w.opts.MaxDelay))
		case <-ctx.Done():
			cancelReplay()
			wg.Wait()
			for _, p := range w.pending {
				w.aborted.Add(uint64(p.rows))
				release(p.recs)
				p.recs, p.rows = nil, 0
			}
			return ctx.Err()
		}
	}
}

// Close releases the spool directory's lock. It is safe to call more than
// once; Run calls it when it returns. It does not stop Run.
func (w *Writer) Close() error {
	w.lockMu.Lock()
	defer w.lockMu.Unlock()
	if w.lock == nil {
		return nil
	}
	err := w.lock.Close()
	w.lock = nil
	return err
}

// add takes ownership of b and spools the kind's pending rows when due.
func (w *Writer) add(b collector.Batch) {
	if b.Record == nil {
		return
	}
	if b.Record.NumRows() == 0 {
		b.Record.Release()
		return
	}
	p := w.pending[b.Kind]
	if p == nil {
		p = &pendingKind{}
		w.pending[b.Kind] = p
	}
	// One segment is one INSERT, which has one column list.
	if len(p.recs) > 0 && !p.recs[0].Schema().Equal(b.Record.Schema()) {
		w.spool(b.Kind, p)
	}
	if len(p.recs) == 0 {
		p.oldest = time.Now()
	}
	p.recs = append(p.recs, b.Record)
	p.rows += int(b.Record.NumRows())
	if p.rows >= w.opts.MaxRows {
		w.spool(b.Kind, p)
	}
}

// spoolDue spools every kind whose oldest batch arrived before cutoff; the
// zero cutoff means all.
func (w *Writer) spoolDue(cutoff time.Time) {
	for kind, p := range w.pending {
		if len(p.recs) > 0 && (cutoff.IsZero() || p.oldest.Before(cutoff)) {
			w.spool(kind, p)
		}
	}
}

// spool writes a kind's pending rows as one segment and wakes the replay
// goroutine, or drops them (counted) if the spool is full or unwritable.
func (w *Writer) spool(kind collector.Kind, p *pendingKind) {
	recs, rows, since := p.recs, p.rows, p.oldest
	p.recs, p.rows = nil, 0
	defer release(recs)
	token := w.opts.TokenPrefix + "-" + string(kind) + "-" + strconv.FormatUint(w.tokenSeq.Add(1), 10)
	data, err := encodeSegment(kind, token, recs)
	if err != nil {
		w.drop(kind, rows, "encode", err)
		return
	}
	w.mu.Lock()
	full := w.bytes+int64(len(data)) > w.opts.MaxBytes
	w.mu.Unlock()
	if full {
		w.drop(kind, rows, "spool full", nil)
		return
	}
	w.seq++
	name := segName(w.seq)
	if err := writeFile(w.opts.Dir, name, data); err != nil {
		w.drop(kind, rows, "write", err)
		return
	}
	w.spooled.Add(uint64(rows))
	w.mu.Lock()
	w.segs = append(w.segs, &segment{seq: w.seq, path: filepath.Join(w.opts.Dir, name), size: int64(len(data)),
		rows: rows, kind: kind, token: token, since: since})
	w.bytes += int64(len(data))
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Writer) drop(kind collector.Kind, rows int, why string, err error) {
	table := w.opts.Table(kind)
	w.dropMu.Lock()
	first := w.dropped[table] == 0
	w.dropped[table] += uint64(rows)
	w.dropMu.Unlock()
	if w.dropVec != nil {
		w.dropVec.WithLabelValues(table).Add(float64(rows))
	}
	// Log the first drop of a table loudly; later ones are in the counters.
	if first || err != nil {
		w.opts.Logger.Error("spool: dropping rows", "table", table, "rows", rows, "reason", why, "err", err)
	}
}

// oldest returns the first segment waiting for replay.
func (w *Writer) oldest() *segment {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.segs) == 0 {
		return nil
	}
	return w.segs[0]
}

// done removes the oldest segment (s) from the queue and from disk.
func (w *Writer) done(s *segment) error {
	err := os.Remove(s.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	w.mu.Lock()
	w.segs = w.segs[1:]
	w.bytes -= s.size
	w.mu.Unlock()
	return err
}

// replay inserts segments oldest first until ctx is cancelled, or closing is
// closed and the spool is empty.
func (w *Writer) replay(ctx context.Context, closing <-chan struct{}) {
	backoff := w.opts.RetryBackoff
	failing := false
	for ctx.Err() == nil {
		s := w.oldest()
		if s == nil {
			select {
			case <-closing:
				// Run spools its last rows before it closes closing, so a
				// segment may have arrived since oldest looked (its wake
				// and closing both ready, and select picked closing).
				if w.oldest() != nil {
					continue
				}
				return
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			continue
		}
		err := w.insert(ctx, s)
		switch {
		case err == nil:
			if failing {
				w.opts.Logger.Info("spool: ClickHouse accepts inserts again", "segments", w.Stats().Segments)
			}
			failing, backoff = false, w.opts.RetryBackoff
			if err := w.done(s); err != nil {
				w.opts.Logger.Warn("spool: remove replayed segment", "path", s.path, "err", err)
			}
		case ctx.Err() != nil:
			return
		case store.IsPermanent(err) || errors.Is(err, errCorrupt):
			w.reject(s, err)
		default:
			w.failures.Add(1)
			if !failing {
				w.opts.Logger.Warn("spool: insert failed; spooling until ClickHouse is back", "segment", filepath.Base(s.path), "err", err)
			}
			failing = true
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, w.opts.MaxBackoff)
		}
	}
}

// errCorrupt marks a segment that cannot be read back.
var errCorrupt = errors.New("corrupt spool segment")

// insert reads segment s back and inserts it with its own token.
func (w *Writer) insert(ctx context.Context, s *segment) error {
	kind, token, recs, err := readSegment(s.path)
	if err != nil {
		return fmt.Errorf("%w %s: %w", errCorrupt, s.path, err)
	}
	defer release(recs)
	rows := 0
	for _, r := range recs {
		rows += int(r.NumRows())
	}
	s.rows = rows
	ctx, cancel := context.WithTimeout(ctx, w.opts.InsertTimeout)
	defer cancel()
	if err := w.ins.InsertWithToken(ctx, kind, token, recs); err != nil {
		return err
	}
	w.inserted.Add(uint64(rows))
	return nil
}

// reject moves a segment that can never be inserted out of the queue, into
// Dir/rejected, where an operator can look at it.
func (w *Writer) reject(s *segment, cause error) {
	dir := filepath.Join(w.opts.Dir, rejectDir)
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = os.Rename(s.path, filepath.Join(dir, filepath.Base(s.path)))
	}
	w.rejected.Add(uint64(s.rows))
	w.mu.Lock()
	w.segs = w.segs[1:]
	w.bytes -= s.size
	w.mu.Unlock()
	w.opts.Logger.Error("spool: segment rejected; moved aside", "segment", filepath.Base(s.path), "rows", s.rows, "cause", cause, "err", err)
}
