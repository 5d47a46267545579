// Package ui serves the Vigil dashboard and its JSON API from the vigil
// binary: the page (embedded, see Assets), the API over the Options' data
// sources, and the live websocket fed by the Hub.
//
// Every request needs the access token: an "Authorization: Bearer" header, the
// vigil_token_<port> cookie, or a ?token= query parameter. A page load with a valid
// ?token= sets the cookie (HttpOnly, SameSite=Strict) and redirects to the
// same URL without the token, so the URL printed by URL works in a browser.
package ui

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-dev/vigil/ui/hub"
)

// Options configures a Server. Zero fields take the defaults of
// DefaultOptions; every data source may be nil.
type Options struct {
	// Listen is the host:port to serve on; port 0 picks a free port.
	Listen string
	// Token protects the page, the API and the websocket. Required.
	Token string
	// TLSCert and TLSKey are PEM files; both set means HTTPS.
	TLSCert, TLSKey string
	// Assets is the built front-end (index.html at its root). Nil means the
	// bundle embedded in the binary (Assets()).
	Assets fs.FS
	// AllowedOrigins are extra browser origins (scheme://host:port) allowed
	// to open the websocket and call the API besides the page's own.
	AllowedOrigins []string

	Events    EventSource
	Anomalies AnomalySource
	Incidents IncidentSource
	Asker     Asker
	Health    HealthSource

	// StatsInterval is how often Health is polled and pushed as "stats";
	// it is also the page's heartbeat.
	StatsInterval time.Duration
	// AskTimeout bounds one Ask call.
	AskTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown in Run.
	ShutdownTimeout time.Duration
	// Hub tunes the websocket hub; its CheckOrigin and Logger are set by the
	// server.
	Hub hub.Options

	Logger *slog.Logger
	// Registerer, if set, receives the hub's metrics.
	Registerer prometheus.Registerer
	// Metrics, if set, is served at GET /metrics (behind the token, like
	// the API: Prometheus sends it as a bearer token).
	Metrics http.Handler
}

// DefaultOptions returns the defaults used for zero Options fields.
func DefaultOptions() Options {
	return Options{
		Listen:          "127.0.0.1:8080",
		StatsInterval:   time.Second,
		AskTimeout:      2 * time.Minute,
		ShutdownTimeout: 5 * time.Second,
	}
}

// Server serves the dashboard. Create it with New, serve with Run.
type Server struct {
	opts    Options
	log     *slog.Logger
	hub     *hub.Hub
	handler http.Handler
	url     string
	// cookie is the name of the token cookie, unique per port.
	cookie string

	// ln is bound by New so the address is known (and a port in use fails)
	// before Run; Run or Close closes it.
	ln        net.Listener
	closeOnce sync.Once
	// runOnce guards against Run being called twice.
	runOnce sync.Once
}

