package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/models"
)

// TestAggregate feeds synthetic batches of every kind and checks the step
// sums the detector would score.
func TestAggregate(t *testing.T) {
	sk := func(e, s string) models.SeriesKey { return models.SeriesKey{Entity: e, Series: s} }
	const host, ctr, curl = "host:web-1", "container:c1@web-1", "comm:curl@web-1"
	tests := []struct {
		name   string
		kind   collector.Kind
		rows   []row
		want   map[models.SeriesKey]float64
		cats   []string // categorical values emitted
		absent []models.SeriesKey
	}{
		{
			name: "exec counts host, container and comm",
			kind: collector.KindExec,
			rows: []row{
				execRow(at(ms(10)), 100, 1, "bash", "/bin/bash", ""),
				execRow(at(ms(20)), 101, 100, "curl", "/usr/bin/curl", "c1"),
				execRow(at(ms(30)), 102, 100, "curl", "/usr/bin/curl", "c1"),
			},
			want: map[models.SeriesKey]float64{sk(host, SeriesExecs): 3, sk(ctr, SeriesExecs): 2, sk(curl, SeriesExecs): 2},
			cats: []string{"/bin/bash", "/usr/bin/curl", "bash -> /usr/bin/curl", "/usr/bin/curl", "bash -> /usr/bin/curl"},
		},
		{
			name: "tcp connects, failures, distinct destinations and bytes",
			kind: collector.KindTCP,
			rows: []row{
				{"ts": at(ms(1)), "host": "web-1", "event": "connect", "pid": 5, "comm": "curl", "daddr": "10.0.0.1", "dport": 443, "container_id": "c1"},
				{"ts": at(ms(2)), "host": "web-1", "event": "connect", "pid": 5, "comm": "curl", "daddr": "10.0.0.1", "dport": 443, "container_id": "c1"},
				{"ts": at(ms(3)), "host": "web-1", "event": "connect", "pid": 5, "comm": "curl", "daddr": "fd00::1", "dport": 80, "container_id": "c1"},
				{"ts": at(ms(4)), "host": "web-1", "event": "connect_failed", "pid": 5, "comm": "curl", "daddr": "10.0.0.9", "dport": 22, "container_id": "c1"},
				{"ts": at(ms(5)), "host": "web-1", "event": "close", "pid": 5, "comm": "curl", "bytes_sent": 100, "bytes_received": 2000, "container_id": "c1"},
				{"ts": at(ms(6)), "host": "web-1", "event": "accept", "pid": 6, "comm": "nginx"},
			},
			want: map[models.SeriesKey]float64{
				sk(host, SeriesConnectAttempts): 4, sk(curl, SeriesConnectFailures): 1, sk(ctr, SeriesDestinations): 2,
				sk(curl, SeriesDestinations): 2, sk(host, SeriesDestinations): 2, sk(host, SeriesBytesOut): 100,
				sk(ctr, SeriesBytesIn): 2000, sk(host, SeriesAccepts): 1,
			},
			cats: []string{"10.0.0.1:443", "10.0.0.1:443", "[fd00::1]:80"},
		},
		{
			name: "exit forks and abnormal exits",
			kind: collector.KindExit,
			rows: []row{
				{"ts": at(ms(1)), "host": "web-1", "forks": 3},
				{"ts": at(ms(2)), "host": "web-1", "comm": "app", "signal": 11},
				{"ts": at(ms(3)), "host": "web-1", "signal": 15},
			},
			want: map[models.SeriesKey]float64{sk(host, SeriesExits): 3, sk(host, SeriesForks): 3, sk(host, SeriesAbnormalExits): 1},
			cats: []string{"app SIGSEGV"},
		},
		{
			name: "run-queue p99 from the histogram",
			kind: collector.KindRunqLatency,
			rows: []row{
				{"ts": at(ms(1)), "host": "web-1", "slot": 2, "count": 98},
				{"ts": at(ms(1)), "host": "web-1", "slot": 10, "count": 2},
			},
			// 99% of 100 waits is the 99th, in slot 10: < 2^11 µs.
			want: map[models.SeriesKey]float64{sk(host, SeriesRunqP99): 2048},
		},
		{
			name: "syscalls, file opens, privilege changes, oom, signals, retransmits",
			kind: collector.KindSyscallCounts,
			rows: []row{
				{"ts": at(ms(1)), "host": "web-1", "comm": "curl", "syscall": "connect", "count": 400},
				{"ts": at(ms(1)), "host": "web-1", "comm": "curl", "syscall": "futex", "count": 100},
				{"ts": at(ms(2)), "host": "web-1", "comm": "sh", "syscall": "openat", "count": 7},
				{"ts": at(ms(2)), "host": "web-1", "comm": "sh", "syscall": "sys_999", "count": 1},
			},
			// futex and an unknown number count in the total only
			want: map[models.SeriesKey]float64{
				sk(host, SeriesSyscalls): 508, sk(curl, SeriesSyscalls): 500,
				sk(host, SeriesSyscallsNet): 400, sk(curl, SeriesSyscallsNet): 400, sk(host, SeriesSyscallsFile): 7,
			},
		},
		{
			name: "privilege change is categorical without per-call noise",
			kind: collector.KindPriv,
			rows: []row{{"ts": at(ms(1)), "host": "web-1", "comm": "sudo", "syscall": "setuid", "arg0": 0, "euid_before": 1000, "euid_after": 0}},
			want: map[models.SeriesKey]float64{sk(host, SeriesPrivChanges): 1},
			cats: []string{"sudo setuid(0) euid 1000->0 !escalation"},
		},
		{
			name: "root staying root and dropped capabilities are counted, not judged; ptrace by root is judged",
			kind: collector.KindPriv,
			rows: []row{
				{"ts": at(ms(1)), "host": "web-1", "comm": "spawner", "syscall": "setgid", "euid_before": 0, "euid_after": 0},
				{"ts": at(ms(2)), "host": "web-1", "comm": "spawner", "syscall": "setresuid", "euid_before": 0, "euid_after": 0},
				{"ts": at(ms(3)), "host": "web-1", "comm": "gdb", "syscall": "ptrace", "arg0": 16, "arg1": 42, "euid_before": 0, "euid_after": 0},
				{"ts": at(ms(3)), "host": "web-1", "comm": "gdb", "syscall": "ptrace", "arg0": 2, "arg1": 42, "arg2": 4096, "euid_before": 0, "euid_after": 0},
				{"ts": at(ms(4)), "host": "web-1", "comm": "nginx", "syscall": "setuid", "euid_before": 0, "euid_after": 33},
				{"ts": at(ms(5)), "host": "web-1", "comm": "x", "syscall": "setresuid", "arg0": 4294967295, "arg1": 0, "arg2": 4294967295, "euid_before": 65534, "euid_after": 65534, "errno": 1},
				{"ts": at(ms(6)), "host": "web-1", "comm": "x", "syscall": "setuid", "arg0": 65534, "euid_before": 65534, "euid_after": 65534},
				// A sandbox drops every capability: nothing to judge.
				{"ts": at(ms(7)), "host": "web-1", "comm": "chromium", "syscall": "capset", "euid_before": 0, "euid_after": 0, "cap_effective": 0},
				// Keeping CAP_SYS_ADMIN, or being refused it, is judged.
				{"ts": at(ms(8)), "host": "web-1", "comm": "runc", "syscall": "capset", "euid_before": 0, "euid_after": 0, "cap_effective": 1 << 21},
				{"ts": at(ms(9)), "host": "web-1", "comm": "y", "syscall": "capset", "euid_before": 1000, "euid_after": 1000, "cap_effective": 1 << 21, "errno": 1},
				{"ts": at(ms(9)), "host": "web-1", "comm": "y", "syscall": "capset", "euid_before": 1000, "euid_after": 1000, "cap_effective": 0, "errno": 1},
			},
			want: map[models.SeriesKey]float64{sk(host, SeriesPrivChanges): 11},
			cats: []string{"gdb ptrace(attach) euid 0->0", "gdb ptrace euid 0->0", "nginx setuid euid 0->33", "x setresuid(0) euid 65534->65534 failed !escalation", "x setuid euid 65534->65534",
				"runc capset euid 0->0", "y capset euid 1000->1000 failed !escalation", "y capset euid 1000->1000 failed"},
		},
		{
			name: "out-of-order rows within the grace land in their own step",
			kind: collector.KindOOM,
			rows: []row{{"ts": at(ms(1)), "host": "web-1", "comm": "java"}, {"ts": at(3 * time.Second), "host": "web-1", "comm": "java"}, {"ts": at(ms(2)), "host": "web-1", "comm": "java"}},
			want: map[models.SeriesKey]float64{sk(host, SeriesOOMKills): 2},
			cats: []string{"java", "java", "java"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
			defer mem.AssertSize(t, 0)
			g := newAggregator(int64(time.Second), int64(time.Second/2), newProcTable(16, "", ""), nil)
			var cats []string
			b := makeBatch(t, mem, tc.kind, tc.rows...)
			g.add(b.Kind, b.Record, func(e catEvent) {
				v := e.ev.Value
				if e.ev.Escalation {
					v += " !escalation"
				}
				cats = append(cats, v)
			})
			b.Record.Release()
			steps := g.due(at(10*time.Second).UnixNano(), 60)
			if len(steps) == 0 {
				t.Fatal("no step closed")
			}
			got := steps[0].finish()
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s/%s = %v, want %v (all: %v)", k.Entity, k.Series, got[k], v, got)
				}
			}
			if len(cats) != len(tc.cats) {
				t.Fatalf("categorical %q, want %q", cats, tc.cats)
			}
			for i := range cats {
				if cats[i] != tc.cats[i] {
					t.Errorf("categorical %d = %q, want %q", i, cats[i], tc.cats[i])
				}
			}
		})
	}
}

