package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/ui/browsertest"
)

// TestDashboardShowsLiveExec drives a real headless Chromium against a real
// `vigil up`: the page loads with the printed token and a process started
// on the host appears in the live feed within seconds. Screenshots are saved
// under $VIGIL_ARTIFACTS (or the test's temp dir).
func TestDashboardShowsLiveExec(t *testing.T) {
	u := startUp(t)
	b := browsertest.New(t)
	b.Navigate("http://" + u.listen + "/?token=" + u.token)
	b.WaitText("#status", "live", 15*time.Second)
	b.WaitText("#tiles", "ClickHouse", 10*time.Second)

	b.Click(`#nav a[data-route="feed"]`)
	var marker string
	deadline := time.Now().Add(20 * time.Second)
	for {
		marker = uniqueExec(t)
		if feedHas(b, marker, 2*time.Second) {
			break
		}
		if time.Now().After(deadline) {
			b.Screenshot("feed-missing")
			t.Fatalf("exec with argv %q never appeared in the live feed", marker)
		}
	}
	b.Screenshot("live-feed")
	b.Click(`#nav a[data-route="overview"]`)
	b.WaitText("#tiles", "ClickHouse", 5*time.Second)
	time.Sleep(2 * time.Second) // let the charts draw a few points
	b.Screenshot("overview")
	if d := b.Dialogs(); len(d) > 0 {
		t.Fatalf("the page opened dialogs: %v", d)
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors: %v", errs)
	}
	u.stop(t)
}

// feedHas polls the live feed for text without failing the test, so the
// caller can start another marker process while the probe warms up.
func feedHas(b *browsertest.Browser, text string, within time.Duration) bool {
	js := fmt.Sprintf(`(document.querySelector("#feed")?.textContent ?? "").includes(%q)`, text)
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if browsertest.Eval[bool](b, js) {
			return true
		}
	}
	return false
}
