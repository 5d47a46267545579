// Package ingest carries collector batches from remote collectors to a
// pipeline over HTTP: `vigil collect --to URL` runs a Sender, `vigil up` and
// `vigil pipeline` mount a Handler.
//
// The wire format is the body of one POST to Path: one or more Arrow IPC
// streams back to back, one per batch, each schema tagged with vigil.kind
// (collector.Recorder's format, so a `--record` file is a valid body). The
// Authorization header carries "Bearer <token>". A request is accepted whole
// or not at all:
//
//	204 accepted              401 no or wrong token
//	400 malformed or truncated 413 body, batch, columns or batches over limit
//	422 unknown kind or columns of another version
//	503 queue full (Retry-After) 405 not POST
package ingest

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-dev/vigil/collector"
)

// Path is where the Handler is mounted.
const Path = "/ingest/v1"

// KindHeader names a request's default kind, for streams without vigil.kind
// metadata.
const KindHeader = "X-Vigil-Kind"

// Defaults for HandlerOptions.
const (
	DefaultMaxBodyBytes   = 64 << 20
	DefaultMaxBatchRows   = 1 << 20
	DefaultMaxColumns     = 64
	DefaultMaxBatches     = 1024
	DefaultHandoffTimeout = time.Second
	DefaultRetryAfter     = time.Second
	DefaultMaxInFlight    = 8
)

// HandlerOptions configures a Handler. Token is required.
type HandlerOptions struct {
	// Token every request must present as "Authorization: Bearer <token>".
	Token string
	// MaxBodyBytes bounds a request body (and the Arrow memory decoded from
	// it, twice that). Default 64 MiB.
	MaxBodyBytes int64
	// MaxBatchRows bounds one record batch. Default 1Mi rows.
	MaxBatchRows int64
	// MaxColumns bounds a stream's schema. Default 64.
	MaxColumns int
	// MaxBatches bounds the batches of one request. Default 1024; also
	// capped at the output channel's capacity, since a request is handed
	// over whole.
	MaxBatches int
	// HandoffTimeout is how long a request waits for room in the output
	// channel before it is refused with 503. Default 1 s.
	HandoffTimeout time.Duration
	// RetryAfter is the Retry-After of a 503. Default 1 s.
	RetryAfter time.Duration
	// MaxInFlight bounds the requests decoded at once (each holds up to
	// about 3×MaxBodyBytes); more get 503. Default 8.
	MaxInFlight int
	// Logger. Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives vigil_ingest_* metrics.
	Registerer prometheus.Registerer
}

// HandlerStats is a snapshot of a Handler's counters.
type HandlerStats struct {
	Requests        uint64            `json:"requests"`
	AcceptedBatches uint64            `json:"accepted_batches"`
	AcceptedRows    uint64            `json:"accepted_rows"`
	Rejected        map[string]uint64 `json:"rejected"` // requests, per reason
}

// Handler accepts batches from remote collectors and sends them to a
// channel. It is safe for concurrent use; it must be the only sender on
// that channel (it hands a request over whole by first waiting for room for
// all of its batches).
type Handler struct {
	out  chan<- collector.Batch
	opts HandlerOptions
	lim  Limits
	// handoff serialises the wait-for-room-then-send of requests, so that
	// the room one request saw is not taken by another.
	handoff sync.Mutex
	// inFlight holds a token per request being decoded (bounded memory).
	inFlight chan struct{}

	requests, batches, rows atomic.Uint64
	rejMu                   sync.Mutex // guards rejected
	rejected                map[string]uint64
	rejVec                  *prometheus.CounterVec
}

