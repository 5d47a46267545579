package llm

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-dev/vigil/query/internal/llmtest"
)

func TestMetricsCountRequestsAndTokens(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := llmtest.New(t, llmtest.Status(500), llmtest.Reply("ok"))
	c := client(t, s, Options{Metrics: m})
	if _, err := c.Chat(context.Background(), []Message{{Role: RoleUser, Content: "hi"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("chat", "error")); got != 1 {
		t.Errorf("failed requests = %v, want 1 (the 500)", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("chat", "ok")); got != 1 {
		t.Errorf("ok requests = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("prompt")); got != 11 {
		t.Errorf("prompt tokens = %v, want 11", got)
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("completion")); got != 7 {
		t.Errorf("completion tokens = %v, want 7", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice should fail, not double count")
	}
}