// New checks opts, binds the listen address and builds the server. The
// error names the address when it is in use. Call Run to serve, or Close to
// release the address without serving.
func New(opts Options) (*Server, error) {
	d := DefaultOptions()
	if opts.Listen == "" {
		opts.Listen = d.Listen
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = d.StatsInterval
	}
	if opts.AskTimeout <= 0 {
		opts.AskTimeout = d.AskTimeout
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = d.ShutdownTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Token == "" {
		return nil, errors.New("ui: an access token is required")
	}
	if opts.Assets == nil {
		opts.Assets = Assets()
	}
	if _, err := fs.Stat(opts.Assets, "index.html"); err != nil {
		return nil, fmt.Errorf("ui: assets have no index.html: %w", err)
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("ui: TLS needs both a certificate and a key file")
	}
	var tlsConf *tls.Config
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("ui: load TLS key pair: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	s := &Server{opts: opts, log: opts.Logger}
	hubOpts := opts.Hub
	hubOpts.CheckOrigin = s.originAllowed
	hubOpts.Logger = opts.Logger
	s.hub = hub.New(hubOpts)
	if opts.Registerer != nil {
		if err := registerHubMetrics(opts.Registerer, s.hub); err != nil {
			return nil, fmt.Errorf("ui: register metrics: %w", err)
		}
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("ui: listen on %s: %w", opts.Listen, err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s.cookie = cookieName + "_" + port
	s.handler = s.routes()
	scheme := "http"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		scheme = "https"
	}
	s.ln = ln
	s.url = publicURL(scheme, ln.Addr(), opts.Listen, opts.Token)
	return s, nil
}

// publicURL is the URL to print: the bound port, the configured host (or
// 127.0.0.1 for an unspecified one) and the token.
func publicURL(scheme string, addr net.Addr, listen, token string) string {
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/", RawQuery: url.Values{"token": {token}}.Encode()}
	return u.String()
}

// URL is the dashboard's address with the token, ready to open in a browser.
func (s *Server) URL() string { return s.url }

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Hub is where the pipeline publishes live messages with
// (*hub.Hub).Publish(type, data); Publish never blocks. The page understands:
//
//	"event"          Event (or any map with "kind" and the row's columns)
//	"anomaly"        Anomaly
//	"incident"       Incident (new or changed; the list and detail refresh)
//	"summary_token"  SummaryToken (a piece of an incident summary)
//
// "stats" is published by the server itself from Options.Health.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Handler is the server's HTTP handler (auth included), for tests and for
// mounting elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Close releases the listener if Run was never called. It is safe to call
// more than once and after Run.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// Run serves until ctx is done, then shuts down gracefully: it stops taking
// requests, waits for those in flight (at most ShutdownTimeout), closes the
// websockets and stops the hub. It returns nil after a shutdown caused by
// ctx, or the error that stopped serving. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	err := errors.New("ui: Run called twice")
	s.runOnce.Do(func() { err = s.run(ctx) })
	return err
}

func (s *Server) run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	hubCtx, stopHub := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.hub.Run(hubCtx) }()
	go func() { defer wg.Done(); s.publishStats(hubCtx) }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(s.ln) }()
	s.log.Info("dashboard listening", "addr", s.ln.Addr().String())

	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		if e := srv.Shutdown(sctx); e != nil {
			err = fmt.Errorf("ui: shutdown: %w", e)
			_ = srv.Close()
		}
		cancel()
		<-serveErr
	case e := <-serveErr:
		err = fmt.Errorf("ui: serve %s: %w", s.ln.Addr(), e)
	}
	stopHub()
	wg.Wait()
	_ = s.Close()
	return err
}

// publishStats pushes Health (or, without a HealthSource, a bare heartbeat)
// to the hub every StatsInterval.
func (s *Server) publishStats(ctx context.Context) {
	t := time.NewTicker(s.opts.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := Stats{TS: time.Now().UTC(), Hub: s.hub.Stats()}
		if s.opts.Health != nil {
			hctx, cancel := context.WithTimeout(ctx, s.opts.StatsInterval)
			h, err := s.opts.Health.Health(hctx)
			cancel()
			if err != nil {
				s.log.Debug("ui: health", "err", err)
			} else {
				st.Health = &h
			}
		}
		s.hub.Publish("stats", st)
	}
}

// Stats is the data of a "stats" message: the platform's health (nil without
// a HealthSource) and the hub's own counters.
type Stats struct {
	TS     time.Time `json:"ts"`
	Health *Health   `json:"health"`
	Hub    hub.Stats `json:"hub"`
}

func registerHubMetrics(reg prometheus.Registerer, h *hub.Hub) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_ui_clients", Help: "Connected dashboard websocket clients."},
			func() float64 { return float64(h.Stats().Clients) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_ui_published_total", Help: "Messages published to the dashboard hub."},
			func() float64 { return float64(h.Stats().Published) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_ui_dropped_total", Help: "Messages the hub dropped because it was behind."},
			func() float64 { return float64(h.Stats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_ui_missed_total", Help: "Per-client messages not queued because the client was slow."},
			func() float64 { return float64(h.Stats().Missed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_ui_kicked_total", Help: "Dashboard clients dropped for being too slow."},
			func() float64 { return float64(h.Stats().Kicked) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
