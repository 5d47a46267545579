package detect

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/models"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an Output that keeps everything.
type recorder struct {
	mu        sync.Mutex
	points    int
	totals    map[string]float64 // "kind:name/series" summed over steps
	anomalies []Detection
	incidents []IncidentEvent
}

func (r *recorder) Points(_ time.Time, p []Point) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.points += len(p)
	if r.totals == nil {
		r.totals = map[string]float64{}
	}
	for _, pt := range p {
		r.totals[pt.Entity.Kind+":"+pt.Entity.Name+"/"+pt.Series] += pt.Value
	}
}
func (r *recorder) Anomaly(d Detection) {
	r.mu.Lock()
	r.anomalies = append(r.anomalies, d)
	r.mu.Unlock()
}
func (r *recorder) Incident(e IncidentEvent) {
	r.mu.Lock()
	r.incidents = append(r.incidents, e)
	r.mu.Unlock()
}

// run feeds batches through d.Run as the pipeline would.
func run(t *testing.T, d *Detector, batches ...collector.Batch) {
	t.Helper()
	in := make(chan collector.Batch, len(batches))
	for _, b := range batches {
		in <- b
	}
	close(in)
	if err := d.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func testOptions(out Output, dir string) Options {
	return Options{
		Step: time.Second, Learning: 5 * time.Second, ProcRoot: "-", StateDir: dir, Output: out,
		// Event time only: a fixed wall clock keeps the test independent
		// of how fast it runs.
		Now: func() time.Time { return t0 },
	}
}

// learningBatches: during the 5s learning period, bash runs /bin/sh and
// nginx starts in container c1; both binaries and the bash -> /bin/sh pair
// become normal.
func learningBatches(t *testing.T, mem memory.Allocator) []collector.Batch {
	return learningBatchesIn(t, mem, "c1")
}

// learningBatchesIn is learningBatches in container ("" for the host):
// bash is pid 100, its sh 101, nginx 200.
func learningBatchesIn(t *testing.T, mem memory.Allocator, container string) []collector.Batch {
	var out []collector.Batch
	for i := range 6 {
		base := at(time.Duration(i) * time.Second)
		out = append(out, makeBatch(t, mem, collector.KindExec,
			execRow(base, 100, 1, "bash", "/bin/bash", container),
			execRow(base.Add(ms(100)), 101, 100, "sh", "/bin/sh", container),
			execRow(base.Add(ms(200)), 200, 1, "nginx", "/usr/sbin/nginx", container),
		))
	}
	return out
}

// TestNovelExecPairOneIncident: after learning, nginx running /bin/sh is a
// new parent → child pair (and nothing else is new): one anomaly, one
// incident. A burst of 50 new binaries in the same container right after
// joins that incident instead of opening 50.
func TestNovelExecPairOneIncident(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	d := New(testOptions(rec, ""))
	batches := learningBatches(t, mem)
	batches = append(batches, makeBatch(t, mem, collector.KindExec, execRow(at(7*time.Second), 201, 200, "sh", "/bin/sh", "c1")))
	run(t, d, batches...)

	if len(rec.anomalies) != 1 {
		t.Fatalf("%d anomalies, want 1: %+v", len(rec.anomalies), rec.anomalies)
	}
	a := rec.anomalies[0]
	if a.Detector != "novelty/exec_pair/novel" || a.Value != "nginx -> /bin/sh" || a.PID != 201 || a.Container != "c1" {
		t.Errorf("anomaly %+v", a)
	}
	if len(rec.incidents) != 1 || rec.incidents[0].Kind != models.IncidentOpened || rec.incidents[0].ID != a.IncidentID {
		t.Fatalf("incidents %+v, anomaly's incident %q", rec.incidents, a.IncidentID)
	}
	if inc := rec.incidents[0]; len(inc.Hosts) != 1 || inc.Hosts[0] != "web-1" || inc.Entities[0] != "container:c1" {
		t.Errorf("incident hosts %v entities %v", inc.Hosts, inc.Entities)
	}

	// The burst: 50 binaries never seen in c1, parents unknown.
	var rows []row
	for i := range 50 {
		rows = append(rows, execRow(at(8*time.Second+ms(i)), 300+i, 0, "x", "/tmp/.x/"+string(rune('a'+i%26))+string(rune('a'+i/26)), "c1"))
	}
	run(t, d, makeBatch(t, mem, collector.KindExec, rows...))
	if len(rec.anomalies) != 51 {
		t.Fatalf("%d anomalies after the burst, want 51", len(rec.anomalies))
	}
	ids := map[string]bool{}
	for _, e := range rec.incidents {
		ids[e.ID] = true
	}
	for _, a := range rec.anomalies {
		ids[a.IncidentID] = true
	}
	if len(ids) != 1 {
		t.Errorf("burst spread over %d incidents, want 1", len(ids))
	}
	if got := d.Stats(); got.Anomalies != 51 || got.Rows != 18+1+50 {
		t.Errorf("stats %+v", got)
	}
	// The new binaries are a series too: 50 in the container, by x. The
	// ones learned while c1 was young are not new. (A known exec later
	// closes the burst's step.)
	run(t, d, makeBatch(t, mem, collector.KindExec, execRow(at(15*time.Second), 100, 1, "bash", "/bin/bash", "c1")))
	for _, k := range []string{"container:c1/" + SeriesNewBinaries, "comm:x/" + SeriesNewBinaries, "host:web-1/" + SeriesNewBinaries} {
		if got := rec.totals[k]; got != 50 {
			t.Errorf("%s = %v, want 50", k, got)
		}
	}
}

// TestCheckpointRestores: a restarted detector keeps what it learned (the
// pair is not new again) and is past its learning period (a new binary
// alerts at once).
func TestCheckpointRestores(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	run(t, New(testOptions(nil, dir)), learningBatches(t, mem)...)
	for _, f := range []string{bankFile, noveltyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("checkpoint %s: %v", f, err)
		}
	}
	rec := &recorder{}
	// The pid → comm map is not checkpointed: bash is seen again first.
	run(t, New(testOptions(rec, dir)), makeBatch(t, mem, collector.KindExec,
		execRow(at(20*time.Second), 100, 1, "bash", "/bin/bash", "c1"),
		execRow(at(20*time.Second), 101, 100, "sh", "/bin/sh", "c1"),
		execRow(at(20*time.Second), 102, 100, "evil", "/tmp/evil", "c1"),
	))
	if len(rec.anomalies) != 2 {
		t.Fatalf("after restore: %d anomalies, want 2 (new binary and new pair): %+v", len(rec.anomalies), rec.anomalies)
	}
	for _, a := range rec.anomalies {
		if a.Value != "/tmp/evil" && a.Value != "bash -> /tmp/evil" {
			t.Errorf("unexpected anomaly %s %q", a.Detector, a.Value)
		}
	}

	// A corrupt checkpoint is logged and ignored.
	if err := os.WriteFile(filepath.Join(dir, bankFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, New(testOptions(nil, dir)))
}

// cronStorm is 60 one-second steps of cron's steady 1–2 execs with a
// storm of 400 at 55 s.
func cronStorm(t *testing.T, mem memory.Allocator) []collector.Batch {
	var out []collector.Batch
	for i := range 60 {
		n := 1 + i%2
		if i == 55 {
			n = 400
		}
		var rows []row
		for j := range n {
			rows = append(rows, execRow(at(time.Duration(i)*time.Second+ms(j)), 1000+j, 1, "cron", "/usr/sbin/cron", ""))
		}
		out = append(out, makeBatch(t, mem, collector.KindExec, rows...))
	}
	return out
}

// TestZeroFillAndSpike: a series with no events in a step reads 0, and a
// sudden exec storm after a steady baseline is an anomaly (a burst, named
// after the process: cron's own series shows it, so the host's copy of the
// same burst is dropped).
func TestZeroFillAndSpike(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	o := testOptions(rec, "")
	o.Bank.Detector.Warmup = 20
	o.Learning = time.Hour
	d := New(o)
	run(t, d, cronStorm(t, mem)...)
	found := false
	for _, a := range rec.anomalies {
		if a.Series == SeriesExecs && a.Entity.Kind == "comm" && a.Entity.Name == "cron" && a.Observed == 400 {
			found = true
		}
	}
	if !found {
		t.Errorf("no exec-rate anomaly for the storm; got %d anomalies", len(rec.anomalies))
	}
	if rec.points == 0 {
		t.Error("no points")
	}
}

// TestSteadyGrowthQuiet: a load that grows steadily (cron's execs rising
// from about 4 to 54 a step over 5000 steps, with noise) is not an
// incident. The numeric detector alone alerts on such a trend about every
// 200 steps, because each step is close to a new record high; what keeps
// them off the dashboard is the bank's rule that a rise to no more than
// 1.5× the series' recent peak is not new, and behind it the materiality
// rule (2× the forecast). This pins that a trend stays quiet end to end.
func TestSteadyGrowthQuiet(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	d := New(testOptions(rec, ""))
	var batches []collector.Batch
	pid := 1000
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		n := 2 + i/100 + r.IntN(5)
		rows := make([]row, 0, n)
		for j := range n {
			pid++
			rows = append(rows, execRow(at(time.Duration(i)*time.Second+ms(j)), pid, 1, "cron", "/usr/sbin/cron", ""))
		}
		batches = append(batches, makeBatch(t, mem, collector.KindExec, rows...))
	}
	run(t, d, batches...)
	for _, a := range rec.anomalies {
		t.Errorf("anomaly on a steady trend: %s %s observed %.0f expected %.1f", a.Detector, a.Entity, a.Observed, a.Expected)
	}
	if rec.points < 2*4990 {
		t.Errorf("%d points, want cron's and the host's series for (nearly) every step", rec.points)
	}
}

