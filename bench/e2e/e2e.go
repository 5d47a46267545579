// Package e2e measures how long a kernel event takes to become visible to
// its consumers through the whole platform: queryable in ClickHouse, and
// delivered to a dashboard's websocket. It runs a real `vigil up` (the
// binary under test, its embedded ClickHouse, its probes), makes failing
// ptrace calls that the priv probe reports at a chosen rate, and compares
// each event's own kernel timestamp (ts, wall time) with when it was seen.
// `vigil bench e2e` calls Run.
//
// ClickHouse latency is measured by polling ClickHouse's HTTP port every
// PollInterval for the events that have appeared since the last poll: an
// event found by a poll sent at T is counted with latency T - ts, an upper
// bound that is at most PollInterval too high. Websocket latency is measured
// on the events the live hub forwards: it samples at most 50 rows per batch,
// so at high rates it is measured on a sample.
package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

// Goal is what Result.GoalMet checks: events queryable in ClickHouse within
// GoalP99 at p99, at GoalRate events per second.
const (
	GoalRate = 100_000
	GoalP99  = 2 * time.Second
)

// Options configure a run; zero fields take the defaults in brackets.
type Options struct {
	// Binary is the vigil binary to run (`vigil up`). Required.
	Binary string
	// Rate of generated kernel events per second [1000].
	Rate int
	// Duration of the measured load [10s].
	Duration time.Duration
	// Workers are load threads sharing Rate [1, or 2 above 50,000/s].
	Workers int
	// Probes passed to vigil up [exec,priv]; priv must be among them.
	Probes []string
	// PollInterval between ClickHouse polls [50ms]: the resolution of the
	// ClickHouse figures.
	PollInterval time.Duration
	// Settle is how long to keep polling after the load stops, for the last
	// events to arrive [5s].
	Settle time.Duration
	// StartTimeout bounds vigil up's start and the first event's arrival
	// [90s].
	StartTimeout time.Duration
	// ExtraArgs are appended to the vigil up command line.
	ExtraArgs []string
	// Out receives a short table; nil prints nothing.
	Out io.Writer
	// Logger receives progress at debug level and vigil's output when it
	// fails [discard].
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 1
		if o.Rate > 50_000 {
			o.Workers = 2
		}
	}
	if len(o.Probes) == 0 {
		o.Probes = []string{"exec", "priv"}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 90 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result is what a run measured. JSON field names are stable.
type Result struct {
	Rate            int     `json:"rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Generated is the number of calls made: events the kernel produced.
	Generated uint64 `json:"generated"`
	// AchievedRate is Generated per second of load.
	AchievedRate float64 `json:"achieved_rate"`
	// Stored is how many of them ClickHouse holds at the end.
	Stored uint64 `json:"stored"`
	// ClickHouse is the latency from ts to queryable, over the events found
	// by polls (Late ones are not in it).
	ClickHouse Latency `json:"clickhouse"`
	// Late are events stored but not found by the polls: they appeared more
	// than Window after newer ones, so their latency is at least that.
	Late uint64 `json:"late"`
	// Websocket is the latency from ts to a websocket client, on the events
	// the live hub forwarded.
	Websocket Latency `json:"websocket"`
	// WebsocketError is why the websocket stopped early, if it did (a
	// client that falls behind is dropped by the hub).
	WebsocketError string `json:"websocket_error,omitempty"`
	// PollIntervalMS is the resolution of the ClickHouse figures.
	PollIntervalMS float64 `json:"poll_interval_ms"`
	// GoalMet: Rate >= GoalRate, nothing lost or late, ClickHouse p99 <=
	// GoalP99.
	GoalMet bool `json:"goal_met"`
}

// Latency summarises one consumer's latencies.
type Latency struct {
	Samples uint64  `json:"samples"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	MaxMS   float64 `json:"max_ms"`
}

// Run starts vigil up, generates events, measures and stops vigil. It needs
// root (the probes) and an engine vigil up can start.
func Run(ctx context.Context, opts Options) (Result, error) {
	opts.defaults()
	res := Result{Rate: opts.Rate, PollIntervalMS: float64(opts.PollInterval) / 1e6}
	if opts.Binary == "" {
		return res, errors.New("e2e: Options.Binary is required")
	}
	if !slices.Contains(opts.Probes, "priv") {
		return res, errors.New("e2e: the priv probe must be loaded: events are ptrace calls")
	}
	if os.Geteuid() != 0 {
		return res, errors.New("e2e: the kernel probes need root")
	}
	up, err := startUp(ctx, opts)
	if err != nil {
		return res, err
	}
	defer up.stop(opts.Logger)

	nonce, err := randomUint32()
	if err != nil {
		return res, err
	}
	m := &marker{pid: os.Getpid(), nonce: uint64(nonce)}

	ws, err := dialWS(ctx, up, m)
	if err != nil {
		return res, err
	}
	defer ws.close()

	// Warm-up: the probes are attached and rows flow once one marked event
	// is in ClickHouse.
	wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	err = warmUp(wctx, up, m)
	cancel()
	if err != nil {
		return res, fmt.Errorf("%w\nvigil up output:\n%s", err, up.out.String())
	}
	start := time.Now()
	ws.startAt(start)
	poll := newPoller(up, m, start, opts.PollInterval)
	pctx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var pollErr error
	wg.Go(func() { pollErr = poll.run(pctx) })

	generated, elapsed := load(ctx, m, opts.Rate, opts.Workers, opts.Duration)
	opts.Logger.Debug("e2e: load done", "generated", generated, "elapsed", elapsed)

	// Let the tail arrive: stop once everything generated is stored, or
	// after Settle.
	settle := time.NewTimer(opts.Settle)
	tick := time.NewTicker(opts.PollInterval)
wait:
	for poll.counted() < generated {
		select {
		case <-settle.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
		}
	}
	settle.Stop()
	tick.Stop()
	stopPoll()
	wg.Wait()
	if pollErr != nil && ctx.Err() == nil {
		return res, pollErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	stored, err := up.count(ctx, m, start)
	if err != nil {
		return res, err
	}

	res.DurationSeconds = elapsed.Seconds()
	res.Generated = generated
	res.AchievedRate = float64(generated) / elapsed.Seconds()
	res.Stored = stored
	res.ClickHouse = poll.hist.summary()
	if c := poll.counted(); stored > c {
		res.Late = stored - c
	}
	res.Websocket, res.WebsocketError = ws.result()
	res.GoalMet = res.Rate >= GoalRate && res.Stored >= res.Generated && res.Late == 0 &&
		res.ClickHouse.Samples > 0 && res.ClickHouse.P99MS <= float64(GoalP99.Milliseconds())
	if opts.Out != nil {
		PrintTable(opts.Out, res)
	}
	return res, nil
}

// PrintTable writes res as a short table.
func PrintTable(w io.Writer, r Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "e2e\trate/s\tevents\tsamples\tp50 ms\tp99 ms\tmax ms\tgoal\t\n")
	goal := fmt.Sprintf("p99 <= %v at %dk/s", GoalP99, GoalRate/1000)
	fmt.Fprintf(tw, "kernel -> ClickHouse\t%.0f\t%d/%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t\n", r.AchievedRate, r.Stored, r.Generated,
		r.ClickHouse.Samples, r.ClickHouse.P50MS, r.ClickHouse.P99MS, r.ClickHouse.MaxMS, goal)
	fmt.Fprintf(tw, "kernel -> websocket (sampled)\t%.0f\t\t%d\t%.1f\t%.1f\t%.1f\t\t\n", r.AchievedRate,
		r.Websocket.Samples, r.Websocket.P50MS, r.Websocket.P99MS, r.Websocket.MaxMS)
	tw.Flush()
	fmt.Fprintf(w, "ClickHouse resolution %.0f ms (poll interval); late %d; goal met: %v\n", r.PollIntervalMS, r.Late, r.GoalMet)
	if r.WebsocketError != "" {
		fmt.Fprintf(w, "websocket stopped early: %s\n", r.WebsocketError)
	}
}

// marker identifies this run's events: failing ptrace(PTRACE_PEEKDATA) calls
// from this process with the address set to a per-run nonce.
type marker struct {
	pid   int
	nonce uint64
}

// noSuchPid is above every pid_max, so the calls fail fast with ESRCH.
const noSuchPid = 1<<22 - 1

func (m *marker) fire() {
	syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_PEEKDATA, noSuchPid, uintptr(m.nonce))
}

