package detect

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/schema"
	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/incidents"
	"github.com/vigil-dev/vigil/query/summary"
	"github.com/vigil-dev/vigil/ui"
)

// hub records published messages.
type hub struct {
	mu   sync.Mutex
	msgs map[string][]any
}

func (h *hub) Publish(typ string, v any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = map[string][]any{}
	}
	h.msgs[typ] = append(h.msgs[typ], v)
}

func (h *hub) get(typ string) []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]any(nil), h.msgs[typ]...)
}

// TestSinkEngine runs the detector into a Sink over a real ClickHouse: the
// novel exec pair's anomaly, its incident (with an offline summary stored
// as a newer version) and the metrics land in their tables, and
// query/incidents reads the incident back with its process tree.
func TestSinkEngine(t *testing.T) {
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	// The raw exec rows the store stage would have written.
	for _, r := range []struct {
		ts              time.Time
		pid, ppid       uint32
		comm, file, arg string
	}{
		{at(ms(200)), 200, 1, "nginx", "/usr/sbin/nginx", "nginx: master"},
		{at(7 * time.Second), 201, 200, "sh", "/bin/sh", "sh -c id"},
	} {
		if err := conn.Exec(ctx, `INSERT INTO vigil.exec_events (ts, host, pid, ppid, uid, gid, comm, filename, argv, cgroup_id, container_id)
VALUES (?, 'web-1', ?, ?, 33, 33, ?, ?, ?, 7, 'c1')`, r.ts, r.pid, r.ppid, r.comm, r.file, []string{r.arg}); err != nil {
			t.Fatal(err)
		}
	}

	pub := &hub{}
	sink := NewSink(SinkOptions{
		Conn: conn, Publisher: pub, Summarizer: summary.New(summary.Options{}),
		FlushInterval: 50 * time.Millisecond, SummaryInterval: 10 * time.Millisecond,
	})
	defer sink.Close()
	runNovelExecPair(t, sink)

	var id string
	waitFor(t, conn, "the incident's summary version", func() bool {
		row := conn.QueryRow(ctx, "SELECT toString(id), summary FROM vigil.incidents FINAL")
		var s string
		return row.Scan(&id, &s) == nil && s != ""
	})
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	var anomalies, linked, metrics uint64
	if err := conn.QueryRow(ctx, "SELECT count(), countIf(toString(incident_id) = ?) FROM vigil.anomalies", id).Scan(&anomalies, &linked); err != nil {
		t.Fatal(err)
	}
	if anomalies != 1 || linked != 1 {
		t.Errorf("anomalies %d, linked to the incident %d; want 1, 1", anomalies, linked)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM vigil.metrics WHERE entity_kind = 'container' AND entity = 'c1' AND series = 'execs'").Scan(&metrics); err != nil || metrics == 0 {
		t.Errorf("container exec metrics: %d, %v", metrics, err)
	}
	var model string
	var versions uint64
	if err := conn.QueryRow(ctx, "SELECT count(), argMax(summary_model, updated) FROM vigil.incidents WHERE id = toUUID(?)", id).Scan(&versions, &model); err != nil {
		t.Fatal(err)
	}
	if versions < 2 || model != summary.OfflineModel {
		t.Errorf("incident versions %d, summary model %q", versions, model)
	}

	src := incidents.New(chread.NewClickHouse(conn, chread.Limits{}), incidents.Options{})
	det, err := src.Incident(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if det.Summary == "" || len(det.AnomalyList) != 1 || det.AnomalyList[0].Process != "sh" {
		t.Errorf("incident detail %+v", det)
	}
	var tree []string
	flagged := false
	for _, p := range det.ProcessTree {
		tree = append(tree, p.Comm)
		flagged = flagged || (p.PID == 201 && p.Flagged)
	}
	if strings.Join(tree, ",") != "nginx,sh" || !flagged {
		t.Errorf("process tree %+v", det.ProcessTree)
	}

	if len(pub.get("anomaly")) != 1 || len(pub.get("incident")) < 2 {
		t.Errorf("published %d anomalies, %d incident messages", len(pub.get("anomaly")), len(pub.get("incident")))
	}
	toks := pub.get("summary_token")
	if len(toks) < 2 || !toks[len(toks)-1].(ui.SummaryToken).Done {
		t.Errorf("summary tokens %+v", toks)
	}
}

// runNovelExecPair runs the detector into out over the learning batches
// and then nginx's first shell in container c1: one anomaly, one incident.
func runNovelExecPair(t *testing.T, out Output) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	batches := append(learningBatches(t, mem),
		makeBatch(t, mem, collector.KindExec, execRow(at(7*time.Second), 201, 200, "sh", "/bin/sh", "c1")))
	run(t, New(testOptions(out, "")), batches...)
}