func TestEscalation(t *testing.T) {
	const unchanged = 4294967295
	tests := []struct {
		syscall          string
		args             [3]uint64
		before, after    uint64
		capEff, errno    uint64
		wantEsc, wantAsk bool
	}{
		{"setuid", [3]uint64{0}, 1000, 1000, 0, 0, true, true},                          // failed setuid(0)
		{"setuid", [3]uint64{1000}, 1000, 1000, 0, 0, false, false},                     // no-op
		{"setuid", [3]uint64{65534}, 0, 65534, 0, 0, false, false},                      // root dropping
		{"setresuid", [3]uint64{unchanged, 0, unchanged}, 1000, 0, 0, 0, true, true},    // seteuid(0) from a saved root id
		{"setreuid", [3]uint64{unchanged, unchanged}, 1000, 1000, 0, 0, false, false},   // all unchanged
		{"setresgid", [3]uint64{unchanged, unchanged, 0}, 1000, 1000, 0, 0, true, true}, // asks for group root
		{"setfsuid", [3]uint64{1 << 32}, 1000, 1000, 0, 0, true, true},                  // the kernel sees the low 32 bits
		{"capset", [3]uint64{}, 1000, 1000, 1 << 21, 1, true, false},                    // CAP_SYS_ADMIN asked by non-root, refused
		{"capset", [3]uint64{}, 1000, 1000, 1 << 10, 0, false, false},                   // keeping a granted CAP_NET_BIND_SERVICE
		{"capset", [3]uint64{}, 1000, 1000, 0, 0, false, false},                         // dropping everything
		{"capset", [3]uint64{}, 0, 0, 1 << 21, 0, false, false},                         // root
		{"ptrace", [3]uint64{16, 42}, 1000, 1000, 0, 0, false, false},                   // judged, but not the caller's escalation
		{"setgid", [3]uint64{0}, 0, 0, 0, 0, false, false},                              // root stays root
	}
	for _, tc := range tests {
		esc, ask := escalation(tc.syscall, tc.args, tc.before, tc.after, tc.capEff, tc.errno)
		if esc != tc.wantEsc || ask != tc.wantAsk {
			t.Errorf("escalation(%s %v, euid %d->%d, cap %#x) = %v, %v; want %v, %v", tc.syscall, tc.args, tc.before, tc.after, tc.capEff, esc, ask, tc.wantEsc, tc.wantAsk)
		}
	}
}

