package pipeline

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vigil-dev/vigil/collector"
)

// Publisher is the live hub as the pipeline sees it. Publish must not block.
type Publisher interface {
	Publish(msgType string, v any)
}

// Event is one row as the dashboard and the API see it: the kind plus the
// row's columns by name. Strings in it are telemetry, hence hostile: whoever
// renders them must treat them as text.
type Event map[string]any

// Live forwards a sample of each batch to the hub and keeps the most recent
// events of each kind for clients that connect or reconnect. It is the
// consumer that may lose data by design: per batch at most PerBatch rows go to
// the hub, and the rest are counted as coalesced.
type Live struct {
	pub      Publisher
	perBatch int
	keep     int

	mu sync.Mutex
	// recent holds, per kind, a ring of the last keep events; guarded by mu.
	recent map[collector.Kind]*ring
	// coalesced counts rows not forwarded to the hub; guarded by mu.
	coalesced uint64
}

// NewLive returns a Live sink publishing to pub. perBatch bounds rows sent
// per batch, keep the recent events retained per kind.
func NewLive(pub Publisher, perBatch, keep int) *Live {
	if perBatch <= 0 {
		perBatch = 50
	}
	if keep <= 0 {
		keep = 200
	}
	return &Live{pub: pub, perBatch: perBatch, keep: keep, recent: map[collector.Kind]*ring{}}
}

// Run implements Consumer.
func (l *Live) Run(_ context.Context, in <-chan collector.Batch) error {
	for b := range in {
		l.consume(b)
	}
	return nil
}

func (l *Live) consume(b collector.Batch) {
	defer b.Record.Release()
	n := int(b.Record.NumRows())
	// Rows are sent newest last, so take the tail of the batch.
	start := max(0, n-l.perBatch)
	events := make([]Event, 0, n-start)
	for i := start; i < n; i++ {
		events = append(events, RowEvent(b.Kind, b.Record, i))
	}
	l.mu.Lock()
	r := l.recent[b.Kind]
	if r == nil {
		r = &ring{buf: make([]Event, l.keep)}
		l.recent[b.Kind] = r
	}
	for _, e := range events {
		r.push(e)
	}
	l.coalesced += uint64(start)
	l.mu.Unlock()
	if l.pub != nil {
		for _, e := range events {
			l.pub.Publish("event", e)
		}
	}
}

// Recent returns up to n of the newest events of kind, newest first.
func (l *Live) Recent(kind collector.Kind, n int) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recent[kind]
	if r == nil {
		return nil
	}
	return r.newest(n)
}

// Coalesced is the number of rows not forwarded to the hub.
func (l *Live) Coalesced() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.coalesced
}

// RowEvent converts row i of rec to an Event. It goes through Arrow's own
// marshalling of each column so timestamps, lists and dictionaries come out
// as JSON-friendly values.
func RowEvent(kind collector.Kind, rec arrow.RecordBatch, i int) Event {
	e := make(Event, rec.NumCols()+1)
	e["kind"] = string(kind)
	for c, f := range rec.Schema().Fields() {
		e[f.Name] = rec.Column(c).GetOneForMarshal(i)
	}
	return e
}

type ring struct {
	buf  []Event
	next int
	full bool
}

func (r *ring) push(e Event) {
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) newest(n int) []Event {
	size := r.next
	if r.full {
		size = len(r.buf)
	}
	n = min(n, size)
	out := make([]Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}