// TestOwnProcessesOutOfSeries: Vigil's own engine (Options.Own) adds
// nothing to any series, the host's included, but what it does is still
// judged: its read of /etc/shadow is an anomaly.
// TestBuildDirectoriesNotNovel: a test binary run from a new build
// directory each time (a CI runner) is the binary learned, while a new name
// in such a directory is still new, and is reported by its real path.
func TestBuildDirectoriesNotNovel(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	d := New(testOptions(rec, ""))
	batches := learningBatchesIn(t, mem, "")
	batches = append(batches[:1], append([]collector.Batch{makeBatch(t, mem, collector.KindExec,
		execRow(at(ms(500)), 300, 100, "x.test", "/tmp/go-build1111111/b001/x.test", ""))}, batches[1:]...)...)
	batches = append(batches, makeBatch(t, mem, collector.KindExec,
		execRow(at(7*time.Second), 301, 100, "x.test", "/tmp/go-build2222222/b001/x.test", ""),
		execRow(at(7*time.Second+ms(10)), 302, 100, "evil", "/tmp/go-build2222222/b001/evil", "")),
		makeBatch(t, mem, collector.KindExec, execRow(at(15*time.Second), 100, 1, "bash", "/bin/bash", "")))
	run(t, d, batches...)

	var novel []string
	for _, a := range rec.anomalies {
		if strings.HasPrefix(a.Detector, "novelty/") {
			novel = append(novel, a.Detector+" "+a.Value)
		}
	}
	want := []string{"novelty/binary/novel /tmp/go-build2222222/b001/evil", "novelty/exec_pair/novel bash -> /tmp/go-build2222222/b001/evil"}
	slices.Sort(novel)
	if !slices.Equal(novel, want) {
		t.Errorf("novelty anomalies %q, want %q", novel, want)
	}
}