// TestDueZeroFillsAndSkipsSilence: empty steps between events close (so
// counters read zero), but a long silence is not replayed step by step.
func TestDueZeroFillsAndSkipsSilence(t *testing.T) {
	step := int64(time.Second)
	g := newAggregator(step, step/2, newProcTable(16, "", ""), nil)
	g.acc(at(0).UnixNano())
	g.acc(at(3 * time.Second).UnixNano())
	steps := g.due(at(4*time.Second+time.Duration(step/2)).UnixNano(), 60)
	if len(steps) != 4 {
		t.Fatalf("closed %d steps, want 4 (event, two empty, event)", len(steps))
	}
	if g.acc(at(ms(500)).UnixNano()) != nil || g.late != 1 {
		t.Errorf("a row for a closed step was not counted late")
	}
	g.acc(at(10 * time.Hour).UnixNano())
	steps = g.due(at(10*time.Hour+2*time.Second).UnixNano(), 60)
	if len(steps) > 62 {
		t.Fatalf("replayed %d steps of silence", len(steps))
	}
	if last := steps[len(steps)-1]; last.start != at(10*time.Hour).UnixNano() || len(last.vals) != 0 {
		t.Errorf("last closed step %v, want the one at 10h", time.Unix(0, last.start).UTC())
	}
}

