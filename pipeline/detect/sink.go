package detect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-dev/vigil/models"
	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/incidents"
	"github.com/vigil-dev/vigil/query/summary"
	"github.com/vigil-dev/vigil/ui"
)

// Publisher is the live hub as the sink sees it; Publish must not block.
type Publisher interface {
	Publish(msgType string, v any)
}

// SinkOptions configures a Sink. Every dependency is optional: without a
// Conn nothing is stored (and nothing summarized), without a Publisher
// nothing is published, without a Summarizer incidents get no summary.
type SinkOptions struct {
	Conn       driver.Conn
	Database   string // default "vigil"
	Publisher  Publisher
	Summarizer *summary.Summarizer
	// Reader reads fact sheets for summaries. Default: chread over Conn.
	Reader chread.Runner
	Build  summary.BuildOptions

	// FlushInterval is how often buffered rows are inserted. Default 1s.
	FlushInterval time.Duration
	// MaxRows triggers an early flush of metrics. Default 20,000.
	MaxRows int
	// Queue bounds the items (a step's points, an anomaly, an incident
	// version) waiting for the writer; beyond it they are dropped and
	// counted. Default 4096.
	Queue int
	// InsertTimeout bounds one insert. Default 10s.
	InsertTimeout time.Duration
	// MaxHeldRows bounds the rows kept, in memory, for a ClickHouse that
	// refuses inserts; beyond it the oldest inserts are dropped and
	// counted. Default 200,000 (about half an hour of a busy host's
	// metrics at a 10 s step).
	MaxHeldRows int
	// HoldFile, if set, is where the rows held for a ClickHouse that
	// refuses them are kept on disk, from the first refused insert until
	// they are stored, and where NewSink reads them back from, so that
	// neither a stop nor a crash during an outage loses a detection.
	// Without it they are in memory only, and dropped and counted at Close.
	HoldFile string
	// MaxPendingSummaries bounds incidents waiting for a summary. Default 256.
	MaxPendingSummaries int
	// SummaryInterval is the least time between two summaries of one
	// incident: updates in between are coalesced. Default 30s.
	SummaryInterval time.Duration
	// SummaryDelay is how long a new incident waits for its first
	// summary, so that the events that raised it (buffered by the
	// collector and the writers for up to about a second) are in ClickHouse
	// when its fact sheet is read. Default 3s; negative: no wait.
	SummaryDelay time.Duration
	// SummaryTimeout bounds one summary (fact sheet plus LLM). Default 2m.
	SummaryTimeout time.Duration
	// MaxIncidents bounds the incidents whose latest version is kept in
	// memory (to carry the summary into later versions). Default 10,000.
	MaxIncidents int
	Logger       *slog.Logger
}

