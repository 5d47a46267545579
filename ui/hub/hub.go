// Package hub fans live messages out to websocket clients.
//
// It follows the gorilla/websocket chat example: one goroutine (Run) owns the
// set of clients; every connection has one read pump and one write pump; a
// client whose bounded send queue stays full is dropped, so a slow or dead
// browser never slows the pipeline or the other clients. Publish never
// blocks: when the hub itself falls behind, messages are dropped and counted.
//
// Messages are JSON envelopes {"type": "...", "data": ...}. Types listed in
// Options.Coalesce (by default "stats") are not queued: each client keeps only
// the latest one of each such type, so a slow client gets coalesced updates
// instead of a backlog. When a client misses queued messages it is sent a
// {"type":"lagged","data":{"missed":N}} envelope so the page can catch up from
// the API.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Options configures a Hub. The zero value is usable: every zero field takes
// the default from DefaultOptions.
type Options struct {
	// SendQueue bounds the messages queued for one client.
	SendQueue int
	// MaxMissed is how many messages a client may miss because its queue was
	// full before it is dropped.
	MaxMissed int
	// Inbox bounds messages published but not yet handled by the hub
	// goroutine; beyond it Publish drops.
	Inbox int
	// WriteWait is the time allowed to write one message to the peer.
	WriteWait time.Duration
	// PongWait is the time allowed to read the next pong from the peer.
	PongWait time.Duration
	// PingPeriod is how often pings are sent; must be less than PongWait.
	PingPeriod time.Duration
	// MaxMessageSize bounds messages read from the peer. The page only sends
	// pongs and small control messages.
	MaxMessageSize int64
	// Coalesce lists message types of which a client only needs the latest.
	Coalesce []string
	// CheckOrigin decides whether a websocket upgrade is allowed. Nil means
	// SameOrigin.
	CheckOrigin func(r *http.Request) bool
	// Logger receives connection-level events at debug level.
	Logger *slog.Logger
}

