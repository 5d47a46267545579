package llm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/vigil-dev/vigil/query/internal/llmtest"
)

func client(t *testing.T, s *llmtest.Server, o Options) *Client {
	t.Helper()
	o.BaseURL = s.BaseURL()
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var hello = []Message{{Role: RoleUser, Content: "hi"}}

func TestNotConfigured(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("err = %v, want ErrNotConfigured", err)
	}
}

func TestRequestShape(t *testing.T) {
	var got *http.Request
	reply := llmtest.Reply("ok")
	s := llmtest.New(t, func(w http.ResponseWriter, r *http.Request) { got = r; reply(w, r) })
	c := client(t, s, Options{Model: "llama3", APIKey: "sk-test", MaxTokens: 99})
	tools := []Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "run_sql", Parameters: json.RawMessage(`{"type":"object"}`)}}}
	r, err := c.Chat(context.Background(), hello, tools)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/v1/chat/completions" {
		t.Errorf("request %s %s", got.Method, got.URL.Path)
	}
	if h := got.Header.Get("Authorization"); h != "Bearer sk-test" {
		t.Errorf("Authorization = %q", h)
	}
	body := s.Request(t, 0)
	if body.Model != "llama3" || body.MaxTokens != 99 || body.Stream || len(body.Messages) != 1 || body.Messages[0].Content != "hi" ||
		len(body.Tools) != 1 || body.Tools[0].Function.Name != "run_sql" {
		t.Errorf("body = %+v", body)
	}
	if r.Message.Content != "ok" || r.Model != llmtest.Model || r.Usage != (Usage{11, 7}) {
		t.Errorf("reply = %+v", r)
	}
}

func TestToolCallReply(t *testing.T) {
	s := llmtest.New(t, llmtest.ToolCalls(llmtest.SQL("SELECT 1")))
	r, err := client(t, s, Options{}).Chat(context.Background(), hello, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Message.ToolCalls) != 1 || r.Message.ToolCalls[0].Function.Name != "run_sql" || r.Message.ToolCalls[0].ID != "call_0" ||
		r.Message.ToolCalls[0].Function.Arguments != `{"sql":"SELECT 1"}` || r.FinishReason != "tool_calls" {
		t.Errorf("reply = %+v", r)
	}
}

func TestRetries(t *testing.T) {
	ok := llmtest.Reply("x")
	tests := []struct {
		name    string
		replies []http.HandlerFunc
		retries int
		wantErr bool
		calls   int
	}{
		{"ok", []http.HandlerFunc{ok}, 3, false, 1},
		{"429 then ok", []http.HandlerFunc{llmtest.Status(429), llmtest.Status(429), ok}, 3, false, 3},
		{"500 then ok", []http.HandlerFunc{llmtest.Status(500), llmtest.Status(503), ok}, 3, false, 3},
		{"500 forever", []http.HandlerFunc{llmtest.Status(500)}, 2, true, 3},
		{"no retries", []http.HandlerFunc{llmtest.Status(429)}, -1, true, 1},
		{"400 not retried", []http.HandlerFunc{llmtest.Status(400)}, 3, true, 1},
		{"401 not retried", []http.HandlerFunc{llmtest.Status(401)}, 3, true, 1},
		{"timeout then ok", []http.HandlerFunc{llmtest.Slow(2 * time.Second), ok}, 3, false, 2},
		{"malformed json not retried", []http.HandlerFunc{llmtest.Raw(`{"choices":[{mess}]}`)}, 3, true, 1},
		// A body cut short looks like a dropped connection: worth a retry.
		{"truncated json retried", []http.HandlerFunc{llmtest.Raw(`{"choices":[{"mess`), ok}, 3, false, 2},
		{"no choices", []http.HandlerFunc{llmtest.Raw(`{"choices":[]}`)}, 3, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.New(t, tt.replies...)
			r, err := client(t, s, Options{MaxRetries: tt.retries, Timeout: 200 * time.Millisecond}).Chat(context.Background(), hello, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && r.Message.Content != "x" {
				t.Errorf("content %q", r.Message.Content)
			}
			if n := s.Calls(); n != tt.calls {
				t.Errorf("%d requests, want %d", n, tt.calls)
			}
		})
	}
}

func TestBackoffGrows(t *testing.T) {
	var stamps []time.Time
	fail := llmtest.Status(503)
	s := llmtest.New(t, func(w http.ResponseWriter, r *http.Request) { stamps = append(stamps, time.Now()); fail(w, r) })
	if _, err := client(t, s, Options{MaxRetries: 3, Backoff: 20 * time.Millisecond}).Chat(context.Background(), hello, nil); err == nil {
		t.Fatal("want error")
	}
	if len(stamps) != 4 {
		t.Fatalf("%d attempts", len(stamps))
	}
	// Waits are 20ms, 40ms, 80ms ±50%: the last gap must exceed the first
	// one's upper bound.
	if g0, g2 := stamps[1].Sub(stamps[0]), stamps[3].Sub(stamps[2]); g0 < 10*time.Millisecond || g2 < 40*time.Millisecond {
		t.Errorf("gaps %v and %v do not back off", g0, g2)
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	s := llmtest.New(t, llmtest.Status(503))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	_, err := client(t, s, Options{MaxRetries: 100, Backoff: 50 * time.Millisecond}).Chat(ctx, hello, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if n := s.Calls(); n > 5 {
		t.Errorf("%d attempts after cancel", n)
	}
}

func TestStream(t *testing.T) {
	t.Run("tokens in order with usage", func(t *testing.T) {
		s := llmtest.New(t, llmtest.Status(429), llmtest.Stream("Title: ", "curl", " spike"))
		var toks []string
		r, err := client(t, s, Options{}).Stream(context.Background(), hello, func(tok string) { toks = append(toks, tok) })
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(toks, "|") != "Title: |curl| spike" || r.Message.Content != "Title: curl spike" {
			t.Errorf("tokens %q, content %q", toks, r.Message.Content)
		}
		if r.Usage != (Usage{40, 3}) || r.Model != llmtest.Model || r.FinishReason != "stop" {
			t.Errorf("reply %+v", r)
		}
		if body := s.Request(t, 1); !body.Stream || body.StreamOptions == nil || !body.StreamOptions.IncludeUsage {
			t.Errorf("request body %+v", body)
		}
	})
	t.Run("failure after first token is not retried", func(t *testing.T) {
		s := llmtest.New(t, llmtest.SSE(llmtest.Delta("partial"), `{not json`))
		var n int
		if _, err := client(t, s, Options{}).Stream(context.Background(), hello, func(string) { n++ }); err == nil {
			t.Fatal("want error")
		}
		if s.Calls() != 1 || n != 1 {
			t.Errorf("%d requests, %d tokens", s.Calls(), n)
		}
	})
	t.Run("500 before stream is retried", func(t *testing.T) {
		s := llmtest.New(t, llmtest.Status(500), llmtest.Stream("ok"))
		r, err := client(t, s, Options{}).Stream(context.Background(), hello, nil)
		if err != nil || r.Message.Content != "ok" || s.Calls() != 2 {
			t.Fatalf("err %v, reply %+v, %d calls", err, r, s.Calls())
		}
	})
}
