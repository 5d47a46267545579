package detect

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
)

// TestProcessTreesSplitIncidents: on a host without containers, anomalies
// from unrelated process trees are separate incidents naming the process
// that acted, and anomalies within one tree (a web server's shell and what
// that shell runs) are one.
func TestProcessTreesSplitIncidents(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	d := New(testOptions(rec, ""))
	// learning: bash runs sh, nginx starts; then two trees
	batches := append(learningBatchesIn(t, mem, ""), makeBatch(t, mem, collector.KindExec,
		// tree 1: nginx spawns a shell, which runs id
		execRow(at(7*time.Second), 201, 200, "sh", "/bin/sh", ""),
		execRow(at(7*time.Second+ms(10)), 202, 201, "id", "/usr/bin/id", ""),
		// tree 2: an unrelated new binary started by init
		execRow(at(7*time.Second+ms(20)), 400, 1, "dropper", "/tmp/dropper", ""),
	))
	run(t, d, batches...)

	byIncident := map[string][]string{}
	for _, a := range rec.anomalies {
		byIncident[a.IncidentID] = append(byIncident[a.IncidentID], a.Entity.Kind+":"+a.Entity.Name+" "+a.Value)
	}
	if len(byIncident) != 2 {
		t.Fatalf("%d incidents, want 2: %v", len(byIncident), byIncident)
	}
	for id, as := range byIncident {
		var ents []string
		for _, e := range rec.incidents {
			if e.ID == id {
				ents = e.Entities
			}
		}
		switch {
		case slices.Contains(ents, "comm:dropper"):
			if len(ents) != 1 {
				t.Errorf("dropper incident also names %v (%v)", ents, as)
			}
		case slices.Contains(ents, "comm:sh"):
			if slices.Contains(ents, "comm:dropper") || !slices.Contains(ents, "comm:id") {
				t.Errorf("web shell incident entities %v (%v)", ents, as)
			}
			// The web server spawning the shell names it, not the
			// shell running id.
			if title := lastTitle(rec, id); !strings.Contains(title, "nginx -> /bin/sh") {
				t.Errorf("web shell incident titled %q", title)
			}
		default:
			t.Errorf("incident names %v (%v)", ents, as)
		}
	}
}

// TestShellSessionTitle: the commands of a shell that predates Vigil are
// one incident, and of what they did, reading /etc/shadow names it, not
// the shell running a command it had not run before.
func TestShellSessionTitle(t *testing.T) {
	s := 7 * time.Second
	rec, kinds := runSession(t, func(mem memory.Allocator) []collector.Batch {
		return []collector.Batch{makeBatch(t, mem, collector.KindExec,
			execRow(at(s), 21, 20, "cp", "/usr/bin/cp", ""),
			execRow(at(s+ms(300)), 22, 20, "peek", "/tmp/x/peek", "")),
			makeBatch(t, mem, collector.KindFile,
				row{"ts": at(s + ms(310)), "host": "web-1", "pid": 22, "tid": 22, "comm": "peek", "syscall": "openat", "path": "/etc/shadow"})}
	})
	for _, want := range []string{"novelty/exec_pair/novel bash -> /tmp/x/peek", "novelty/sensitive_file/novel peek /etc/shadow"} {
		if !slices.ContainsFunc(kinds, func(k string) bool { return strings.HasPrefix(k, want) }) {
			t.Errorf("no %q among %v", want, kinds)
		}
	}
	// runSession checked that every anomaly is in this one incident.
	if title := lastTitle(rec, rec.anomalies[0].IncidentID); !strings.HasPrefix(title, "Unusual sensitive file access") || !strings.Contains(title, "/etc/shadow") {
		t.Errorf("session incident titled %q, want the /etc/shadow read", title)
	}
}

// TestGoneSubshellJoinsSession: a command whose parent was a subshell
// that exited before the detector saw the exec (it is not in /proc) still
// joins its shell's session, through exec_ancestor, and its exec pair
// names the shell. Without exec_ancestor it roots a tree of its own and has
// no exec pair.
func TestGoneSubshellJoinsSession(t *testing.T) {
	s := 7 * time.Second
	viaSubshell := func(r row) row { r["exec_ancestor"] = 20; return r }
	_, kinds := runSession(t, func(mem memory.Allocator) []collector.Batch {
		return []collector.Batch{makeBatch(t, mem, collector.KindExec,
			execRow(at(s), 21, 20, "cp", "/usr/bin/cp", ""),
			viaSubshell(execRow(at(s+ms(300)), 31, 30, "peek", "/tmp/x/peek", "")),
			viaSubshell(execRow(at(s+ms(400)), 33, 32, "dropper", "/tmp/x/dropper", "")))}
	})
	for _, want := range []string{"novelty/exec_pair/novel bash -> /tmp/x/peek", "novelty/exec_pair/novel bash -> /tmp/x/dropper"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %q among %v", want, kinds)
		}
	}
}