func waitFor(t *testing.T, conn driver.Conn, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outageConn is a real ClickHouse connection whose inserts fail while down
// is set, as they do when the server is unreachable; after a failure with
// sent set, the rows have reached the server anyway (a lost answer). While
// hung is set, an insert waits, whatever its context says, until hung is
// closed: clickhouse-go's handshake with a stopped server does that.
type outageConn struct {
	driver.Conn
	down, sent atomic.Bool
	hung       atomic.Pointer[chan struct{}]
}

func (c *outageConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if h := c.hung.Load(); h != nil {
		<-*h
		return nil, errors.New("read: i/o timeout")
	}
	if c.down.Load() {
		return nil, errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
	}
	b, err := c.Conn.PrepareBatch(ctx, q, opts...)
	if err != nil || !c.sent.Load() {
		return b, err
	}
	return lostAnswer{b}, nil
}

// lostAnswer sends its rows and reports a timeout.
type lostAnswer struct{ driver.Batch }

func (b lostAnswer) Send() error {
	if err := b.Batch.Send(); err != nil {
		return err
	}
	return errors.New("read: i/o timeout")
}

// TestSinkHoldsThroughOutage: what the detector finds while ClickHouse
// refuses inserts is held and stored once it is back, in order and once,
// even when an answer was lost after ClickHouse took the rows.
func TestSinkHoldsThroughOutage(t *testing.T) {
	h := enginetest.Start(t)
	real := h.Conn(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, real, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	conn := &outageConn{Conn: real}
	conn.down.Store(true)
	sink := NewSink(SinkOptions{Conn: conn, FlushInterval: 20 * time.Millisecond})
	defer sink.Close()
	runNovelExecPair(t, sink)

	deadline := time.Now().Add(10 * time.Second)
	for sink.Stats().HeldRows == 0 || sink.Stats().InsertErrors == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing held during the outage: %+v", sink.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The first insert after the outage loses its answer.
	errs := sink.Stats().InsertErrors
	conn.sent.Store(true)
	conn.down.Store(false)
	waitFor(t, real, "an insert whose answer is lost", func() bool { return sink.Stats().InsertErrors > errs })
	conn.sent.Store(false)
	waitFor(t, real, "the held rows", func() bool { return sink.Stats().HeldRows == 0 })
	if st := sink.Stats(); st.DroppedRows != 0 {
		t.Errorf("rows dropped: %+v", st)
	}
	storedOnce(t, real, "after the outage")
}

// TestSinkKeepsHeldAcrossRestart: what ClickHouse has not taken when the
// sink closes is kept in the hold file and stored by the next sink, once,
// even the insert ClickHouse took just before the stop without the answer
// coming back (its deduplication token is kept with it).
func TestSinkKeepsHeldAcrossRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "models", "held-detections")
	first, conn, real := heldThroughOutage(t, file)
	held := first.Stats().HeldRows
	// The server now hangs: the stop must not wait for it, the rows wait
	// on disk instead.
	hung := make(chan struct{})
	defer close(hung)
	conn.hung.Store(&hung)
	closed := make(chan error, 1)
	go func() { closed <- first.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close waits for a hung ClickHouse")
	}
	if st := first.Stats(); st.DroppedRows != 0 {
		t.Errorf("rows dropped at the stop: %+v", st)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("nothing kept at the stop (%d rows held): %v", held, err)
	}

	second := NewSink(SinkOptions{Conn: real, FlushInterval: 20 * time.Millisecond, HoldFile: file})
	defer second.Close()
	if got := second.Stats().HeldRows; got < held {
		t.Errorf("restored %d rows, %d were held", got, held)
	}
	waitFor(t, real, "the kept rows", func() bool { return second.Stats().HeldRows == 0 })
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("hold file still there once stored: %v", err)
	}
	storedOnce(t, real, "after the restart")
}