// DefaultOptions returns the defaults used for zero Options fields.
func DefaultOptions() Options {
	return Options{
		SendQueue:      256,
		MaxMissed:      256,
		Inbox:          4096,
		WriteWait:      10 * time.Second,
		PongWait:       60 * time.Second,
		PingPeriod:     54 * time.Second, // (PongWait * 9) / 10
		MaxMessageSize: 4096,
		Coalesce:       []string{"stats"},
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.SendQueue <= 0 {
		o.SendQueue = d.SendQueue
	}
	if o.MaxMissed <= 0 {
		o.MaxMissed = d.MaxMissed
	}
	if o.Inbox <= 0 {
		o.Inbox = d.Inbox
	}
	if o.WriteWait <= 0 {
		o.WriteWait = d.WriteWait
	}
	if o.PongWait <= 0 {
		o.PongWait = d.PongWait
	}
	if o.PingPeriod <= 0 || o.PingPeriod >= o.PongWait {
		o.PingPeriod = o.PongWait * 9 / 10
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = d.MaxMessageSize
	}
	if o.Coalesce == nil {
		o.Coalesce = d.Coalesce
	}
	if o.CheckOrigin == nil {
		o.CheckOrigin = SameOrigin
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Stats are the hub's counters since it was created.
type Stats struct {
	Clients   int    `json:"clients"`
	Published uint64 `json:"published"`
	// Dropped counts messages Publish discarded because the hub was behind.
	Dropped uint64 `json:"dropped"`
	// Missed counts per-client messages not queued because a queue was full.
	Missed uint64 `json:"missed"`
	// Kicked counts clients dropped for being too slow.
	Kicked uint64 `json:"kicked"`
	// Connects counts clients registered, reconnections included.
	Connects uint64 `json:"connects"`
}

// closeGrace is how long Run waits, once stopped, for write pumps to send
// their close frames before it cuts the connections.
const closeGrace = time.Second

// ErrStopped is returned by ServeWS once the hub has stopped.
var ErrStopped = errors.New("hub stopped")

// Hub fans messages out to clients. Create it with New, run it with Run.
// Publish and ServeWS are safe for concurrent use.
type Hub struct {
	opts     Options
	coalesce map[string]bool
	upgrader websocket.Upgrader
	log      *slog.Logger

	// inbox carries marshalled envelopes from Publish to the hub goroutine.
	inbox      chan message
	register   chan *client
	unregister chan *client
	// stopped is closed when Run returns; it releases ServeWS callers.
	stopped chan struct{}
	// conns tracks the pumps of every connection so Run can wait for them.
	conns sync.WaitGroup
	// running guards against Run being called twice.
	running atomic.Bool

	mu sync.Mutex
	// closing is set when Run is returning; guarded by mu, which orders
	// conns.Add in ServeWS before conns.Wait in Run.
	closing bool

	clients                                    atomic.Int64
	published, dropped, missed, kick, connects atomic.Uint64
}

type message struct {
	typ  string
	data []byte
}

// New returns a hub; nothing runs until Run is called.
func New(opts Options) *Hub {
	opts = opts.withDefaults()
	h := &Hub{
		opts:       opts,
		coalesce:   map[string]bool{},
		log:        opts.Logger,
		inbox:      make(chan message, opts.Inbox),
		register:   make(chan *client),
		unregister: make(chan *client),
		stopped:    make(chan struct{}),
	}
	for _, t := range opts.Coalesce {
		h.coalesce[t] = true
	}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		CheckOrigin:     opts.CheckOrigin,
	}
	return h
}

// Envelope is the JSON shape of every message sent to clients.
type Envelope struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Publish sends v as a message of msgType to every client. It never blocks:
// v is marshalled in the caller's goroutine and handed to the hub if there is
// room, else dropped and counted. A value that cannot be marshalled is
// dropped and logged.
func (h *Hub) Publish(msgType string, v any) {
	b, err := json.Marshal(Envelope{Type: msgType, Data: v})
	if err != nil {
		h.log.Warn("hub: drop unmarshallable message", "type", msgType, "err", err)
		h.dropped.Add(1)
		return
	}
	h.PublishRaw(msgType, b)
}

// PublishRaw is Publish for an envelope already marshalled to JSON.
func (h *Hub) PublishRaw(msgType string, envelope []byte) {
	select {
	case h.inbox <- message{typ: msgType, data: envelope}:
		h.published.Add(1)
	default:
		h.dropped.Add(1)
	}
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Clients:   int(h.clients.Load()),
		Published: h.published.Load(),
		Dropped:   h.dropped.Load(),
		Missed:    h.missed.Load(),
		Kicked:    h.kick.Load(),
		Connects:  h.connects.Load(),
	}
}

// Run owns the clients until ctx is done, then closes every connection and
// waits for their pumps before returning. It may be called once.
func (h *Hub) Run(ctx context.Context) {
	if !h.running.CompareAndSwap(false, true) {
		panic("hub: Run called twice")
	}
	clients := map[*client]bool{}
	defer func() {
		h.mu.Lock()
		h.closing = true
		h.mu.Unlock()
		close(h.stopped)
		conns := make([]*websocket.Conn, 0, len(clients))
		for c := range clients {
			conns = append(conns, c.conn)
			h.remove(clients, c)
		}
		// The write pumps now send a close frame; a peer that does not
		// read gets CloseGrace before its connection is cut.
		done := make(chan struct{})
		go func() { h.conns.Wait(); close(done) }()
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			for _, c := range conns {
				c.Close() // unblocks a pump stuck in a write
			}
			<-done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-h.register:
			clients[c] = true
			h.clients.Add(1)
			h.connects.Add(1)
		case c := <-h.unregister:
			h.remove(clients, c)
		case m := <-h.inbox:
			for c := range clients {
				if !h.deliver(c, m) {
					h.kick.Add(1)
					h.log.Debug("hub: drop slow client", "remote", c.remote)
					h.remove(clients, c)
				}
			}
		}
	}
}

// deliver hands m to c without blocking and reports whether c may stay.
func (h *Hub) deliver(c *client, m message) bool {
	if h.coalesce[m.typ] {
		c.mu.Lock()
		c.latest[m.typ] = m.data
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return true
	}
	select {
	case c.send <- m.data:
		return true
	default:
		h.missed.Add(1)
		n := c.missed.Add(1)
		return n <= int64(h.opts.MaxMissed)
	}
}

