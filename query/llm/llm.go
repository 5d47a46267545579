// Package llm talks to any OpenAI-compatible chat endpoint (OpenAI, Azure
// OpenAI, Ollama, vLLM, llama.cpp's server) through go-openai, adding what
// Vigil needs around it: a per-attempt timeout, retries with exponential
// backoff and jitter on 429, 5xx and network errors, streaming with a token
// callback, and token accounting.
package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Message and Tool are go-openai's types: the request shape is the OpenAI
// API's, and re-declaring it would be a second copy of one fact.
type (
	Message  = openai.ChatCompletionMessage
	Tool     = openai.Tool
	ToolCall = openai.ToolCall
)

// Roles, re-exported so callers need not import go-openai.
const (
	RoleSystem    = openai.ChatMessageRoleSystem
	RoleUser      = openai.ChatMessageRoleUser
	RoleAssistant = openai.ChatMessageRoleAssistant
	RoleTool      = openai.ChatMessageRoleTool
)

// DefaultBaseURL is used when only an API key is configured.
const DefaultBaseURL = "https://api.openai.com/v1"

// Options configures a Client. cmd/ fills it from the config file, flags and
// VIGIL_LLM_BASE_URL, VIGIL_LLM_MODEL and OPENAI_API_KEY.
type Options struct {
	// BaseURL is the endpoint including /v1, e.g. http://localhost:11434/v1
	// for Ollama. Empty with an APIKey means DefaultBaseURL; empty without
	// one means no LLM (see Enabled).
	BaseURL string
	// Model is the model name (the deployment name for Azure). Default
	// "gpt-4o-mini".
	Model string
	// APIKey is sent as a bearer token (api-key header for Azure). Local
	// servers usually need none.
	APIKey string
	// Azure selects Azure OpenAI's URL and auth scheme: BaseURL is then the
	// resource endpoint (https://NAME.openai.azure.com), Model the
	// deployment name, and APIVersion its api-version (default
	// go-openai's). Not exercised by the tests.
	Azure      bool
	APIVersion string
	// Timeout bounds one attempt, streaming included. Default 60s.
	Timeout time.Duration
	// MaxTokens is the completion budget of one request. Default 1024.
	MaxTokens int
	// MaxRetries is how many times a failed attempt is retried. Default 3;
	// negative means none.
	MaxRetries int
	// Backoff is the wait before the first retry; it doubles each time, up
	// to MaxBackoff, with ±50% jitter. Defaults 500ms and 10s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// HTTPClient replaces the default client (proxies, tests).
	HTTPClient *http.Client
	// Metrics, if set, counts requests, latency and tokens (NewMetrics).
	Metrics *Metrics
	// Logger records retries. Default: discard.
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultModel      = "gpt-4o-mini"
	DefaultTimeout    = 60 * time.Second
	DefaultMaxTokens  = 1024
	DefaultMaxRetries = 3
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Enabled reports whether an LLM is configured: the default (no base URL,
// no key) is offline operation.
func (o Options) Enabled() bool { return o.BaseURL != "" || o.APIKey != "" }

func (o Options) withDefaults() Options {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// ErrNotConfigured is returned by New when Options.Enabled is false.
var ErrNotConfigured = errors.New("no LLM configured (set llm.base_url or OPENAI_API_KEY)")

// ErrEmptyReply means the endpoint answered without a choice.
var ErrEmptyReply = errors.New("llm reply has no choices")

// Client is safe for concurrent use.
type Client struct {
	c    *openai.Client
	opts Options
}

// New returns a Client, or ErrNotConfigured.
func New(o Options) (*Client, error) {
	if !o.Enabled() {
		return nil, ErrNotConfigured
	}
	o = o.withDefaults()
	var cfg openai.ClientConfig
	if o.Azure {
		cfg = openai.DefaultAzureConfig(o.APIKey, o.BaseURL)
		if o.APIVersion != "" {
			cfg.APIVersion = o.APIVersion
		}
	} else {
		cfg = openai.DefaultConfig(o.APIKey)
		cfg.BaseURL = strings.TrimRight(o.BaseURL, "/")
	}
	if o.HTTPClient != nil {
		cfg.HTTPClient = o.HTTPClient
	}
	return &Client{c: openai.NewClientWithConfig(cfg), opts: o}, nil
}

// Model is the configured model name.
func (c *Client) Model() string { return c.opts.Model }

// Usage counts tokens as the endpoint reported them.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// Add sums two usages.
func (u Usage) Add(v Usage) Usage {
	return Usage{u.PromptTokens + v.PromptTokens, u.CompletionTokens + v.CompletionTokens}
}

// Reply is one completion.
type Reply struct {
	Message Message
	// Model is the model the endpoint says answered (may differ from the
	// requested name, e.g. a dated version).
	Model        string
	FinishReason string
	Usage        Usage
}

// Chat sends msgs (and tools, if any) and returns the whole reply. Failed
// attempts are retried as described on Options.
func (c *Client) Chat(ctx context.Context, msgs []Message, tools []Tool) (Reply, error) {
	req := c.request(msgs, tools)
	var reply Reply
	err := c.retry(ctx, func(ctx context.Context) (bool, error) {
		start := time.Now()
		resp, err := c.c.CreateChatCompletion(ctx, req)
		if err == nil && len(resp.Choices) == 0 {
			err = ErrEmptyReply
		}
		c.opts.Metrics.observe("chat", start, Usage{resp.Usage.PromptTokens, resp.Usage.CompletionTokens}, err)
		if err != nil {
			return false, err
		}
		ch := resp.Choices[0]
		reply = Reply{
			Message:      ch.Message,
			Model:        resp.Model,
			FinishReason: string(ch.FinishReason),
			Usage:        Usage{resp.Usage.PromptTokens, resp.Usage.CompletionTokens},
		}
		return false, nil
	})
	return reply, err
}

// Stream sends msgs and calls onToken with each piece of content as it
// arrives. A failure before the first token is retried; after it, the error
// is returned, since the caller has already shown part of the answer.
// Servers that do not report usage in the stream leave Usage zero.
func (c *Client) Stream(ctx context.Context, msgs []Message, onToken func(string)) (Reply, error) {
	req := c.request(msgs, nil)
	req.Stream = true
	req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	var reply Reply
	err := c.retry(ctx, func(ctx context.Context) (committed bool, err error) {
		start := time.Now()
		defer func() { c.opts.Metrics.observe("stream", start, reply.Usage, err) }()
		s, err := c.c.CreateChatCompletionStream(ctx, req)
		if err != nil {
			return false, err
		}
		defer s.Close()
		var b strings.Builder
		reply = Reply{}
		for {
			chunk, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return b.Len() > 0, err
			}
			if chunk.Model != "" {
				reply.Model = chunk.Model
			}
			if chunk.Usage != nil {
				reply.Usage = Usage{chunk.Usage.PromptTokens, chunk.Usage.CompletionTokens}
			}
			for _, ch := range chunk.Choices {
				if ch.Index != 0 {
					continue
				}
				if ch.FinishReason != "" {
					reply.FinishReason = string(ch.FinishReason)
				}
				if t := ch.Delta.Content; t != "" {
					b.WriteString(t)
					if onToken != nil {
						onToken(t)
					}
				}
			}
		}
		reply.Message = Message{Role: RoleAssistant, Content: b.String()}
		return false, nil
	})
	return reply, err
}

func (c *Client) request(msgs []Message, tools []Tool) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model:     c.opts.Model,
		Messages:  msgs,
		Tools:     tools,
		MaxTokens: c.opts.MaxTokens,
		// Low temperature: summaries and SQL should be reproducible, not
		// creative.
		Temperature: 0.1,
	}
}

// retry runs attempt until it succeeds, fails permanently, reports that it
// must not be repeated (committed), or the retries are used up.
func (c *Client) retry(ctx context.Context, attempt func(context.Context) (committed bool, err error)) error {
	wait := c.opts.Backoff
	for i := 0; ; i++ {
		actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		committed, err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("llm request: %w", ctx.Err())
		}
		if committed || i >= c.opts.MaxRetries || !Retryable(err) {
			return fmt.Errorf("llm request (attempt %d): %w", i+1, err)
		}
		d := wait/2 + rand.N(wait)
		c.opts.Logger.Warn("llm request failed, retrying", "attempt", i+1, "wait", d, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("llm request: %w", ctx.Err())
		case <-time.After(d):
		}
		wait = min(wait*2, c.opts.MaxBackoff)
	}
}

// Retryable reports whether err is worth another attempt: rate limiting,
// server errors, timeouts and network failures. Client errors (400, 401,
// 404) and unparseable replies are not: they would fail the same way.
func Retryable(err error) bool {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return retryableStatus(apiErr.HTTPStatusCode)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return retryableStatus(reqErr.HTTPStatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}