// runSession runs the detector, after its learning batches, on what
// batches makes, on a host where bash 20 is a login shell under sshd 10
// that predates Vigil. It requires the anomalies to be one incident and
// returns them as "detector value" too.
func runSession(t *testing.T, batches func(memory.Allocator) []collector.Batch) (*recorder, []string) {
	t.Helper()
	root := t.TempDir()
	fakeProc(t, root, "10", "1", "sshd")
	fakeProc(t, root, "20", "10", "bash")
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	o := testOptions(rec, "")
	o.ProcRoot = root
	run(t, New(o), append(learningBatchesIn(t, mem, ""), batches(mem)...)...)

	ids := map[string]bool{}
	var kinds []string
	for _, a := range rec.anomalies {
		ids[a.IncidentID] = true
		kinds = append(kinds, a.Detector+" "+a.Value)
	}
	if len(ids) != 1 {
		t.Fatalf("%d incidents, want 1: %v", len(ids), kinds)
	}
	return rec, kinds
}

// fakeProc writes a process's comm and stat under root, a stand-in for
// /proc.
func fakeProc(t testing.TB, root, pid, ppid, comm string) {
	t.Helper()
	dir := filepath.Join(root, pid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"comm": comm + "\n", "stat": pid + " (" + comm + ") S " + ppid + " 1 1 0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// lastTitle is the title of incident id's last update.
func lastTitle(rec *recorder, id string) string {
	title := ""
	for _, e := range rec.incidents {
		if e.ID == id {
			title = e.Incident.Title
		}
	}
	return title
}

// TestProcTableTree covers how trees are inherited: across exec, from a
// parent seen exec'ing, through a fork-only ancestor found in /proc,
// rooted at a child of a process that predates Vigil, and rooted at a
// shell that predates Vigil for the commands it runs.
func TestProcTableTree(t *testing.T) {
	root := t.TempDir()
	proc := func(pid, ppid, comm string) { fakeProc(t, root, pid, ppid, comm) }
	proc("10", "1", "sshd") // predates Vigil
	// a subshell of 30, forked without exec; a hostile comm with spaces
	// and parentheses must not confuse the parser
	proc("31", "30", "bash) (x")
	p := newProcTable(64, root, "h")
	const h = "h"
	hk := hostKey(h)

	bash := p.execTree(h, hk, 30, 10, "bash", 0)
	if bash != rootTree(h, 30, "bash") {
		t.Errorf("child of a pre-existing process: tree %q", bash)
	}
	if got := p.execTree(h, hk, 31, 30, "bash", 0); got != bash {
		t.Errorf("child of a seen parent: %q, want %q", got, bash)
	}
	delete(p.m, procKey{h, 31}) // now 31 is only in /proc: a fork-only subshell
	if got := p.execTree(h, hk, 32, 31, "make", 0); got != bash {
		t.Errorf("through a fork-only ancestor: %q, want %q", got, bash)
	}
	if got := p.execTree(h, hk, 32, 31, "cc", 0); got != bash {
		t.Errorf("re-exec keeps the tree: %q", got)
	}
	if got := p.treeOf(h, hk, 99, "curl", 0); got != rootTree(h, 99, "curl") {
		t.Errorf("unknown actor: %q", got)
	}
	if got := p.execTree(h, scopeKey(h, "c1"), 50, 30, "nginx", 0); got != scopeKey(h, "c1") {
		t.Errorf("container process: %q", got)
	}

	// The commands of a shell that predates Vigil are one session: they
	// share a tree rooted at the shell, as do their children; children of
	// other pre-existing processes still root their own.
	proc("20", "10", "bash")
	session := rootTree(h, 20, "bash")
	if got := p.execTree(h, hk, 21, 20, "cp", 0); got != session {
		t.Errorf("command of a pre-existing shell: tree %q, want %q", got, session)
	}
	if got := p.execTree(h, hk, 22, 20, "cat", 0); got != session {
		t.Errorf("second command of the same shell: tree %q, want %q", got, session)
	}
	if got := p.execTree(h, hk, 23, 22, "sh", 0); got != session {
		t.Errorf("grandchild in the session: tree %q, want %q", got, session)
	}
	if got := p.execTree(h, hk, 24, 10, "bash", 0); got != rootTree(h, 24, "bash") {
		t.Errorf("child of pre-existing sshd: tree %q, want its own", got)
	}
	if got := p.execTree(h, hk, 25, 1, "bash", 0); got != rootTree(h, 25, "bash") {
		t.Errorf("child of init: tree %q, want its own", got)
	}
}

// TestProcTableHosts: pids of different hosts are different processes,
// and /proc (this machine's) is never asked about a remote host's pid.
func TestProcTableHosts(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, "10", "1", "sshd")
	p := newProcTable(64, root, "local")

	if c, ok := p.lookup("local", 10, 0); !ok || c != "sshd" {
		t.Errorf("local parent from /proc: %q, %v", c, ok)
	}
	if c, ok := p.lookup("remote", 10, 0); ok {
		t.Errorf("remote pid 10 answered from this machine's /proc: %q", c)
	}
	web := p.execTree("remote", hostKey("remote"), 20, 1, "nginx", 0)
	if got := p.execTree("remote", hostKey("remote"), 21, 20, "sh", 0); got != web {
		t.Errorf("remote child of a seen parent: %q, want %q", got, web)
	}
	if got := p.execTree("local", hostKey("local"), 21, 20, "sh", 0); got != rootTree("local", 21, "sh") {
		t.Errorf("local pid 21 inherited the remote pid 20's tree: %q", got)
	}
}

// TestCommTree: a comm's tree names its series anomalies only when the
// comm acted recently and in that tree alone.
func TestCommTree(t *testing.T) {
	sec := func(n int) int64 { return int64(n) * int64(time.Second) }
	p := newProcTable(4, "", "h")
	p.window = sec(2)
	p.noteActed("h", "curl", "tree:curl/5@h", sec(10))
	p.noteActed("h", "sh", "tree:sh/6@h", sec(10))
	p.noteActed("h", "sh", "tree:sh/7@h", sec(11)) // another shell, same steps
	p.noteActed("h", "cron", "tree:cron/8@h", sec(1))
	p.noteActed("h", "cron", "tree:cron/9@h", sec(10)) // long after the first: not mixed
	for _, c := range []struct {
		host, comm string
		end        int64
		want       string
	}{
		{"h", "curl", sec(11), "tree:curl/5@h"},
		{"h", "curl", sec(13), ""}, // acted too long ago
		{"h", "sh", sec(11), ""},   // two trees
		{"h", "cron", sec(11), "tree:cron/9@h"},
		{"other", "curl", sec(11), ""},
	} {
		got, ok := p.commTree(c.host, c.comm, c.end)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("commTree(%s, %s, %d) = %q, %v; want %q", c.host, c.comm, c.end, got, ok, c.want)
		}
	}
	// Bounded: a full table forgets some entries to make room.
	p.noteActed("h", "a", "tree:a/1@h", sec(100))
	p.noteActed("h", "b", "tree:b/1@h", sec(100))
	p.noteActed("h", "c", "tree:c/1@h", sec(100))
	p.noteActed("h", "d", "tree:d/1@h", sec(100))
	p.noteActed("h", "e", "tree:e/1@h", sec(100))
	if len(p.acted) > 4 {
		t.Errorf("%d entries, max 4", len(p.acted))
	}
}