// TestStatsLearning checks what the dashboard's Models tile reads: series
// scored, and whether the host is still learning and until when.
func TestStatsLearning(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	d := New(testOptions(&recorder{}, ""))
	bs := learningBatchesIn(t, mem, "")
	for _, b := range bs[3:] {
		b.Record.Release()
	}
	run(t, d, bs[:3]...) // 0-2 s of a 5 s learning period
	if st := d.Stats(); st.Series == 0 || st.HostsLearning != 1 || !st.LearningUntil.Equal(at(5*time.Second)) {
		t.Errorf("during learning: %d series, %d hosts learning until %v; want some, 1 until %v",
			st.Series, st.HostsLearning, st.LearningUntil, at(5*time.Second))
	}

	d = New(testOptions(&recorder{}, ""))
	run(t, d, append(learningBatchesIn(t, mem, ""),
		makeBatch(t, mem, collector.KindExec, execRow(at(15*time.Second), 100, 1, "bash", "/bin/bash", "")))...)
	if st := d.Stats(); st.HostsLearning != 0 || !st.LearningUntil.IsZero() || st.ContainersLearning != 0 {
		t.Errorf("after learning: %d hosts learning until %v, %d containers; want none", st.HostsLearning, st.LearningUntil, st.ContainersLearning)
	}

	// A container that appears after its host has learned learns on its
	// own: 5 s from its first event at 15 s.
	d = New(testOptions(&recorder{}, ""))
	run(t, d, append(learningBatchesIn(t, mem, ""),
		makeBatch(t, mem, collector.KindExec, execRow(at(15*time.Second), 300, 1, "nginx", "/usr/sbin/nginx", "c9")),
		makeBatch(t, mem, collector.KindExec, execRow(at(17*time.Second), 100, 1, "bash", "/bin/bash", "")))...)
	if st := d.Stats(); st.HostsLearning != 0 || st.ContainersLearning != 1 || !st.ContainersUntil.Equal(at(20*time.Second)) {
		t.Errorf("new container: %d hosts learning, %d containers until %v; want 0, 1 until %v",
			st.HostsLearning, st.ContainersLearning, st.ContainersUntil, at(20*time.Second))
	}
}