// storedOnce checks what runNovelExecPair leaves in ClickHouse: its one
// anomaly, its incident and the metrics, none of them stored twice.
func storedOnce(t *testing.T, conn driver.Conn, when string) {
	t.Helper()
	ctx := context.Background()
	var anomalies, incidentRows, metrics, dupMetrics uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM vigil.anomalies").Scan(&anomalies); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM vigil.incidents").Scan(&incidentRows); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(), toUInt64(count() - uniqExact(ts, entity, series)) FROM vigil.metrics").Scan(&metrics, &dupMetrics); err != nil {
		t.Fatal(err)
	}
	if anomalies != 1 || incidentRows == 0 || metrics == 0 || dupMetrics != 0 {
		t.Errorf("%s: %d anomalies (want 1), %d incident rows, %d metrics rows, %d of them twice", when, anomalies, incidentRows, metrics, dupMetrics)
	}
}

// TestSinkHeldSurvivesCrash: while ClickHouse refuses inserts the hold file
// is written as they are held, so what a crash (SIGKILL, power loss) leaves
// on disk, with no Close, is stored by the next start, once.
func TestSinkHeldSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "held-detections")
	first, _, real := heldThroughOutage(t, file)
	defer first.Close()
	time.Sleep(200 * time.Millisecond) // every queued item sealed and held

	// The crash: the file as it is now, no Close.
	image, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("nothing on disk during the outage: %v", err)
	}
	held, torn, err := decodeHeld(image)
	var rows int
	for _, h := range held {
		rows += h.rows
	}
	if err != nil || torn || int64(rows) != first.Stats().HeldRows {
		t.Fatalf("hold file has %d rows (torn %v, err %v), the sink holds %d", rows, torn, err, first.Stats().HeldRows)
	}
	crashed := filepath.Join(dir, "crashed")
	if err := os.WriteFile(crashed, image, 0o600); err != nil {
		t.Fatal(err)
	}

	second := NewSink(SinkOptions{Conn: real, FlushInterval: 20 * time.Millisecond, HoldFile: crashed})
	defer second.Close()
	waitFor(t, real, "the rows left by the crash", func() bool { return second.Stats().HeldRows == 0 })
	if _, err := os.Stat(crashed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("hold file still there once stored: %v", err)
	}
	storedOnce(t, real, "after the crash")
}

// heldThroughOutage starts a sink keeping file over a ClickHouse that
// refuses inserts and runs the novel exec pair into it; one insert then
// reaches ClickHouse but its answer is lost, and ClickHouse refuses again.
func heldThroughOutage(t *testing.T, file string) (*Sink, *outageConn, driver.Conn) {
	t.Helper()
	real := enginetest.Start(t).Conn(t)
	if err := schema.Migrate(context.Background(), real, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	conn := &outageConn{Conn: real}
	conn.down.Store(true)
	sink := NewSink(SinkOptions{Conn: conn, FlushInterval: 20 * time.Millisecond, HoldFile: file})
	runNovelExecPair(t, sink)
	waitFor(t, real, "rows held during the outage", func() bool { return sink.Stats().HeldRows > 0 && sink.Stats().InsertErrors > 0 })
	errs := sink.Stats().InsertErrors
	conn.sent.Store(true)
	conn.down.Store(false)
	waitFor(t, real, "an insert whose answer is lost", func() bool { return sink.Stats().InsertErrors > errs })
	conn.down.Store(true)
	conn.sent.Store(false)
	return sink, conn, real
}
