package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-dev/vigil/collector"
)

// Defaults for SenderOptions.
const (
	DefaultSendBatches   = 64
	DefaultSendBytes     = 16 << 20
	DefaultSendInterval  = time.Second
	DefaultSendBackoff   = 200 * time.Millisecond
	DefaultSendMaxBackof = 10 * time.Second
	DefaultSendTimeout   = 30 * time.Second
)

// SenderOptions configures a Sender. URL and Token are required.
type SenderOptions struct {
	// URL of the pipeline, http(s)://host:port; Path is appended unless the
	// URL already has a path.
	URL string
	// Token sent as "Authorization: Bearer <token>".
	Token string
	// MaxBatches and MaxBytes (encoded) make one request; Interval sends
	// what is buffered at least that often. Defaults 64, 16 MiB, 1 s.
	// MaxBytes must stay below the handler's MaxBodyBytes.
	MaxBatches int
	MaxBytes   int
	Interval   time.Duration
	// Backoff is the first pause before resending a failed request; it
	// doubles up to MaxBackoff (or the server's Retry-After). Defaults
	// 200 ms and 10 s.
	Backoff, MaxBackoff time.Duration
	// Timeout of one request. Default 30 s.
	Timeout time.Duration
	// Client. Default: an http.Client with Timeout.
	Client *http.Client
	// Logger. Default: discard.
	Logger *slog.Logger
}

// SenderStats is a snapshot of a Sender's counters.
type SenderStats struct {
	Requests    uint64 `json:"requests"`
	SentBatches uint64 `json:"sent_batches"`
	SentRows    uint64 `json:"sent_rows"`
	Retries     uint64 `json:"retries"`
	// DroppedRows were refused by the pipeline for good (4xx other than
	// 408/429), or still unsent when Run's ctx was cancelled.
	DroppedRows uint64 `json:"dropped_rows"`
}

// Sender streams batches to a pipeline's Handler.
type Sender struct {
	url  string
	opts SenderOptions

	requests, batches, rows, retries, dropped atomic.Uint64
}

// NewSender checks opts and returns a Sender. It starts nothing.
func NewSender(opts SenderOptions) (*Sender, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ingest: URL %q: want http(s)://host:port", opts.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = Path
	}
	if opts.Token == "" {
		return nil, errors.New("ingest: no token")
	}
	if opts.MaxBatches <= 0 {
		opts.MaxBatches = DefaultSendBatches
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultSendBytes
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultSendInterval
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultSendBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultSendMaxBackof
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSendTimeout
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Timeout}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{url: u.String(), opts: opts}, nil
}

// Stats returns the counters so far; safe from any goroutine.
func (s *Sender) Stats() SenderStats {
	return SenderStats{Requests: s.requests.Load(), SentBatches: s.batches.Load(), SentRows: s.rows.Load(),
		Retries: s.retries.Load(), DroppedRows: s.dropped.Load()}
}

// Run sends the batches from in until in is closed (then it sends what is
// buffered and returns nil) or ctx is cancelled (then it returns ctx's
// error; what is unsent is counted as dropped). It releases every batch.
//
// Memory is bounded by one request (MaxBatches, MaxBytes): while a request
// is being retried Run reads nothing from in, so the producer sees a full
// channel and drops, as the collector does for any slow consumer.
func (s *Sender) Run(ctx context.Context, in <-chan collector.Batch) error {
	var (
		buf   bytes.Buffer
		rec   = collector.NewRecorder(&buf)
		n     int
		rows  uint64
		first time.Time
	)
	flush := func() error {
		if n == 0 {
			return nil
		}
		err := rec.Close()
		if err == nil {
			err = s.send(ctx, buf.Bytes(), n, rows)
		}
		buf.Reset()
		n, rows = 0, 0
		return err
	}
	tick := time.NewTicker(max(s.opts.Interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return flush()
			}
			if b.Record == nil {
				continue
			}
			err := rec.Write(b)
			nrows := uint64(b.Record.NumRows())
			b.Record.Release()
			if err != nil {
				s.dropped.Add(nrows)
				s.opts.Logger.Error("ingest: encode batch", "kind", b.Kind, "err", err)
				continue
			}
			rows += nrows
			if n == 0 {
				first = time.Now()
			}
			n++
			if n >= s.opts.MaxBatches || buf.Len() >= s.opts.MaxBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-tick.C:
			if n > 0 && time.Since(first) >= s.opts.Interval {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			s.dropped.Add(rows)
			for {
				select {
				case b, ok := <-in:
					if !ok {
						return ctx.Err()
					}
					if b.Record != nil {
						s.dropped.Add(uint64(b.Record.NumRows()))
						b.Record.Release()
					}
				default:
					return ctx.Err()
				}
			}
		}
	}
}

// ErrRefusedToken is returned by Run when the pipeline refuses the token.
var ErrRefusedToken = errors.New("the pipeline refused the access token")

// send POSTs one body until it is accepted, refused for good, or ctx ends.
// It returns ctx's error or ErrRefusedToken; a body refused for any other
// reason is counted and logged, and sending goes on.
func (s *Sender) send(ctx context.Context, body []byte, batches int, rows uint64) error {
	backoff := s.opts.Backoff
	for attempt := 0; ; attempt++ {
		status, retryAfter, msg, err := s.post(ctx, body)
		switch {
		case err == nil && status/100 == 2:
			s.batches.Add(uint64(batches))
			s.rows.Add(rows)
			return nil
		case ctx.Err() != nil:
			s.dropped.Add(rows)
			return ctx.Err()
		case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			// Every later request would be refused too: stop, and say why.
			s.dropped.Add(rows)
			return fmt.Errorf("%w (%d %s): check the token (--token or VIGIL_TOKEN)", ErrRefusedToken, status, msg)
		case err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
			s.dropped.Add(rows)
			s.opts.Logger.Error("ingest: pipeline refused batches", "status", status, "rows", rows, "msg", msg)
			return nil
		}
		s.retries.Add(1)
		wait := backoff
		if retryAfter > 0 {
			wait = retryAfter
		}
		if attempt == 0 || attempt%10 == 0 {
			s.opts.Logger.Warn("ingest: send failed; retrying", "status", status, "err", err, "msg", msg, "in", wait, "attempt", attempt+1)
		}
		select {
		case <-ctx.Done():
			s.dropped.Add(rows)
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

func (s *Sender) post(ctx context.Context, body []byte) (status int, retryAfter time.Duration, msg string, err error) {
	s.requests.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	req.Header.Set("Content-Type", "application/vnd.apache.arrow.stream")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if v, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && v > 0 {
		retryAfter = min(time.Duration(v)*time.Second, s.opts.MaxBackoff)
	}
	return resp.StatusCode, retryAfter, strings.TrimSpace(string(b)), nil
}