func (m *marker) where() string {
	return fmt.Sprintf("pid = %d AND syscall = 'ptrace' AND arg2 = %d", m.pid, m.nonce)
}

func (m *marker) matches(ev map[string]any) bool {
	if ev["kind"] != "priv" || ev["syscall"] != "ptrace" {
		return false
	}
	return num(ev["pid"]) == uint64(m.pid) && num(ev["arg2"]) == m.nonce
}

func num(v any) uint64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := strconv.ParseUint(x.String(), 10, 64)
		return n
	case float64:
		return uint64(x)
	case string:
		n, _ := strconv.ParseUint(x, 10, 64)
		return n
	}
	return 0
}

// load makes rate calls per second for d, from workers threads, and returns
// how many it made and how long it took.
func load(ctx context.Context, m *marker, rate, workers int, d time.Duration) (uint64, time.Duration) {
	var total atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	perWorker := float64(rate) / float64(workers)
	// Calls are made in chunks of about a millisecond's worth, so pacing
	// costs one clock read per chunk.
	chunk := max(1, int(perWorker/1000))
	for range workers {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var n uint64
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(end) {
					break
				}
				due := start.Add(time.Duration(float64(n) / perWorker * float64(time.Second)))
				if wait := due.Sub(now); wait > 0 {
					time.Sleep(wait)
					continue
				}
				for range chunk {
					m.fire()
				}
				n += uint64(chunk)
			}
			total.Add(n)
		})
	}
	wg.Wait()
	return total.Load(), time.Since(start)
}

