package ui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "s3cret-token"

// startServer runs a server on a free port until the test ends.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Token == "" {
		opts.Token = testToken
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after cancel")
		}
	})
	return s
}

func base(s *Server) string { return "http://" + s.Addr().String() }

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t *testing.T, method, u string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAuth(t *testing.T) {
	src := newFakeSource()
	s := startServer(t, Options{Events: src, Incidents: src})
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	cookie := map[string]string{"Cookie": s.cookie + "=" + testToken}
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		want   int
	}{
		{"page without token", "GET", "/", nil, 401},
		{"asset without token", "GET", "/app.js", nil, 401},
		{"api without token", "GET", "/api/incidents", nil, 401},
		{"ws without token", "GET", "/ws", nil, 401},
		{"wrong bearer", "GET", "/api/incidents", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"wrong query token", "GET", "/api/incidents?token=nope", nil, 401},
		{"wrong cookie", "GET", "/", map[string]string{"Cookie": s.cookie + "=nope"}, 401},
		{"bearer", "GET", "/api/incidents", bearer, 200},
		{"cookie", "GET", "/api/incidents", cookie, 200},
		{"query token on api", "GET", "/api/incidents?token=" + testToken, nil, 200},
		{"page with cookie", "GET", "/", cookie, 200},
		{"asset with cookie", "GET", "/app.js", cookie, 200},
		{"cross-origin api", "GET", "/api/incidents", map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://evil.example"}, 403},
		{"cross-origin post", "POST", "/api/ask", map[string]string{"Cookie": s.cookie + "=" + testToken, "Origin": "http://evil.example"}, 403},
		{"same-origin api", "GET", "/api/incidents", map[string]string{"Authorization": "Bearer " + testToken, "Origin": base(s)}, 200},
		{"unknown api", "GET", "/api/nope", bearer, 404},
		{"incident not found", "GET", "/api/incidents/nope", bearer, 404},
		{"source not wired", "GET", "/api/anomalies", bearer, 503},
		{"ask not wired", "POST", "/api/ask", bearer, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, base(s)+tc.path, tc.hdr, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.want, body)
			}
			if tc.want == 401 && strings.Contains(body, testToken) {
				t.Fatal("401 body leaks the token")
			}
		})
	}
}

func TestQueryTokenSetsCookieAndRedirects(t *testing.T) {
	s := startServer(t, Options{})
	u, _ := url.Parse(s.URL())
	if u.Query().Get("token") != testToken || u.Host != s.Addr().String() {
		t.Fatalf("URL() = %s", s.URL())
	}
	resp, _ := do(t, "GET", s.URL(), nil, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("status %d location %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == s.cookie {
			c = k
		}
	}
	if c == nil || c.Value != testToken || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie %+v, want HttpOnly SameSite=Strict with the token", c)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := startServer(t, Options{})
	for _, path := range []string{"/", "/app.js", "/api/config", "/nope"} {
		resp, _ := do(t, "GET", base(s)+path, map[string]string{"Authorization": "Bearer " + testToken}, "")
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
	}
}