// TestProcTableReusedPid: once a process's exit is seen, its pid, reused by
// another process, inherits neither its name nor its tree, while what that
// process's children did before it exited (in batches read after its exit)
// still finds it.
func TestProcTableReusedPid(t *testing.T) {
	p := newProcTable(100, "", "")
	const h = "h"
	hk := hostKey(h)
	sec := func(n int) int64 { return int64(n) * int64(time.Second) }
	web := p.execTree(h, hk, 30, 1, "websrv", sec(1))
	if got := p.execTree(h, hk, 31, 30, "sh", sec(2)); got != web {
		t.Fatalf("child tree %q, want %q", got, web)
	}
	p.exit(h, 30, sec(3))
	// A child's exec from before the exit, read after it.
	if got := p.execTree(h, hk, 32, 30, "sh", sec(2)+1); got != web {
		t.Errorf("child exec'd before the exit: tree %q, want %q", got, web)
	}
	if c, ok := p.lookup(h, 30, sec(2)); !ok || c != "websrv" {
		t.Errorf("lookup before the exit = %q, %v", c, ok)
	}
	// Pid 30 reused by a fork-only process: unknown, not websrv.
	if c, ok := p.lookup(h, 30, sec(4)); ok {
		t.Errorf("lookup of a reused pid = %q, want unknown", c)
	}
	if got := p.execTree(h, hk, 33, 30, "cat", sec(4)); got == web {
		t.Errorf("child of a reused pid joined the old tree %q", got)
	}
	// Pid 30 reused by a new program: a tree of its own.
	other := p.execTree(h, hk, 30, 1, "other", sec(5))
	if other == web {
		t.Errorf("reused pid kept the old tree %q", web)
	}
	if got := p.treeOf(h, hk, 30, "other", sec(6)); got != other {
		t.Errorf("treeOf the new program = %q, want %q", got, other)
	}
}
