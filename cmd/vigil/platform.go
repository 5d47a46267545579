package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline"
	"github.com/vigil-dev/vigil/pipeline/detect"
	"github.com/vigil-dev/vigil/pipeline/spool"
	"github.com/vigil-dev/vigil/pipeline/store"
	"github.com/vigil-dev/vigil/query"
	"github.com/vigil-dev/vigil/ui"
)

// platform answers the dashboard's questions about the running stages. It
// only reads from them.
type platform struct {
	store     *storeConn
	live      *pipeline.Live
	collector *collector.Collector
	pipeline  *pipeline.Pipeline
	host      string
	llmHealth ui.ComponentHealth
	detect    *detect.Detector
	sink      *detect.Sink
	writer    *store.Writer
	spool     *spool.Writer
	ping      *pinger

	mu sync.Mutex
	// rates remembers each probe's previous event count to turn counters
	// into per-second rates; guarded by mu.
	rates map[string]rate
}

type rate struct {
	count uint64
	at    time.Time
}

// RecentEvents implements ui.EventSource from the live sink's memory.
func (p *platform) RecentEvents(_ context.Context, kind string, n int) ([]ui.Event, error) {
	evs := p.live.Recent(collector.Kind(kind), n)
	out := make([]ui.Event, len(evs))
	for i, e := range evs {
		out[i] = ui.Event(e)
	}
	return out, nil
}

// Health implements ui.HealthSource.
func (p *platform) Health(ctx context.Context) (ui.Health, error) {
	now := time.Now()
	h := ui.Health{TS: now.UTC(), ProbeRates: map[string]float64{}, HostRates: map[string]float64{}}

	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := p.ping.ping(pctx); err != nil {
		h.ClickHouse = ui.ComponentHealth{State: ui.StateDown, Detail: err.Error()}
	} else {
		h.ClickHouse = ui.ComponentHealth{State: ui.StateOK, Detail: redactDSN(p.store.dsn)}
	}
	h.LLM = p.llmHealth

	st := p.collector.Stats()
	var total float64
	p.mu.Lock()
	for _, ps := range st.Probes {
		h.Drops += ps.KernelDrops + ps.UserDrops
		prev, ok := p.rates[ps.Probe]
		if ok && now.After(prev.at) {
			r := float64(ps.Events-prev.count) / now.Sub(prev.at).Seconds()
			h.ProbeRates[ps.Probe] = r
			total += r
		}
		p.rates[ps.Probe] = rate{count: ps.Events, at: now}
	}
	p.mu.Unlock()
	// One collector watches one host; remote collectors add theirs.
	h.HostRates[p.host] = total
	if p.writer != nil {
		h.Drops += p.writer.Stats().DroppedRows
	}
	if p.spool != nil {
		ss := p.spool.Stats()
		// Not the age of the newest stored row: on a quiet host that grows
		// with nothing wrong.
		h.IngestLag = ss.Waiting.Seconds()
		h.Drops += ss.AbortedRows
		for _, n := range ss.DroppedRows {
			h.Drops += n
		}
	}
	for _, s := range p.pipeline.Stats() {
		if s.Name == "clickhouse" {
			h.Drops += s.DropRows
		}
	}
	if p.detect != nil {
		h.Models = modelsHealth(p.detect.Stats())
	}
	return h, nil
}

// modelsHealth says whether the models are alerting yet: on a new install
// a quiet dashboard is the learning period, not a broken pipeline.
//
// New containers learn too, but containers come and go all day on a busy
// host: they are said in the detail and do not make the state "learning".
func modelsHealth(st detect.Stats) ui.ComponentHealth {
	series := fmt.Sprintf("%d series scored", st.Series)
	if st.ContainersLearning > 0 {
		series += fmt.Sprintf("; %s learned silently until %s UTC",
			plural(st.ContainersLearning, "new container's values are", "new containers' values are"), st.ContainersUntil.Format("15:04"))
	}
	switch {
	case st.Points == 0:
		return ui.ComponentHealth{State: ui.StateLearning, Detail: "waiting for the first step of telemetry"}
	case st.HostsLearning > 0:
		// Not "this host": it may be a remote collector's.
		return ui.ComponentHealth{State: ui.StateLearning,
			Detail: fmt.Sprintf("new binaries, exec pairs, sensitive files and privilege changes on %s are learned silently until %s UTC; %s",
				plural(st.HostsLearning, "host", "hosts"), st.LearningUntil.Format("15:04"), series)}
	default:
		return ui.ComponentHealth{State: ui.StateOK, Detail: series}
	}
}

// plural is "1 one" or "n many".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pinger pings ClickHouse for the dashboard, one ping at a time, and
// waits for it only as long as its caller's context allows. A server that
// accepts connections but does not answer (overloaded, or stopped) holds
// clickhouse-go's handshake for its dial timeout whatever the context says:
// the dashboard's health, polled every second, froze for 30 s a poll and
// the page went "offline" instead of showing ClickHouse down.
type pinger struct {
	conn driver.Conn

	mu      sync.Mutex
	running chan struct{} // closed when the ping under way ends; nil if none
	err     error         // of the last ping that ended
}

// maxPing bounds one ping's goroutine, so that at most one is ever left
// waiting on a silent server.
const maxPing = 30 * time.Second

func (p *pinger) ping(ctx context.Context) error {
	p.mu.Lock()
	if p.running == nil {
		done := make(chan struct{})
		p.running = done
		go func() {
			pctx, cancel := context.WithTimeout(context.Background(), maxPing)
			err := p.conn.Ping(pctx)
			cancel()
			p.mu.Lock()
			p.err, p.running = err, nil
			p.mu.Unlock()
			close(done)
		}()
	}
	done := p.running
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("no answer to a ping: %w", ctx.Err())
	}
}

// askAdapter serves the dashboard's ask box from the query layer. The page
// shows one statement and its rows: the last one that ran, which is the one
// the answer rests on; `vigil ask` prints all of them.
type askAdapter struct{ asker *query.Asker }

func (a askAdapter) Ask(ctx context.Context, q string) (ui.Answer, error) {
	ans, err := a.asker.Ask(ctx, q)
	if err != nil {
		return ui.Answer{}, err
	}
	out := ui.Answer{Text: ans.Text}
	for i := len(ans.Queries) - 1; i >= 0; i-- {
		if qr := ans.Queries[i]; qr.SQL != "" && qr.Error == "" {
			out.SQL, out.Columns, out.Rows = qr.Executed, qr.Columns, qr.Rows
			if out.SQL == "" {
				out.SQL = qr.SQL
			}
			break
		}
	}
	return out, nil
}
