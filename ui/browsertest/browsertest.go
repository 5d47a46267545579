// Package browsertest drives a real headless Chromium from Go tests, for the
// dashboard's own tests and for end-to-end tests against a running vigil.
//
//	b := browsertest.New(t)
//	b.Navigate(srv.URL())
//	b.WaitText("#feed", marker, 10*time.Second)
//	b.Screenshot("feed")
//
// Chromium is /usr/bin/chromium unless VIGIL_CHROMIUM names another binary.
// When it cannot start, New skips the test, or fails it when CI=true.
// Screenshots go to $VIGIL_ARTIFACTS/<test name>/ when that is set, else to
// a temporary directory of the test; their paths are logged.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// DefaultChromium is the browser New starts unless VIGIL_CHROMIUM is set.
const DefaultChromium = "/usr/bin/chromium"

// Browser is one headless Chromium with one tab, closed when the test ends.
// Its methods fail the test on error; they are not safe for concurrent use.
type Browser struct {
	t   testing.TB
	ctx context.Context
	dir string

	mu sync.Mutex
	// dialogs holds the messages of JavaScript dialogs (alert, confirm,
	// prompt) the page opened; guarded by mu. A dashboard must never open
	// one, so tests check it to catch script injection.
	dialogs []string
	// console holds console errors, uncaught exceptions and browser log
	// errors such as Content-Security-Policy violations; guarded by mu.
	console []string
	shots   int // guarded by mu
}

// Option changes how New starts the browser.
type Option func(*config)

type config struct {
	width, height int
	timeout       time.Duration
}

// WindowSize sets the viewport; the default is 1440×900.
func WindowSize(w, h int) Option { return func(c *config) { c.width, c.height = w, h } }

// Timeout bounds the browser's whole life in the test; the default is 2 min.
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// New starts Chromium headless with a fresh profile and opens a blank tab.
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{width: 1440, height: 900, timeout: 2 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	exe := os.Getenv("VIGIL_CHROMIUM")
	if exe == "" {
		exe = DefaultChromium
	}
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("browsertest: %s (CI=true: a browser is required)", msg)
		}
		t.Skipf("browsertest: %s", msg)
	}
	if _, err := os.Stat(exe); err != nil {
		unavailable("chromium not found: %v", err)
	}

	profile, err := os.MkdirTemp("", "vigil-chromium-")
	if err != nil {
		t.Fatalf("browsertest: profile dir: %v", err)
	}
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(cfg.width, cfg.height),
	)
	base, cancelBase := context.WithTimeout(context.Background(), cfg.timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, allocOpts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(string, ...any) {}))
	b := &Browser{t: t, ctx: ctx, dir: artifactsDir(t)}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // kills the browser and waits for it
		cancelBase()
		_ = os.RemoveAll(profile)
	})

	// Start the browser now, so a broken install skips (or fails) here with
	// its reason. The first Do must get the tab's own context: the browser
	// lives as long as the context it was started with.
	if err := chromedp.Do(ctx); err != nil {
		unavailable("start %s: %v", exe, err)
	}
	b.watch()
	return b
}

// watch records dialogs (and dismisses them, or the page would hang) and
// console errors for the life of the browser.
func (b *Browser) watch() {
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	console := chromedp.Console(b.ctx)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.console = append(b.console, m.String())
				b.mu.Unlock()
			}
		}
	}()
}

// Context is the tab's chromedp context, for actions this package lacks.
func (b *Browser) Context() context.Context { return b.ctx }

// Dir is where screenshots are saved.
func (b *Browser) Dir() string { return b.dir }

// Dialogs returns the JavaScript dialogs the page opened so far.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// ConsoleErrors returns console errors, uncaught exceptions and browser log
// errors (Content-Security-Policy violations among them) seen so far.
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// fail saves a screenshot of the page as it is, then fails the test.
func (b *Browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if p, err := b.save("failure"); err == nil {
		msg += "\nscreenshot: " + p
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		msg += "\nconsole errors:\n  " + strings.Join(errs, "\n  ")
	}
	b.t.Fatal(msg)
}

// Navigate loads url and waits for the load event.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		b.fail("navigate to %s: %v", redact(url), err)
	}
}

// WaitText waits until the first element matching the CSS selector has
// text containing text, and returns that element's text.
func (b *Browser) WaitText(selector, text string, timeout time.Duration) string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.PollFunction[string](
		`(sel, want) => { const el = document.querySelector(sel); const t = el ? el.textContent : ""; return t.includes(want) ? t : false; }`,
		chromedp.WithPollingArgs(selector, text),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		have, _ := b.text(selector)
		b.fail("waiting %v for %q in %s: %v\n%s now has: %.2000q", timeout, text, selector, err, selector, have)
	}
	return got
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (b *Browser) WaitVisible(selector string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
		b.fail("waiting %v for %s to be visible: %v", timeout, selector, err)
	}
}

// Click clicks the first element matching the CSS selector once visible.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible)); err != nil {
		b.fail("click %s: %v", selector, err)
	}
}

// Type sends keystrokes to the first element matching the CSS selector.
func (b *Browser) Type(selector, keys string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(selector), keys, chromedp.NodeVisible)); err != nil {
		b.fail("type into %s: %v", selector, err)
	}
}

// Text returns the text of the first element matching the CSS selector, or
// "" if there is none.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	s, err := b.text(selector)
	if err != nil {
		b.fail("text of %s: %v", selector, err)
	}
	return s
}

func (b *Browser) text(selector string) (string, error) {
	return chromedp.Run(b.ctx, chromedp.Evaluate[string](
		fmt.Sprintf(`(() => { const el = document.querySelector(%s); return el ? el.textContent : ""; })()`, jsString(selector))))
}

// Count returns how many elements match the CSS selector.
func (b *Browser) Count(selector string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](
		fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(selector))))
	if err != nil {
		b.fail("count %s: %v", selector, err)
	}
	return n
}

// Eval evaluates a JavaScript expression and decodes its value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("eval %.200s: %v", expr, err)
	}
	return v
}

// Screenshot saves the viewport as a PNG named after name in Dir and returns
// its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	p, err := b.save(name)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.t.Logf("screenshot: %s", p)
	return p
}

func (b *Browser) save(name string) (string, error) {
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.shots++
	n := b.shots
	b.mu.Unlock()
	p := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", n, sanitize(name)))
	return p, os.WriteFile(p, buf, 0o644)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return strings.Trim(unsafeName.ReplaceAllString(s, "_"), "_") }

// artifactsDir is $VIGIL_ARTIFACTS/<test name>, or a temporary directory
// removed after the test.
func artifactsDir(t testing.TB) string {
	root := os.Getenv("VIGIL_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, sanitize(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: artifacts dir: %v", err)
	}
	return dir
}

// redact hides a token in a URL before it reaches a log.
func redact(u string) string {
	return regexp.MustCompile(`token=[^&]*`).ReplaceAllString(u, "token=REDACTED")
}