func (o SinkOptions) withDefaults() SinkOptions {
	if o.Database == "" {
		o.Database = "vigil"
	}
	if o.Build.Database == "" {
		o.Build.Database = o.Database
	}
	if o.Reader == nil && o.Conn != nil {
		o.Reader = chread.NewClickHouse(o.Conn, chread.Limits{})
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 20_000
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = 10 * time.Second
	}
	if o.MaxPendingSummaries <= 0 {
		o.MaxPendingSummaries = 256
	}
	if o.SummaryInterval <= 0 {
		o.SummaryInterval = 30 * time.Second
	}
	if o.MaxHeldRows <= 0 {
		o.MaxHeldRows = 200_000
	}
	if o.SummaryDelay == 0 {
		o.SummaryDelay = 3 * time.Second
	}
	if o.SummaryTimeout <= 0 {
		o.SummaryTimeout = 2 * time.Minute
	}
	if o.MaxIncidents <= 0 {
		o.MaxIncidents = 10_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Sink is the Detector's Output over ClickHouse, the live hub and the
// summarizer. It owns two goroutines: the writer, which batches rows and
// inserts them, and the summary worker, which summarizes incidents after
// their rows are stored. Both stop on Close.
type Sink struct {
	o     SinkOptions
	queue chan item

	mu sync.Mutex
	// incs holds each incident's latest version, so later versions keep
	// the summary and summary versions keep the correlator's fields;
	// guarded by mu.
	incs map[string]*incidentRow
	// pending maps incidents waiting for a summary to the earliest time
	// the worker may start it; guarded by mu.
	pending map[string]time.Time
	// lastSummary is when each incident was last summarized; guarded by mu.
	lastSummary map[string]time.Time
	// closed is set by Close; later outputs are dropped. Guarded by mu.
	closed bool

	wake       chan struct{} // cap 1: summary work pending
	stop       chan struct{} // closed by Close
	cancelWork context.CancelFunc
	workCtx    context.Context
	wg         sync.WaitGroup
	closeOnce  sync.Once

	dropped, insertErrors, summaries, droppedRows atomic.Uint64
	heldRows                                      atomic.Int64

	// held are the inserts not made yet, oldest first, with what the
	// writer does about a ClickHouse that refuses them; only writeLoop
	// (and NewSink, before it starts) touches them.
	held []heldInsert
	// holdLog is HoldFile open for appending while it is kept, from the
	// first refused insert until nothing is held.
	holdLog *os.File
	// holdOnDisk: HoldFile may exist, to be removed once nothing is held.
	holdOnDisk  bool
	retryAt     time.Time
	backoff     time.Duration
	tokenPrefix string
	seq         uint64
}

// heldInsert is one INSERT the writer has sealed: its rows, and the
// deduplication token every attempt carries, so that rows ClickHouse took
// before an error are not stored twice by the retry. It is plain data, so
// that what is still held when vigil stops can be kept on disk
// (SinkOptions.HoldFile); table says which of the row fields it carries.
type heldInsert struct {
	table, token string
	rows         int
	metrics      metricCols
	anomalies    []incidents.AnomalyRow
	incidents    []*incidentRow
	summarize    []string // incidents to summarize once stored
	refused      int      // attempts ClickHouse answered with an error
}

// The tables a held insert writes.
const (
	tableMetrics   = "metrics"
	tableAnomalies = "anomalies"
	tableIncidents = "incidents"
)

// insertSQL is the statement of a held insert into table.
func (s *Sink) insertSQL(table string) string {
	db := ident(s.o.Database)
	switch table {
	case tableMetrics:
		return "INSERT INTO " + db + ".metrics (ts, host, entity_kind, entity, series, value)"
	case tableAnomalies:
		return "INSERT INTO " + db + ".anomalies (id, ts, host, entity_kind, entity, series, detector, score, severity, expected, observed, window_start, window_end, evidence, incident_id)"
	default:
		return "INSERT INTO " + db + ".incidents (id, opened, updated, resolved, state, severity, title, hosts, entities, anomaly_ids, summary, summary_model, prompt_tokens, completion_tokens)"
	}
}

// fill appends the insert's rows to bt.
func (h *heldInsert) fill(bt driver.Batch) error {
	switch h.table {
	case tableMetrics:
		m := &h.metrics
		for i, col := range []any{m.ts, m.host, m.entityKind, m.entity, m.series, m.value} {
			if err := bt.Column(i).Append(col); err != nil {
				return err
			}
		}
	case tableAnomalies:
		for _, a := range h.anomalies {
			var inc *string
			if a.IncidentID != "" {
				inc = &a.IncidentID
			}
			if err := bt.Append(a.ID, a.TS, a.Host, a.EntityKind, a.Entity, a.Series, a.Detector, a.Score, a.Severity,
				a.Expected, a.Observed, a.WindowStart, a.WindowEnd, incidents.MarshalEvidence(a.Evidence), inc); err != nil {
				return err
			}
		}
	case tableIncidents:
		for _, r := range h.incidents {
			if err := bt.Append(r.id, r.opened, r.updated, r.resolved, r.state, r.severity, r.title,
				nonNil(r.hosts), nonNil(r.entities), nonNil(r.anomalyIDs), r.summary, r.model, r.promptTok, r.complTok); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown table %q", h.table)
	}
	return nil
}

// maxRefusals is how often ClickHouse may answer one insert with an error
// (not a lost connection) before it is given up on, so that rows it can
// never take do not hold back every later insert.
const maxRefusals = 5

// errAppend marks rows the driver would not take into a batch: they never
// will, and are dropped at once.
var errAppend = errors.New("rows do not fit the table")

// incidentRow is one version of a vigil.incidents row.
type incidentRow struct {
	id                  string
	opened, updated     time.Time
	resolved            *time.Time
	state, severity     string
	title               string
	hosts, entities     []string
	anomalyIDs          []string
	summary, model      string
	promptTok, complTok uint32
}

type item struct {
	ts        time.Time
	points    []Point
	anomaly   *Detection
	incident  *incidentRow
	summarize bool // summarize the incident once this version is stored
}

// NewSink starts a Sink's goroutines.
func NewSink(o SinkOptions) *Sink {
	o = o.withDefaults()
	s := &Sink{
		o: o, queue: make(chan item, o.Queue),
		incs: map[string]*incidentRow{}, pending: map[string]time.Time{}, lastSummary: map[string]time.Time{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	s.tokenPrefix = "detect-" + hex.EncodeToString(tok[:])
	s.workCtx, s.cancelWork = context.WithCancel(context.Background())
	s.restoreHeld()
	s.wg.Go(s.writeLoop)
	s.wg.Go(s.summaryLoop)
	return s
}

// SinkStats are the sink's counters.
type SinkStats struct {
	Dropped      uint64 `json:"dropped"` // items refused by the full queue
	InsertErrors uint64 `json:"insert_errors"`
	Summaries    uint64 `json:"summaries"`
	// HeldRows wait for ClickHouse to take them; DroppedRows were given
	// up on (beyond MaxHeldRows, or still held at Close with no HoldFile).
	HeldRows    int64  `json:"held_rows"`
	DroppedRows uint64 `json:"dropped_rows"`
}

// Stats returns the counters.
func (s *Sink) Stats() SinkStats {
	return SinkStats{Dropped: s.dropped.Load(), InsertErrors: s.insertErrors.Load(), Summaries: s.summaries.Load(),
		HeldRows: s.heldRows.Load(), DroppedRows: s.droppedRows.Load()}
}

// Close stops the summary worker (cancelling a summary in progress),
// writes what is queued and stops the writer. It is safe to call twice.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancelWork()
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}

func (s *Sink) enqueue(it item) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- it:
	default:
		s.dropped.Add(1)
	}
}

// Points implements Output.
func (s *Sink) Points(ts time.Time, pts []Point) {
	if s.o.Conn == nil {
		return
	}
	s.enqueue(item{ts: ts, points: pts})
}

// Anomaly implements Output.
func (s *Sink) Anomaly(d Detection) {
	if s.o.Publisher != nil {
		s.o.Publisher.Publish("anomaly", anomalyRow(&d).UI(s.o.Database))
	}
	if s.o.Conn != nil {
		s.enqueue(item{anomaly: &d})
	}
}

// Incident implements Output.
func (s *Sink) Incident(e IncidentEvent) {
	inc := &e.Incident
	s.mu.Lock()
	row := s.incs[e.ID]
	if row == nil {
		row = &incidentRow{id: e.ID}
		s.trimIncidents()
		s.incs[e.ID] = row
	}
	row.opened = inc.Opened
	row.updated = version(row.updated)
	row.resolved = nil
	if inc.State == models.IncidentResolved {
		t := inc.Resolved
		row.resolved = &t
	}
	row.state, row.severity, row.title = inc.State.String(), inc.Severity.String(), inc.Title
	row.hosts, row.entities, row.anomalyIDs = e.Hosts, e.Entities, e.AnomalyIDs
	cp := row.clone()
	s.mu.Unlock()

	s.publishIncident(cp, "")
	if s.o.Conn != nil {
		s.enqueue(item{incident: cp, summarize: e.Kind != models.IncidentClosed && s.o.Summarizer != nil})
	}
}

// version returns the updated time of a new version: now, but always after
// the previous one so ReplacingMergeTree keeps the newest.
func version(prev time.Time) time.Time {
	now := time.Now().UTC()
	if !now.After(prev) {
		now = prev.Add(time.Microsecond)
	}
	return now
}

func (r *incidentRow) clone() *incidentRow {
	c := *r
	c.hosts, c.entities, c.anomalyIDs = slices.Clone(r.hosts), slices.Clone(r.entities), slices.Clone(r.anomalyIDs)
	if r.resolved != nil {
		t := *r.resolved
		c.resolved = &t
	}
	return &c
}

// trimIncidents forgets resolved incidents, then the least recently
// updated, when the map is full. mu must be held.
func (s *Sink) trimIncidents() {
	if len(s.incs) < s.o.MaxIncidents {
		return
	}
	for id, r := range s.incs {
		if r.resolved != nil {
			delete(s.incs, id)
			delete(s.lastSummary, id)
		}
	}
	for len(s.incs) >= s.o.MaxIncidents {
		var oldest *incidentRow
		for _, r := range s.incs {
			if oldest == nil || r.updated.Before(oldest.updated) {
				oldest = r
			}
		}
		delete(s.incs, oldest.id)
		delete(s.lastSummary, oldest.id)
	}
}

func (s *Sink) publishIncident(r *incidentRow, state string) {
	if s.o.Publisher == nil {
		return
	}
	if state == "" {
		state = r.state
	}
	s.o.Publisher.Publish("incident", ui.Incident{
		ID: r.id, Title: r.title, Severity: r.severity, State: state, Opened: r.opened, Updated: r.updated,
		Hosts: r.hosts, Anomalies: len(r.anomalyIDs), Summary: r.summary,
	})
}

func anomalyRow(d *Detection) incidents.AnomalyRow {
	a := &d.Anomaly
	host := d.Entity.Host
	return incidents.AnomalyRow{
		ID: d.ID, TS: a.Time(), Host: host, EntityKind: d.Entity.Kind, Entity: d.Entity.Name, Series: a.Series,
		Detector: a.Detector, Score: a.Score, Severity: a.Severity.String(), Expected: a.Expected, Observed: a.Observed,
		WindowStart: a.Start, WindowEnd: a.End, IncidentID: d.IncidentID,
		Evidence: incidents.Evidence{Value: a.Value, Container: d.Container, Comm: d.Comm, PID: d.PID, Tree: a.Tree, EventIDs: a.EventIDs},
	}
}

// writeLoop batches queued items and inserts them every FlushInterval (or
// sooner when many metrics points wait), until Close.
func (s *Sink) writeLoop() {
	t := time.NewTicker(s.o.FlushInterval)
	defer t.Stop()
	var b batches
	for {
		select {
		case it := <-s.queue:
			b.add(it)
			if len(b.metrics.ts) >= s.o.MaxRows {
				s.flush(&b)
			}
		case <-t.C:
			s.flush(&b)
		case <-s.stop:
			for {
				select {
				case it := <-s.queue:
					b.add(it)
				default:
					// One last try, unless ClickHouse has been refusing and
					// the rows can wait on disk: a hung server holds
					// clickhouse-go's handshake for its dial timeout, and
					// the stop with it.
					s.seal(&b)
					if s.backoff == 0 || s.o.HoldFile == "" {
						s.drain()
					}
					s.keepHeld()
					return
				}
			}
		}
	}
}

// batches are the rows waiting for the next insert.
type batches struct {
	metrics   metricCols
	anomalies []incidents.AnomalyRow
	incidents []*incidentRow
	summarize []string
}

type metricCols struct {
	ts                               []time.Time
	host, entityKind, entity, series []string
	value                            []float64
}

func (b *batches) add(it item) {
	switch {
	case it.points != nil:
		m := &b.metrics
		for _, p := range it.points {
			m.ts = append(m.ts, it.ts)
			m.host = append(m.host, p.Entity.Host)
			m.entityKind = append(m.entityKind, p.Entity.Kind)
			m.entity = append(m.entity, p.Entity.Name)
			m.series = append(m.series, p.Series)
			m.value = append(m.value, p.Value)
		}
	case it.anomaly != nil:
		b.anomalies = append(b.anomalies, anomalyRow(it.anomaly))
	case it.incident != nil:
		b.incidents = append(b.incidents, it.incident)
		if it.summarize && !slices.Contains(b.summarize, it.incident.id) {
			b.summarize = append(b.summarize, it.incident.id)
		}
	}
}

// flush seals the buffered rows into inserts, metrics, then anomalies, then
// incidents, and makes the held inserts in that order, so that by the time
// an incident is summarized its anomalies are stored. While ClickHouse
// refuses them the inserts are held (up to MaxHeldRows) and retried with
// a backoff, not before retryAt: the detector must not back up
// behind a sick database, nor lose its findings to a short outage.
func (s *Sink) flush(b *batches) {
	s.seal(b)
	if !time.Now().Before(s.retryAt) {
		s.drain()
	}
}

// seal turns the buffered rows into held inserts.
func (s *Sink) seal(b *batches) {
	if n := len(b.metrics.ts); n > 0 {
		s.hold(heldInsert{table: tableMetrics, rows: n, metrics: b.metrics})
		b.metrics = metricCols{}
	}
	if n := len(b.anomalies); n > 0 {
		s.hold(heldInsert{table: tableAnomalies, rows: n, anomalies: b.anomalies})
		b.anomalies = nil
	}
	if n := len(b.incidents); n > 0 {
		s.hold(heldInsert{table: tableIncidents, rows: n, incidents: b.incidents, summarize: b.summarize})
		b.incidents, b.summarize = nil, nil
	}
}

// hold queues one sealed insert under a new token, dropping the oldest
// beyond MaxHeldRows.
func (s *Sink) hold(h heldInsert) {
	s.seq++
	h.token = s.tokenPrefix + "-" + strconv.FormatUint(s.seq, 10)
	s.held = append(s.held, h)
	s.logRecord(appendInsert(nil, &h), true)
	n := s.heldRows.Add(int64(h.rows))
	for n > int64(s.o.MaxHeldRows) && len(s.held) > 0 {
		old := s.held[0]
		s.unhold()
		n = s.heldRows.Load()
		s.droppedRows.Add(uint64(old.rows))
		s.o.Logger.Error("detect: ClickHouse refused inserts too long; dropping the oldest rows", "table", old.table, "rows", old.rows)
	}
}

// drain makes the held inserts, oldest first, until one fails.
func (s *Sink) drain() {
	for len(s.held) > 0 {
		h := &s.held[0]
		if err := s.insert(*h); err != nil {
			s.insertErrors.Add(1)
			var ex *clickhouse.Exception
			if errors.As(err, &ex) {
				h.refused++
			}
			if errors.Is(err, errAppend) || h.refused >= maxRefusals {
				s.droppedRows.Add(uint64(h.rows))
				s.o.Logger.Error("detect: insert failed for good; rows dropped", "table", h.table, "rows", h.rows, "err", err)
				s.unhold()
				continue
			}
			s.logHeld()
			s.backoff = min(max(2*s.backoff, s.o.FlushInterval), maxSinkBackoff)
			s.retryAt = time.Now().Add(s.backoff)
			s.o.Logger.Warn("detect: insert failed; rows held for a retry", "table", h.table, "rows", h.rows,
				"held_rows", s.heldRows.Load(), "retry_in", s.backoff, "err", err)
			return
		}
		ids := h.summarize
		s.unhold()
		if s.backoff > 0 {
			s.o.Logger.Info("detect: ClickHouse accepts inserts again", "held_rows", s.heldRows.Load())
			s.backoff = 0
		}
		for _, id := range ids {
			s.requestSummary(id)
		}
	}
	s.removeHeld()
}

// unhold removes the oldest held insert: stored, or given up on.
func (s *Sink) unhold() {
	s.logRecord(appendDone(nil, s.held[0].token), false)
	s.heldRows.Add(-int64(s.held[0].rows))
	s.held[0] = heldInsert{}
	s.held = s.held[1:]
}

// maxSinkBackoff is the longest pause between attempts while ClickHouse
// refuses inserts.
const maxSinkBackoff = 30 * time.Second

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func (s *Sink) insert(h heldInsert) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.InsertTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": h.token}))
	bt, err := s.o.Conn.PrepareBatch(ctx, s.insertSQL(h.table))
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	if err := h.fill(bt); err != nil {
		_ = bt.Abort()
		return fmt.Errorf("%w: %w", errAppend, err)
	}
	return bt.Send()
}

// requestSummary queues id for the summary worker, coalescing repeats: an
// incident already waiting is not queued twice, and one summarized less
// than SummaryInterval ago waits until the interval has passed.
func (s *Sink) requestSummary(id string) {
	s.mu.Lock()
	if _, ok := s.pending[id]; !ok {
		if len(s.pending) >= s.o.MaxPendingSummaries {
			s.mu.Unlock()
			s.dropped.Add(1)
			return
		}
		at := time.Now()
		if last, ok := s.lastSummary[id]; ok {
			if due := last.Add(s.o.SummaryInterval); due.After(at) {
				at = due
			}
		} else if s.o.SummaryDelay > 0 {
			at = at.Add(s.o.SummaryDelay)
		}
		s.pending[id] = at
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next returns the pending incident due first, or how long until one is.
func (s *Sink) next() (string, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best string
	var at time.Time
	for id, t := range s.pending {
		if best == "" || t.Before(at) {
			best, at = id, t
		}
	}
	if best == "" {
		return "", 0, false
	}
	if wait := time.Until(at); wait > 0 {
		return "", wait, false
	}
	delete(s.pending, best)
	s.lastSummary[best] = time.Now()
	return best, 0, true
}

// summaryLoop summarizes one incident at a time: summaries are slow (an
// LLM may take tens of seconds) and detection never waits for them.
func (s *Sink) summaryLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		id, wait, ok := s.next()
		if ok {
			s.summarize(id)
			continue
		}
		if wait == 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *Sink) summarize(id string) {
	if s.o.Summarizer == nil || s.o.Reader == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.workCtx, s.o.SummaryTimeout)
	defer cancel()
	s.mu.Lock()
	row := s.incs[id]
	var cp *incidentRow
	if row != nil {
		cp = row.clone()
	}
	s.mu.Unlock()
	if cp != nil {
		s.publishIncident(cp, "summarizing")
	}
	facts, err := summary.Build(ctx, s.o.Reader, id, s.o.Build)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.o.Logger.Warn("detect: incident fact sheet failed", "incident", id, "err", err)
		}
		return
	}
	onToken := func(t string) {
		if s.o.Publisher != nil {
			s.o.Publisher.Publish("summary_token", ui.SummaryToken{IncidentID: id, Text: t})
		}
	}
	sum, err := s.o.Summarizer.Summarize(ctx, &facts, onToken)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.o.Logger.Warn("detect: incident summary failed", "incident", id, "err", err)
		}
		return
	}
	s.summaries.Add(1)
	md := sum.Markdown()
	if s.o.Publisher != nil {
		s.o.Publisher.Publish("summary_token", ui.SummaryToken{IncidentID: id, Text: md, Done: true})
	}
	s.mu.Lock()
	row = s.incs[id]
	if row == nil {
		s.mu.Unlock()
		return
	}
	row.summary, row.model = md, sum.Model
	row.promptTok, row.complTok = uint32(max(sum.PromptTokens, 0)), uint32(max(sum.CompletionTokens, 0))
	row.updated = version(row.updated)
	cp = row.clone()
	s.mu.Unlock()
	s.publishIncident(cp, "")
	s.enqueue(item{incident: cp})
}

// ident backquotes the database name unless it is a plain identifier.
func ident(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return "`" + strings.ReplaceAll(strings.ReplaceAll(s, "\\", "\\\\"), "`", "\\`") + "`"
		}
	}
	return s
}
