package ui

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-dev/vigil/ui/hub"
)

const (
	// cookieName is suffixed with the port: browsers share cookies between
	// ports of one host, and two vigils on one machine must not overwrite
	// each other's.
	cookieName = "vigil_token"
	// maxBody bounds request bodies (the Ask question).
	maxBody = 16 << 10
	// maxN bounds how many rows one API call returns.
	maxN = 1000
)

// contentSecurityPolicy allows only the page's own script, style and
// websocket: no inline script, no eval, no framing, nothing from elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/config", s.apiConfig)
	mux.HandleFunc("GET /api/health", s.apiHealth)
	mux.HandleFunc("GET /api/events", s.apiEvents)
	mux.HandleFunc("GET /api/anomalies", s.apiAnomalies)
	mux.HandleFunc("GET /api/incidents", s.apiIncidents)
	mux.HandleFunc("GET /api/incidents/{id}", s.apiIncident)
	mux.HandleFunc("POST /api/ask", s.apiAsk)
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API")
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if err := s.hub.ServeWS(w, r); err != nil && !errors.Is(err, hub.ErrStopped) {
			s.log.Debug("ui: websocket", "remote", r.RemoteAddr, "err", err)
		}
	})
	files := http.FileServerFS(s.opts.Assets)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		files.ServeHTTP(w, r)
	})
	return s.secure(s.auth(mux))
}

// secure sets the headers every response carries.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// The first URL carries the token: never leak it in a Referer.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// auth lets a request through with the token in a Bearer header, the cookie
// or the query; a page load with the query token sets the cookie and
// redirects to the URL without it. Cross-origin browser requests are refused
// before the token is looked at.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(bearer) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(s.cookie); err == nil && s.tokenOK(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		if q := r.URL.Query(); q.Has("token") && s.tokenOK(q.Get("token")) {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/ws" {
				http.SetCookie(w, &http.Cookie{
					Name: s.cookie, Value: s.opts.Token, Path: "/",
					HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
				})
				q.Del("token")
				u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
				http.Redirect(w, r, u.String(), http.StatusSeeOther)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeError(w, http.StatusUnauthorized, "token required")
			return
		}
		http.Error(w, "401 unauthorized: open the dashboard with the URL vigil printed (it carries ?token=…), or send Authorization: Bearer <token>", http.StatusUnauthorized)
	})
}

func (s *Server) tokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

// originAllowed accepts requests without Origin (non-browser clients; they
// still need the token), same-origin ones and Options.AllowedOrigins. A
// browser sends Origin on websocket upgrades and on cross-origin or
// state-changing fetches.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || hub.SameOrigin(r) {
		return true
	}
	return slices.Contains(s.opts.AllowedOrigins, origin)
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

func notAvailable(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, "not available")
}

// sourceError answers for an error from a data source without leaking more
// than its message.
func (s *Server) sourceError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err.Error())
	default:
		s.log.Warn("ui: api", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
	}
}

// queryInt reads a bounded positive integer query parameter.
func queryInt(r *http.Request, name string, def int) int {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || n <= 0 {
		return def
	}
	return min(n, maxN)
}

// Config tells the page which views have a data source.
type Config struct {
	Events     bool     `json:"events"`
	Anomalies  bool     `json:"anomalies"`
	Incidents  bool     `json:"incidents"`
	Ask        bool     `json:"ask"`
	Health     bool     `json:"health"`
	Severities []string `json:"severities"`
}

func (s *Server) apiConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Config{
		Events:     s.opts.Events != nil,
		Anomalies:  s.opts.Anomalies != nil,
		Incidents:  s.opts.Incidents != nil,
		Ask:        s.opts.Asker != nil,
		Health:     s.opts.Health != nil,
		Severities: Severities,
	})
}

func (s *Server) apiHealth(w http.ResponseWriter, r *http.Request) {
	st := Stats{Hub: s.hub.Stats()}
	if s.opts.Health != nil {
		h, err := s.opts.Health.Health(r.Context())
		if err != nil {
			s.sourceError(w, r, err)
			return
		}
		st.TS, st.Health = h.TS, &h
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	if s.opts.Events == nil {
		notAvailable(w)
		return
	}
	kind := r.URL.Query().Get("kind")
	if kind == "" {
		writeError(w, http.StatusBadRequest, "kind required")
		return
	}
	ev, err := s.opts.Events.RecentEvents(r.Context(), kind, queryInt(r, "n", 200))
	if err != nil {
		s.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ev))
}

func (s *Server) apiAnomalies(w http.ResponseWriter, r *http.Request) {
	if s.opts.Anomalies == nil {
		notAvailable(w)
		return
	}
	q := r.URL.Query()
	f := AnomalyFilter{
		Host:      q.Get("host"),
		Container: q.Get("container"),
		Process:   q.Get("process"),
		Severity:  q.Get("severity"),
		Limit:     queryInt(r, "limit", 200),
	}
	if f.Severity != "" && !slices.Contains(Severities, f.Severity) {
		writeError(w, http.StatusBadRequest, "unknown severity")
		return
	}
	a, err := s.opts.Anomalies.Anomalies(r.Context(), f)
	if err != nil {
		s.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(a))
}

func (s *Server) apiIncidents(w http.ResponseWriter, r *http.Request) {
	if s.opts.Incidents == nil {
		notAvailable(w)
		return
	}
	f := IncidentFilter{State: r.URL.Query().Get("state"), Limit: queryInt(r, "limit", 200)}
	inc, err := s.opts.Incidents.Incidents(r.Context(), f)
	if err != nil {
		s.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(inc))
}

func (s *Server) apiIncident(w http.ResponseWriter, r *http.Request) {
	if s.opts.Incidents == nil {
		notAvailable(w)
		return
	}
	d, err := s.opts.Incidents.Incident(r.Context(), r.PathValue("id"))
	if err != nil {
		s.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// AskRequest is the body of POST /api/ask.
type AskRequest struct {
	Question string `json:"question"`
}

func (s *Server) apiAsk(w http.ResponseWriter, r *http.Request) {
	if s.opts.Asker == nil {
		notAvailable(w)
		return
	}
	var req AskRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be {\"question\": \"…\"}")
		return
	}
	req.Question = strings.TrimSpace(req.Question)
	if req.Question == "" {
		writeError(w, http.StatusBadRequest, "question is empty")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.AskTimeout)
	defer cancel()
	a, err := s.opts.Asker.Ask(ctx, req.Question)
	if err != nil {
		s.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// nonNil makes empty lists marshal as [] rather than null.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
