package llm

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the clients of one process spend at the endpoint.
// Create one with NewMetrics and hand it to every client's Options, so the
// summarizer and the question answerer add to the same series.
type Metrics struct {
	requests *prometheus.CounterVec // by kind (chat, stream) and result (ok, error)
	latency  *prometheus.HistogramVec
	tokens   *prometheus.CounterVec // by direction (prompt, completion)
}

// NewMetrics registers the LLM metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_llm_requests_total", Help: "LLM requests (retries included), by kind and result."}, []string{"kind", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_llm_request_seconds", Help: "Time to the LLM's complete answer, successful requests.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 10)}, []string{"kind"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_llm_tokens_total", Help: "Tokens the endpoint reported, by direction."}, []string{"direction"}),
	}
	// Every series exists from the start, at zero, so dashboards and
	// alerts see "no requests" rather than "no data".
	for _, kind := range []string{"chat", "stream"} {
		for _, result := range []string{"ok", "error"} {
			m.requests.WithLabelValues(kind, result)
		}
	}
	m.tokens.WithLabelValues("prompt")
	m.tokens.WithLabelValues("completion")
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.tokens} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one attempt; a nil Metrics records nothing.
func (m *Metrics) observe(kind string, start time.Time, u Usage, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.requests.WithLabelValues(kind, "error").Inc()
		return
	}
	m.requests.WithLabelValues(kind, "ok").Inc()
	m.latency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	m.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
}