func TestEmbeddedPageHasNoInlineScript(t *testing.T) {
	b, err := fsReadFile(Assets(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if !strings.Contains(page, `<script src="app.js" defer></script>`) {
		t.Fatalf("index.html does not load app.js:\n%s", page)
	}
	if strings.Count(page, "<script") != 1 || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Fatalf("index.html has inline script or remote references:\n%s", page)
	}
	js, err := fsReadFile(Assets(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func TestAPI(t *testing.T) {
	src := newFakeSource()
	src.add(Event{"kind": "exec", "pid": 1, "argv": []string{"a"}})
	s := startServer(t, Options{Events: src, Anomalies: src, Incidents: src, Asker: src, Health: src})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	get := func(path string, v any) {
		t.Helper()
		resp, body := do(t, "GET", base(s)+path, auth, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s: content type %q", path, ct)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var cfg Config
	get("/api/config", &cfg)
	if !cfg.Events || !cfg.Anomalies || !cfg.Incidents || !cfg.Ask || !cfg.Health {
		t.Errorf("config %+v", cfg)
	}
	var ev []Event
	get("/api/events?kind=exec&n=10", &ev)
	if len(ev) != 1 {
		t.Errorf("events %v", ev)
	}
	get("/api/events?kind=connect", &ev)
	if ev == nil || len(ev) != 0 {
		t.Errorf("no events must be [], got %v", ev)
	}
	var an []Anomaly
	get("/api/anomalies?severity=high", &an)
	if len(an) != 2 {
		t.Errorf("anomalies ≥ high: %d", len(an))
	}
	var d IncidentDetail
	get("/api/incidents/inc-1", &d)
	if d.ID != "inc-1" || len(d.ProcessTree) == 0 || d.SQL[SectionTimeline] == "" {
		t.Errorf("detail %+v", d)
	}
	var st Stats
	get("/api/health", &st)
	if st.Health == nil || st.Health.ClickHouse.State != StateOK {
		t.Errorf("health %+v", st)
	}
	resp, body := do(t, "POST", base(s)+"/api/ask", auth, `{"question":"who talks to 203.0.113.7?"}`)
	var a Answer
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &a) != nil || a.SQL == "" {
		t.Errorf("ask: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", base(s)+"/api/ask", auth, `{"question":"  "}`); resp.StatusCode != 400 {
		t.Errorf("empty question: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", base(s)+"/api/anomalies?severity=bogus", auth, ""); resp.StatusCode != 400 {
		t.Errorf("bad severity: %d", resp.StatusCode)
	}
}

func TestWebsocketAuthAndOrigin(t *testing.T) {
	s := startServer(t, Options{StatsInterval: 50 * time.Millisecond})
	wsURL := "ws://" + s.Addr().String() + "/ws"
	dialWS := func(hdr http.Header) (*websocket.Conn, int, error) {
		c, resp, err := websocket.DefaultDialer.Dial(wsURL, hdr)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		return c, code, err
	}
	if _, code, err := dialWS(nil); err == nil || code != 401 {
		t.Fatalf("no token: err %v status %d, want 401", err, code)
	}
	evil := http.Header{"Cookie": {s.cookie + "=" + testToken}, "Origin": {"http://evil.example"}}
	if _, code, err := dialWS(evil); err == nil || code != 403 {
		t.Fatalf("foreign origin: err %v status %d, want 403", err, code)
	}
	good := http.Header{"Cookie": {s.cookie + "=" + testToken}, "Origin": {base(s)}}
	c, _, err := dialWS(good)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Stats arrive on their own: they are the heartbeat.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var e struct {
		Type string `json:"type"`
		Data Stats  `json:"data"`
	}
	if err := c.ReadJSON(&e); err != nil || e.Type != "stats" || e.Data.Hub.Clients != 1 {
		t.Fatalf("first message %+v, err %v", e, err)
	}
	// Messages bigger than the read limit close the connection.
	_ = c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 64<<10)))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "EOF") {
				t.Fatalf("after oversized message: %v", err)
			}
			break
		}
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Options{Listen: ln.Addr().String(), Token: testToken})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("err %v, want one naming %s", err, ln.Addr())
	}
}

func TestOptionsErrors(t *testing.T) {
	if _, err := New(Options{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("no token accepted")
	}
	if _, err := New(Options{Listen: "127.0.0.1:0", Token: "x", TLSCert: "a.pem"}); err == nil {
		t.Error("cert without key accepted")
	}
	if _, err := New(Options{Listen: "127.0.0.1:0", Token: "x", Assets: fstest.MapFS{}}); err == nil {
		t.Error("assets without index.html accepted")
	}
	s, err := New(Options{Listen: "127.0.0.1:0", Token: "x", Assets: fstest.MapFS{"index.html": {Data: []byte("hi")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRunShutsDownWithClients(t *testing.T) {
	s, err := New(Options{Listen: "127.0.0.1:0", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr().String()+"/ws?token="+testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func fsReadFile(fsys fs.FS, name string) ([]byte, error) { return fs.ReadFile(fsys, name) }

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, err := New(Options{Listen: "127.0.0.1:0", Token: testToken, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Hub().Publish("event", 1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{"vigil_ui_clients", "vigil_ui_published_total", "vigil_ui_dropped_total", "vigil_ui_missed_total", "vigil_ui_kicked_total"} {
		if !got[name] {
			t.Errorf("metric %s not registered (have %v)", name, got)
		}
	}
}