func TestOwnProcessesOutOfSeries(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := &recorder{}
	o := testOptions(rec, "")
	o.Own = func(pid uint32) bool { return pid == 900 }
	d := New(o)
	s := 7 * time.Second
	batches := append(learningBatchesIn(t, mem, ""),
		makeBatch(t, mem, collector.KindSyscallCounts,
			row{"ts": at(s), "host": "web-1", "pid": 900, "comm": "vigil", "syscall": "read", "count": 50000},
			row{"ts": at(s), "host": "web-1", "pid": 300, "comm": "app", "syscall": "read", "count": 10}),
		makeBatch(t, mem, collector.KindFile,
			row{"ts": at(s + ms(5)), "host": "web-1", "pid": 900, "tid": 901, "comm": "vigil", "syscall": "openat", "path": "/etc/shadow"}),
		// a known exec later closes the step
		makeBatch(t, mem, collector.KindExec, execRow(at(15*time.Second), 100, 1, "bash", "/bin/bash", "")))
	run(t, d, batches...)

	for k := range rec.totals {
		if strings.HasPrefix(k, "comm:vigil/") {
			t.Errorf("own process has series %s", k)
		}
	}
	for _, k := range []string{"host:web-1/" + SeriesSyscalls, "comm:app/" + SeriesSyscallsFile} {
		if got := rec.totals[k]; got != 10 {
			t.Errorf("%s = %v, want 10 (app's only)", k, got)
		}
	}
	if !slices.ContainsFunc(rec.anomalies, func(a Detection) bool {
		return strings.HasPrefix(a.Detector, "novelty/sensitive_file/") && a.Comm == "vigil"
	}) {
		t.Errorf("own process's /etc/shadow read not judged: %+v", rec.anomalies)
	}
}
