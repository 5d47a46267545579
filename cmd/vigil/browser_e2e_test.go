package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	b.WaitText("#tiles", "probes, 1 host", 10*time.Second)
	// This one host, in words.
	if sub := browsertest.Eval[string](b, `[...document.querySelectorAll("#tiles .tile")].find(t => t.querySelector(".tile-label").textContent === "Events/s").querySelector(".tile-sub").textContent`); !regexp.MustCompile(`^\d+ probes, 1 host$`).MatchString(sub) {
		t.Errorf("events tile says %q", sub)
	}

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

// TestIncidentFromNovelBinary is the on-call path end to end: after a short
// learning period, a binary the host has never run is executed; the models
// flag it, the correlator opens an incident, the offline summarizer writes
// it up, and the dashboard shows the incident and its detail.
func TestIncidentFromNovelBinary(t *testing.T) {
	u := startUp(t, "--model-step", "1s", "--model-learning", "5s")
	b := browsertest.New(t)
	b.Navigate("http://" + u.listen + "/?token=" + u.token)
	b.WaitText("#status", "live", 15*time.Second)

	// Past the learning period, drop a fresh binary and run it.
	time.Sleep(8 * time.Second)
	name := fmt.Sprintf("vigil-implant-%d", time.Now().UnixNano())
	implant := filepath.Join(t.TempDir(), name)
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(implant, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(implant).Run(); err != nil {
		t.Fatalf("run implant: %v", err)
	}

	// The anomaly is stored with its evidence and grouped into an incident.
	var id string
	deadline := time.Now().Add(40 * time.Second)
	for id == "" {
		if time.Now().After(deadline) {
			all, _ := u.chQuery("SELECT detector, evidence FROM vigil.anomalies ORDER BY ts DESC LIMIT 20 FORMAT TSV")
			t.Fatalf("no incident for %s within 40s; latest anomalies:\n%s", name, all)
		}
		time.Sleep(time.Second)
		id, _ = u.chQuery(fmt.Sprintf("SELECT toString(incident_id) FROM vigil.anomalies WHERE position(evidence, '%s') > 0 AND incident_id IS NOT NULL LIMIT 1", name))
	}

	// The dashboard lists it and opens it, with the summary and the anomaly.
	b.Click(`#nav a[data-route="incidents"]`)
	b.WaitVisible(fmt.Sprintf(`#incidents tr[data-id="%s"] a`, id), 20*time.Second)
	b.Screenshot("incidents")
	b.Click(fmt.Sprintf(`#incidents tr[data-id="%s"] a`, id))
	b.WaitText("#sec-anomalies", name, 20*time.Second)
	b.WaitText("#summary", "What happened", 30*time.Second)
	b.Screenshot("incident")
	if d := b.Dialogs(); len(d) > 0 {
		t.Fatalf("the page opened dialogs: %v", d)
	}
	u.stop(t)
}