func warmUp(ctx context.Context, up *upProcess, m *marker) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		m.fire()
		n, err := up.count(ctx, m, time.Time{})
		if err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("e2e: no marked event reached ClickHouse before the start timeout (last error: %v)", err)
		case <-tick.C:
		}
	}
}

// --- vigil up ---

type upProcess struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
	dataDir string
	chHTTP  string // http://127.0.0.1:PORT
	listen  string // 127.0.0.1:PORT
	token   string
	out     *tailBuffer
	client  *http.Client
}

func startUp(ctx context.Context, opts Options) (*upProcess, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-e2e-")
	if err != nil {
		return nil, fmt.Errorf("e2e: data dir: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	tok, err := randomUint32()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b, tok)
	_, _ = rand.Read(b[4:])
	u := &upProcess{
		dataDir: dir,
		chHTTP:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		listen:  fmt.Sprintf("127.0.0.1:%d", ports[2]),
		token:   hex.EncodeToString(b),
		out:     &tailBuffer{max: 64 << 10},
		exited:  make(chan struct{}),
		client:  &http.Client{Timeout: 10 * time.Second},
	}
	args := append([]string{"up",
		"--data-dir", dir,
		"--ch-tcp-port", strconv.Itoa(ports[0]),
		"--ch-http-port", strconv.Itoa(ports[1]),
		"--listen", u.listen,
		"--token", u.token,
		"--probes", strings.Join(opts.Probes, ","),
		"--log-level", "warn",
	}, opts.ExtraArgs...)
	u.cmd = exec.Command(opts.Binary, args...)
	u.cmd.Stdout, u.cmd.Stderr = u.out, u.out
	// Its own process group, so a stop reaches the engine it starts too.
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := u.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("e2e: start %s: %w", opts.Binary, err)
	}
	go func() { u.waitErr = u.cmd.Wait(); close(u.exited) }()

	deadline := time.NewTimer(opts.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(u.out.String(), "dashboard: http") {
		select {
		case <-u.exited:
			err := fmt.Errorf("e2e: vigil up exited early (%v):\n%s", u.waitErr, u.out.String())
			os.RemoveAll(dir)
			return nil, err
		case <-deadline.C:
			u.stop(opts.Logger)
			return nil, fmt.Errorf("e2e: vigil up did not start within %v:\n%s", opts.StartTimeout, u.out.String())
		case <-ctx.Done():
			u.stop(opts.Logger)
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	return u, nil
}

// stop sends SIGTERM, waits up to 15 s (vigil stops within 10), then kills
// the process group, and removes the data dir.
func (u *upProcess) stop(log *slog.Logger) {
	u.client.CloseIdleConnections()
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-u.exited:
		if u.waitErr != nil {
			log.Warn("e2e: vigil up exited with an error", "err", u.waitErr, "output", u.out.String())
		}
	case <-time.After(15 * time.Second):
		log.Warn("e2e: vigil up still running 15s after SIGTERM; killing it", "output", u.out.String())
		_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGKILL)
		<-u.exited
	}
	os.RemoveAll(u.dataDir)
}

// query runs sql over ClickHouse's HTTP port and returns the TSV body.
func (u *upProcess) query(ctx context.Context, sql string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.chHTTP+"/?database=vigil", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("e2e: clickhouse: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("e2e: clickhouse: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("e2e: clickhouse: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// count returns how many marked events ClickHouse holds with ts >= since.
func (u *upProcess) count(ctx context.Context, m *marker, since time.Time) (uint64, error) {
	var ns int64
	if !since.IsZero() {
		ns = since.UnixNano()
	}
	out, err := u.query(ctx, fmt.Sprintf("SELECT count() FROM vigil.priv_events WHERE %s AND ts >= fromUnixTimestamp64Nano(toInt64(%d))",
		m.where(), ns))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(out), 10, 64)
}

// --- ClickHouse poller ---

// Window is how far behind the newest event a poll looks for events that
// arrived out of order (several inserters); events arriving later than
// that are counted as Late.
const Window = 5 * time.Second

// poller finds, every interval, the events that appeared since the last
// poll. It asks ClickHouse for counts per millisecond of ts over the window,
// and the growth of each bucket since the last poll is the new events, each
// with latency (poll time - bucket time).
type poller struct {
	up       *upProcess
	m        *marker
	start    time.Time
	interval time.Duration
	hist     histogram
	// seen is the count per ts millisecond already attributed; only run's
	// goroutine touches it and newest.
	seen   map[int64]uint64
	newest int64 // newest ts millisecond seen
	total  atomic.Uint64
}

func newPoller(up *upProcess, m *marker, start time.Time, interval time.Duration) *poller {
	return &poller{up: up, m: m, start: start, interval: interval, seen: map[int64]uint64{}, hist: histogram{buckets: map[int64]uint64{}}}
}

func (p *poller) counted() uint64 { return p.total.Load() }

func (p *poller) run(ctx context.Context) error {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		if err := p.poll(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (p *poller) poll(ctx context.Context) error {
	from := max(p.start.UnixMilli(), p.newest-Window.Milliseconds())
	sent := time.Now()
	out, err := p.up.query(ctx, fmt.Sprintf(
		"SELECT intDiv(toUnixTimestamp64Nano(ts), 1000000) AS ms, count() FROM vigil.priv_events "+
			"WHERE %s AND ts >= fromUnixTimestamp64Milli(toInt64(%d)) GROUP BY ms FORMAT TSV", p.m.where(), from))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		ms, n, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		bucket, err1 := strconv.ParseInt(ms, 10, 64)
		count, err2 := strconv.ParseUint(n, 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("e2e: clickhouse poll: bad row %q", sc.Text())
		}
		if count <= p.seen[bucket] {
			continue
		}
		fresh := count - p.seen[bucket]
		p.seen[bucket] = count
		p.newest = max(p.newest, bucket)
		// The bucket's events happened within [bucket, bucket+1ms).
		lag := sent.Sub(time.UnixMilli(bucket).Add(500 * time.Microsecond))
		p.hist.add(lag, fresh)
		p.total.Add(fresh)
	}
	// Buckets that fell out of the window cannot grow any more in view.
	for b := range p.seen {
		if b < from {
			delete(p.seen, b)
		}
	}
	return nil
}

// --- websocket ---

type wsReader struct {
	conn  *websocket.Conn
	m     *marker
	start atomic.Int64 // unix ns; events before it are not measured
	done  chan struct{}

	mu   sync.Mutex
	hist histogram // guarded by mu
	err  error     // guarded by mu: why reading stopped early
}

func dialWS(ctx context.Context, up *upProcess, m *marker) (*wsReader, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+up.token)
	h.Set("Origin", "http://"+up.listen)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, (&url.URL{Scheme: "ws", Host: up.listen, Path: "/ws"}).String(), h)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("e2e: websocket: %w", err)
	}
	w := &wsReader{conn: conn, m: m, done: make(chan struct{}), hist: histogram{buckets: map[int64]uint64{}}}
	w.start.Store(1<<63 - 1)
	go w.read()
	return w, nil
}

func (w *wsReader) startAt(t time.Time) { w.start.Store(t.UnixNano()) }

func (w *wsReader) read() {
	defer close(w.done)
	for {
		_, msg, err := w.conn.ReadMessage()
		now := time.Now()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		var env struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(msg, &env); err != nil || env.Type != "event" || !w.m.matches(env.Data) {
			continue
		}
		s, _ := env.Data["ts"].(string)
		ts, err := parseTS(s)
		if err != nil || ts.UnixNano() < w.start.Load() {
			continue
		}
		w.mu.Lock()
		w.hist.add(now.Sub(ts), 1)
		w.mu.Unlock()
	}
}

// close ends the connection and waits for the reader.
func (w *wsReader) close() {
	_ = w.conn.Close()
	<-w.done
}

// result returns the websocket figures and why reading stopped, if it
// stopped before close.
func (w *wsReader) result() (Latency, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var why string
	if w.err != nil {
		why = w.err.Error()
	}
	return w.hist.summary(), why
}

// parseTS reads an event's ts as the hub sends it (Arrow's rendering of a
// UTC nanosecond timestamp).
func parseTS(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("e2e: unknown ts format %q", s)
}

// --- histogram ---

// histogram counts latencies in 100 µs buckets.
type histogram struct {
	buckets map[int64]uint64
	n       uint64
	max     time.Duration
}

const histBucket = 100 * time.Microsecond

func (h *histogram) add(d time.Duration, n uint64) {
	d = max(d, 0)
	h.buckets[int64(d/histBucket)] += n
	h.n += n
	h.max = max(h.max, d)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	keys := make([]int64, 0, len(h.buckets))
	for k := range h.buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var seen uint64
	for _, k := range keys {
		seen += h.buckets[k]
		if seen > rank {
			return time.Duration(k)*histBucket + histBucket/2
		}
	}
	return h.max
}

func (h *histogram) summary() Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{Samples: h.n, P50MS: ms(h.quantile(0.5)), P99MS: ms(h.quantile(0.99)), MaxMS: ms(h.max)}
}

// --- small helpers ---

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte // guarded by mu
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("e2e: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomUint32() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("e2e: random: %w", err)
	}
	return binary.LittleEndian.Uint32(b[:]) | 1, nil
}
