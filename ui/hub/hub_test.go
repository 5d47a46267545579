package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startHub runs a hub behind an httptest server until the test ends.
func startHub(t *testing.T, opts Options) (*Hub, string) {
	t.Helper()
	h := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeWS(w, r)
	}))
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, u string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v (resp %v)", u, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClients waits until the hub has registered n clients.
func waitClients(t *testing.T, h *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Clients != n {
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d clients, want %d", h.Stats().Clients, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type env struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func read(t *testing.T, c *websocket.Conn) env {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var e env
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("unmarshal %q: %v", b, err)
	}
	return e
}

func TestFanOut(t *testing.T) {
	h, u := startHub(t, Options{})
	conns := []*websocket.Conn{dial(t, u, nil), dial(t, u, nil), dial(t, u, nil)}
	waitClients(t, h, 3)
	for i := range 10 {
		h.Publish("event", map[string]int{"i": i})
	}
	for ci, c := range conns {
		for i := range 10 {
			e := read(t, c)
			var d map[string]int
			_ = json.Unmarshal(e.Data, &d)
			if e.Type != "event" || d["i"] != i {
				t.Fatalf("client %d message %d: got %s %s", ci, i, e.Type, e.Data)
			}
		}
	}
}

func TestSlowClientDoesNotSlowOthers(t *testing.T) {
	h, u := startHub(t, Options{SendQueue: 32, MaxMissed: 32, WriteWait: time.Second})
	stuck := dial(t, u, nil) // never reads
	_ = stuck
	fast := dial(t, u, nil)
	waitClients(t, h, 2)

	// Enough bytes to fill the stuck client's socket buffers several times.
	payload := strings.Repeat("x", 32<<10)
	const n = 2000
	var got atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for got.Load() < n {
			_ = fast.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := fast.ReadMessage(); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	var slowest time.Duration
	for i := range n {
		// The publisher goes at the fast client's pace (it stays at most 16
		// behind), never at the stuck one's.
		deadline := time.Now().Add(10 * time.Second)
		for int64(i)-got.Load() > 16 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		start := time.Now()
		h.Publish("event", payload)
		slowest = max(slowest, time.Since(start))
	}
	<-readDone
	if got.Load() != n {
		t.Fatalf("fast client got %d of %d messages; stats %+v", got.Load(), n, h.Stats())
	}
	// A Publish blocked on the stuck client would wait forever; the bound
	// is loose because -race on a busy machine stalls goroutines for a while.
	if slowest > 2*time.Second {
		t.Errorf("slowest Publish took %v; it must not block", slowest)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Kicked != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stuck client not dropped: %+v", h.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := h.Stats(); s.Clients != 1 || s.Dropped != 0 {
		t.Fatalf("stats %+v, want 1 client and nothing dropped by Publish", s)
	}
}

// TestStuckClientQueueBounded drives the hub goroutine's delivery directly:
// a client whose write pump never drains keeps at most SendQueue messages and
// is removed after MaxMissed more.
func TestStuckClientQueueBounded(t *testing.T) {
	h := New(Options{SendQueue: 8, MaxMissed: 100})
	c := &client{hub: h, send: make(chan []byte, 8), wake: make(chan struct{}, 1), latest: map[string][]byte{}}
	clients := map[*client]bool{c: true}
	h.clients.Add(1)
	kickedAt := -1
	for i := range 1000 {
		if !clients[c] {
			break
		}
		if !h.deliver(c, message{typ: "event", data: []byte(`{}`)}) {
			kickedAt = i
			h.remove(clients, c)
		}
		if len(c.send) > cap(c.send) {
			t.Fatalf("queue %d > cap %d", len(c.send), cap(c.send))
		}
	}
	if kickedAt != 8+100 {
		t.Fatalf("client dropped at message %d, want %d", kickedAt, 108)
	}
	// Coalesced types never grow the queue: the latest one wins.
	c2 := &client{hub: h, send: make(chan []byte, 8), wake: make(chan struct{}, 1), latest: map[string][]byte{}}
	for i := range 1000 {
		b, _ := json.Marshal(i)
		if !h.deliver(c2, message{typ: "stats", data: b}) {
			t.Fatal("client dropped for coalesced messages")
		}
	}
	if len(c2.send) != 0 || len(c2.latest) != 1 || string(c2.latest["stats"]) != "999" {
		t.Fatalf("coalesced: queue %d latest %q", len(c2.send), c2.latest)
	}
}

func TestCoalescedStatsReachClient(t *testing.T) {
	h, u := startHub(t, Options{})
	c := dial(t, u, nil)
	waitClients(t, h, 1)
	h.Publish("stats", map[string]int{"n": 1})
	e := read(t, c)
	if e.Type != "stats" || string(e.Data) != `{"n":1}` {
		t.Fatalf("got %s %s", e.Type, e.Data)
	}
}

func TestPublishNeverBlocks(t *testing.T) {
	h := New(Options{Inbox: 10}) // not running: nobody drains the inbox
	done := make(chan struct{})
	go func() {
		for range 10000 {
			h.Publish("event", 1)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked")
	}
	if s := h.Stats(); s.Published != 10 || s.Dropped != 9990 {
		t.Fatalf("stats %+v", s)
	}
	h.Publish("event", func() {}) // cannot be marshalled: dropped, not panicking
}

func TestOriginCheck(t *testing.T) {
	_, u := startHub(t, Options{})
	host := strings.TrimPrefix(u, "ws://")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"http://evil.example", false},
		{"http://" + host + ".evil.example", false},
	}
	for _, tc := range cases {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(u, hdr)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if !tc.ok && resp != nil && resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: status %d, want 403", tc.origin, resp.StatusCode)
		}
	}
}

func TestRunStopsClients(t *testing.T) {
	h := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = h.ServeWS(w, r) }))
	defer srv.Close()
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	waitClients(t, h, 1)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after stop: %v, want close going away", err)
	}
}

// TestRunStopsWithStuckClient: a peer that stops reading must not hold up
// shutdown for long, even when its write pump is blocked in a write.
func TestRunStopsWithStuckClient(t *testing.T) {
	h := New(Options{SendQueue: 1024, MaxMissed: 1 << 20, WriteWait: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = h.ServeWS(w, r) }))
	defer srv.Close()
	_ = dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), nil) // never reads
	waitClients(t, h, 1)
	payload := strings.Repeat("x", 64<<10)
	for range 500 { // 32 MB: far more than the socket buffers hold
		h.Publish("event", payload)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}