// NewHandler returns a Handler sending accepted batches to out, which must
// be buffered. The receiver of out owns each batch's Record.
func NewHandler(out chan<- collector.Batch, opts HandlerOptions) (*Handler, error) {
	if opts.Token == "" {
		return nil, errors.New("ingest: no token")
	}
	if cap(out) == 0 {
		return nil, errors.New("ingest: output channel must be buffered")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxBatchRows <= 0 {
		opts.MaxBatchRows = DefaultMaxBatchRows
	}
	if opts.MaxColumns <= 0 {
		opts.MaxColumns = DefaultMaxColumns
	}
	if opts.MaxBatches <= 0 {
		opts.MaxBatches = DefaultMaxBatches
	}
	opts.MaxBatches = min(opts.MaxBatches, cap(out))
	if opts.HandoffTimeout <= 0 {
		opts.HandoffTimeout = DefaultHandoffTimeout
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{out: out, opts: opts, rejected: map[string]uint64{}, inFlight: make(chan struct{}, opts.MaxInFlight),
		lim: Limits{MaxBytes: opts.MaxBodyBytes, MaxBatchRows: opts.MaxBatchRows, MaxColumns: opts.MaxColumns, MaxBatches: opts.MaxBatches}}
	if opts.Registerer != nil {
		if err := h.register(opts.Registerer); err != nil {
			opts.Logger.Warn("register ingest metrics", "err", err)
		}
	}
	return h, nil
}

func (h *Handler) register(reg prometheus.Registerer) error {
	h.rejVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ingest_rejected_requests_total",
		Help: "Ingest requests refused, per reason."}, []string{"reason"})
	var errs []error
	errs = append(errs, reg.Register(h.rejVec))
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"vigil_ingest_requests_total", "Ingest requests received.", &h.requests},
		{"vigil_ingest_batches_total", "Batches accepted from remote collectors.", &h.batches},
		{"vigil_ingest_rows_total", "Rows accepted from remote collectors.", &h.rows},
	} {
		v := c.v
		errs = append(errs, reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(v.Load()) })))
	}
	return errors.Join(errs...)
}

// Stats returns the counters so far; safe from any goroutine.
func (h *Handler) Stats() HandlerStats {
	s := HandlerStats{Requests: h.requests.Load(), AcceptedBatches: h.batches.Load(), AcceptedRows: h.rows.Load(), Rejected: map[string]uint64{}}
	h.rejMu.Lock()
	for k, v := range h.rejected {
		s.Rejected[k] = v
	}
	h.rejMu.Unlock()
	return s
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, reject(http.StatusMethodNotAllowed, ReasonMethod, "use POST"))
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		h.fail(w, r, reject(http.StatusUnauthorized, ReasonUnauthorized, "missing or wrong bearer token"))
		return
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		h.fail(w, r, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "body of %d bytes, limit %d", r.ContentLength, h.opts.MaxBodyBytes))
		return
	}
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		h.busy(w, r, "too many requests in flight")
		return
	}
	body := http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
	batches, err := Decode(body, collector.Kind(r.Header.Get(KindHeader)), h.lim)
	if err != nil {
		var re *RejectError
		if !errors.As(err, &re) {
			re = reject(http.StatusBadRequest, ReasonMalformed, "%v", err)
		}
		h.fail(w, r, re)
		return
	}
	if !h.handOver(batches) {
		releaseAll(batches)
		h.busy(w, r, "pipeline queue full")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// busy answers 503 with Retry-After: the sender keeps its batches and retries.
func (h *Handler) busy(w http.ResponseWriter, r *http.Request, why string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(h.opts.RetryAfter/time.Second))))
	h.fail(w, r, reject(http.StatusServiceUnavailable, ReasonQueueFull, "%s; retry later", why))
}

func (h *Handler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(auth[len(prefix):]), []byte(h.opts.Token)) == 1
}

// handOver sends all batches or none: it waits up to HandoffTimeout for the
// channel to have room for all of them. Only this Handler sends on out, and
// the receiver only makes room, so room seen under the mutex stays.
func (h *Handler) handOver(bs []collector.Batch) bool {
	h.handoff.Lock()
	defer h.handoff.Unlock()
	deadline := time.Now().Add(h.opts.HandoffTimeout)
	for cap(h.out)-len(h.out) < len(bs) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	var rows uint64
	for _, b := range bs {
		h.out <- b
		rows += uint64(b.Record.NumRows())
	}
	h.batches.Add(uint64(len(bs)))
	h.rows.Add(rows)
	return true
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, e *RejectError) {
	h.rejMu.Lock()
	h.rejected[e.Reason]++
	h.rejMu.Unlock()
	if h.rejVec != nil {
		h.rejVec.WithLabelValues(e.Reason).Inc()
	}
	h.opts.Logger.Warn("ingest: request rejected", "remote", r.RemoteAddr, "status", e.Status, "reason", e.Reason, "err", e.Err)
	if e.Status == http.StatusRequestEntityTooLarge || e.Status == http.StatusBadRequest {
		// The rest of the body is not worth reading.
		w.Header().Set("Connection", "close")
	}
	http.Error(w, fmt.Sprintf("%s: %v", e.Reason, e.Err), e.Status)
}