// remove forgets c and closes its send queue, which ends its write pump.
func (h *Hub) remove(clients map[*client]bool, c *client) {
	if !clients[c] {
		return
	}
	delete(clients, c)
	h.clients.Add(-1)
	close(c.send)
}

// ServeWS upgrades the request to a websocket and registers the client. It
// returns once the connection's pumps are started; they are owned by the hub
// and end when the peer goes away, the client is dropped or Run returns.
// The caller authenticates the request; the Origin is checked here.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return ErrStopped
	}
	h.conns.Add(2) // the pumps, or undone below
	h.mu.Unlock()
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.conns.Add(-2)
		// The upgrader has already written the HTTP error.
		return fmt.Errorf("upgrade websocket: %w", err)
	}
	c := &client{
		hub:    h,
		conn:   conn,
		remote: r.RemoteAddr,
		send:   make(chan []byte, h.opts.SendQueue),
		wake:   make(chan struct{}, 1),
		latest: map[string][]byte{},
	}
	select {
	case h.register <- c:
	case <-h.stopped:
		conn.Close()
		h.conns.Add(-2)
		return ErrStopped
	}
	go c.writePump()
	go c.readPump()
	return nil
}

// client is one websocket connection.
type client struct {
	hub    *Hub
	conn   *websocket.Conn
	remote string
	// send is the bounded queue of envelopes; only the hub goroutine sends
	// on it and closes it.
	send chan []byte
	// wake tells the write pump a coalesced message is waiting in latest.
	wake chan struct{}
	// missed counts messages not queued since the last lagged notice.
	missed atomic.Int64

	mu sync.Mutex
	// latest holds, per coalesced type, the newest envelope not yet written;
	// guarded by mu.
	latest map[string][]byte
}

// readPump reads (and discards) the peer's messages so pongs and close
// frames are processed, and unregisters the client when the peer goes away.
func (c *client) readPump() {
	defer c.hub.conns.Done()
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.stopped:
		}
		c.conn.Close()
	}()
	c.conn.SetReadLimit(c.hub.opts.MaxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(c.hub.opts.PongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(c.hub.opts.PongWait))
	})
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseGoingAway, websocket.CloseNormalClosure, websocket.CloseNoStatusReceived) {
				c.hub.log.Debug("hub: read", "remote", c.remote, "err", err)
			}
			return
		}
	}
}

// writePump writes queued and coalesced messages and pings. It is the only
// writer on the connection.
func (c *client) writePump() {
	defer c.hub.conns.Done()
	ticker := time.NewTicker(c.hub.opts.PingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case m, ok := <-c.send:
			if !ok {
				_ = c.conn.SetWriteDeadline(time.Now().Add(min(c.hub.opts.WriteWait, closeGrace)))
				_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
				return
			}
			if err := c.write(m); err != nil {
				return
			}
			if err := c.flushLagged(); err != nil {
				return
			}
		case <-c.wake:
			if err := c.flushLatest(); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(c.hub.opts.WriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

func (c *client) write(m []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.hub.opts.WriteWait))
	return c.conn.WriteMessage(websocket.TextMessage, m)
}

// flushLatest writes the coalesced messages waiting for this client.
func (c *client) flushLatest() error {
	c.mu.Lock()
	pending := c.latest
	c.latest = make(map[string][]byte, len(pending))
	c.mu.Unlock()
	for _, m := range pending {
		if err := c.write(m); err != nil {
			return err
		}
	}
	return nil
}

// flushLagged tells the peer how many messages it missed, once the queue has
// drained, so it can catch up from the API.
func (c *client) flushLagged() error {
	if len(c.send) > 0 {
		return nil
	}
	n := c.missed.Swap(0)
	if n == 0 {
		return nil
	}
	b, _ := json.Marshal(Envelope{Type: "lagged", Data: map[string]int64{"missed": n}})
	return c.write(b)
}

// SameOrigin allows requests without an Origin header (non-browser clients,
// which must still authenticate) and browser requests whose Origin host equals
// the request's Host.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}
