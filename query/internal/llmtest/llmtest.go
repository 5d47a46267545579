// Package llmtest is an OpenAI-compatible chat endpoint inside the test
// process: it plays scripted replies (JSON, streams, tool calls, HTTP
// errors, garbage) and records every request, for the tests of query/llm,
// query/summary and query.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Model is the model name every scripted reply reports.
const Model = "fake-model"

// Server answers the n-th request with the n-th reply; the last repeats.
type Server struct {
	*httptest.Server

	mu sync.Mutex
	// bodies are the request bodies in arrival order; mu guards them.
	bodies [][]byte
}

// New starts a server, closed when the test ends.
func New(t testing.TB, replies ...http.HandlerFunc) *Server {
	t.Helper()
	if len(replies) == 0 {
		t.Fatal("llmtest: no replies")
	}
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.bodies)
		s.bodies = append(s.bodies, b)
		s.mu.Unlock()
		replies[min(n, len(replies)-1)](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// BaseURL is what llm.Options.BaseURL takes.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Calls is the number of requests so far.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

// Body is the i-th request's body.
func (s *Server) Body(i int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[i]
}

// Request is the part of a chat request the tests look at.
type Request struct {
	Model         string `json:"model"`
	MaxTokens     int    `json:"max_tokens"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Messages []Message `json:"messages"`
	Tools    []struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
}

// Message is one request message.
type Message struct {
	Role       string `json:"role"`
	Content    string `json:"content"`
	ToolCallID string `json:"tool_call_id"`
}

// Request decodes the i-th request.
func (s *Server) Request(t testing.TB, i int) Request {
	t.Helper()
	var r Request
	if err := json.Unmarshal(s.Body(i), &r); err != nil {
		t.Fatalf("llmtest: request %d: %v", i, err)
	}
	return r
}

// Status answers with an OpenAI-style error and the HTTP status code.
func Status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"message":"status %d","type":"test"}}`, code)
	}
}

// Raw answers 200 with body as it is (malformed JSON, say).
func Raw(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

// Reply answers with a complete assistant message; usage 11 prompt and 7
// completion tokens.
func Reply(content string) http.HandlerFunc {
	return Raw(fmt.Sprintf(`{"id":"x","model":%q,"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`, Model, content))
}

// Call is one tool call: a function name and its JSON arguments.
type Call struct{ Name, Args string }

// ToolCalls answers with tool calls (ids call_0, call_1, …); usage 5 and 3.
func ToolCalls(calls ...Call) http.HandlerFunc {
	var parts []string
	for i, c := range calls {
		parts = append(parts, fmt.Sprintf(`{"id":"call_%d","type":"function","function":{"name":%q,"arguments":%q}}`, i, c.Name, c.Args))
	}
	return Raw(fmt.Sprintf(`{"model":%q,"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","tool_calls":[%s]}}],"usage":{"prompt_tokens":5,"completion_tokens":3}}`,
		Model, strings.Join(parts, ",")))
}

// SQL is a run_sql call.
func SQL(sql string) Call {
	b, _ := json.Marshal(map[string]string{"sql": sql})
	return Call{"run_sql", string(b)}
}

// SSE streams raw data lines as server-sent events.
func SSE(lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, l := range lines {
			fmt.Fprintf(w, "data: %s\n\n", l)
			w.(http.Flusher).Flush()
		}
	}
}

// Delta is one streamed content chunk.
func Delta(content string) string {
	return fmt.Sprintf(`{"id":"x","model":%q,"choices":[{"index":0,"delta":{"content":%q}}]}`, Model, content)
}

// Stream streams the tokens, a stop, usage (40 prompt tokens, one
// completion token per piece) and [DONE].
func Stream(tokens ...string) http.HandlerFunc {
	lines := make([]string, 0, len(tokens)+3)
	for _, t := range tokens {
		lines = append(lines, Delta(t))
	}
	lines = append(lines,
		fmt.Sprintf(`{"id":"x","model":%q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, Model),
		fmt.Sprintf(`{"id":"x","model":%q,"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":%d}}`, Model, len(tokens)),
		"[DONE]")
	return SSE(lines...)
}

// Words splits text into tokens for Stream, spaces kept.
func Words(text string) []string { return strings.SplitAfter(text, " ") }

// Slow answers nothing for d, or until the client gives up.
func Slow(d time.Duration) http.HandlerFunc {
	return func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(d):
		}
	}
}