func TestParseEntity(t *testing.T) {
	tests := []struct {
		key  string
		want Entity
	}{
		{hostKey("web-1"), Entity{"host", "web-1", "web-1"}},
		{scopeKey("web-1", "abc"), Entity{"container", "abc", "web-1"}},
		{scopeKey("web-1", ""), Entity{"host", "web-1", "web-1"}},
		{commKey("web-1", "evil@x:y"), Entity{"comm", "evil@x:y", "web-1"}},
	}
	for _, tc := range tests {
		if got := parseEntity(tc.key); got != tc.want {
			t.Errorf("parseEntity(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

func TestBinaryKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/usr/bin/curl", "/usr/bin/curl"},
		{"/usr/bin/sha256sum", "/usr/bin/sha256sum"}, // file names are kept whole
		{"/usr/lib/python3.11/venv/bin/x", "/usr/lib/python3.11/venv/bin/x"},
		{"/usr/lib/x86_64-linux-gnu/ld.so", "/usr/lib/x86_64-linux-gnu/ld.so"},
		{"/tmp/go-build1005678476/b001/ui.test", "/tmp/go-build#/b#/ui.test"},
		{"/tmp/go-build42/b001/ui.test", "/tmp/go-build42/b#/ui.test"},
		{"/tmp/t/implant-1795577340056112015", "/tmp/t/implant-1795577340056112015"},
		{"/snap/core22/1380/usr/bin/x", "/snap/core22/#/usr/bin/x"},
		{"/nix/store/0c4cvh3kqg1zqf5rbd0i8bmwwmx0hpqv-bash-5.2/bin/bash", "/nix/store/#-bash-5.2/bin/bash"},
		{"/var/lib/docker/overlay2/3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c/merged/app", "/var/lib/docker/overlay2/#/merged/app"},
		{"/tmp/abcdefghijklmnopqrstuv/x", "/tmp/abcdefghijklmnopqrstuv/x"}, // long but no digit: a name
		{"", ""},
		{"123", "123"},
		{"123/x", "#/x"},
		{"/a\xff12345/x", "/a\xff#/x"},
	} {
		if got := binaryKey(c.in); got != c.want {
			t.Errorf("binaryKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzBinaryKey: the key never grows, keeps the file name and every byte
// that is not a digit or letter, and is stable (masking a key changes
// nothing).
func FuzzBinaryKey(f *testing.F) {
	for _, s := range []string{"/tmp/go-build1005678476/b001/ui.test", "/usr/bin/sha256sum", "", "\xff1234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		k := binaryKey(p)
		if len(k) > len(p) {
			t.Fatalf("binaryKey(%q) = %q grew", p, k)
		}
		if name := p[strings.LastIndexByte(p, '/')+1:]; !strings.HasSuffix(k, name) {
			t.Fatalf("binaryKey(%q) = %q changed the file name", p, k)
		}
		if kk := binaryKey(k); kk != k {
			t.Fatalf("binaryKey not stable: %q -> %q -> %q", p, k, kk)
		}
		strip := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r < 128 && isAlnum(byte(r)) || r == '#' {
					return -1
				}
				return r
			}, s)
		}
		if strip(k) != strip(p) {
			t.Fatalf("binaryKey(%q) = %q changed a separator", p, k)
		}
	})
}
