package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/ingest"
	"github.com/vigil-dev/vigil/pipeline/schema"
	"github.com/vigil-dev/vigil/pipeline/spool"
	"github.com/vigil-dev/vigil/pipeline/store"
)

// Fault tests: rows go collector batch → (ingest) → spool → store → a real
// ClickHouse, and every test checks the table holds exactly the rows that
// were acknowledged, each once. Each row's cgroup_id is unique (a global
// sequence), so count() = uniqExact(cgroup_id) = expected proves nothing was
// lost and nothing stored twice.

// execBatch builds n exec rows with cgroup_id start, start+1, ...
func execBatch(t testing.TB, start uint64, n int, host string) collector.Batch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, collector.Schema(collector.KindExec))
	defer b.Release()
	ts := b.Field(0).(*array.TimestampBuilder)
	hosts := b.Field(1).(*array.BinaryDictionaryBuilder)
	comm := b.Field(6).(*array.BinaryDictionaryBuilder)
	argv := b.Field(8).(*array.ListBuilder)
	args := argv.ValueBuilder().(*array.StringBuilder)
	base := time.Now().Add(-time.Hour).UnixNano()
	for i := range n {
		seq := start + uint64(i)
		ts.Append(arrow.Timestamp(base + int64(seq)))
		_ = hosts.AppendString(host)
		b.Field(2).(*array.Uint32Builder).Append(uint32(seq))
		b.Field(3).(*array.Uint32Builder).Append(1)
		b.Field(4).(*array.Uint32Builder).Append(0)
		b.Field(5).(*array.Uint32Builder).Append(0)
		_ = comm.AppendString("sh")
		b.Field(7).(*array.StringBuilder).Append("/bin/sh")
		argv.Append(true)
		args.Append("-c")
		b.Field(9).(*array.Uint64Builder).Append(seq)
		for _, c := range []int{10, 11} {
			_ = b.Field(c).(*array.BinaryDictionaryBuilder).AppendString("")
		}
		b.Field(12).(*array.Uint32Builder).Append(1)
	}
	return collector.Batch{Kind: collector.KindExec, Record: b.NewRecordBatch()}
}

type faultEnv struct {
	h     *enginetest.Handle
	store *store.Writer
}

func startFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	sw := store.NewWriter(conn, store.Options{})
	t.Cleanup(func() { _ = sw.Close() })
	return &faultEnv{h: h, store: sw}
}

// rows returns count() and uniqExact(cgroup_id) of a host's exec rows.
// A new connection's handshake is retried: on a loaded CI machine the
// engine once reset one right after the SIGKILL test killed a writer
// (the engine itself stayed up), and that is not what these tests check.
func (e *faultEnv) rows(t *testing.T, host string) (n, uniq uint64) {
	t.Helper()
	conn := e.h.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for try := range 5 {
		err = conn.QueryRow(ctx, "SELECT count(), uniqExact(cgroup_id) FROM vigil.exec_events WHERE host = ?", host).Scan(&n, &uniq)
		var ne net.Error
		if err == nil || !errors.As(err, &ne) && !strings.Contains(err.Error(), "handshake") {
			break
		}
		t.Logf("count rows, try %d: %v", try+1, err)
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n, uniq
}

func (e *faultEnv) wantRows(t *testing.T, host string, want uint64) {
	t.Helper()
	n, uniq := e.rows(t, host)
	if n != want || uniq != want {
		t.Errorf("host %s: %d rows, %d distinct, want exactly %d", host, n, uniq, want)
	}
}

// runSpool starts a spool writer's Run; the returned func closes in (or
// cancels, if crash) and returns Run's error.
func runSpool(t *testing.T, w *spool.Writer, queue int) (chan<- collector.Batch, func(crash bool) error) {
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan collector.Batch, queue)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, in) }()
	var once sync.Once
	stop := func(crash bool) error {
		var err error
		once.Do(func() {
			if crash {
				cancel()
			} else {
				close(in)
			}
			err = <-done
			cancel()
			if crash {
				// Whatever was still queued was never handed over.
				close(in)
				for b := range in {
					b.Record.Release()
				}
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop(true) })
	return in, stop
}

func TestSpoolMillionRowsExactlyOnce(t *testing.T) {
	e := startFaultEnv(t)
	w, err := spool.NewWriter(e.store, spool.Options{Dir: t.TempDir(), CloseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const batches, per = 100, 10_000
	bs := make([]collector.Batch, batches)
	for i := range bs {
		bs[i] = execBatch(t, uint64(i*per), per, "million")
	}
	start := time.Now()
	in, stop := runSpool(t, w, 16)
	for _, b := range bs {
		in <- b
	}
	if err := stop(false); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st := w.Stats()
	t.Logf("1M rows through spool+store in %v (%.0f rows/s); stats %+v", took, float64(batches*per)/took.Seconds(), st)
	if st.Segments != 0 || st.InsertedRows != batches*per || st.SpooledRows != batches*per {
		t.Errorf("stats = %+v", st)
	}
	e.wantRows(t, "million", batches*per)
}

func TestSpoolSurvivesEngineKill(t *testing.T) {
	e := startFaultEnv(t)
	w, err := spool.NewWriter(e.store, spool.Options{Dir: t.TempDir(), MaxRows: 5000, MaxDelay: 50 * time.Millisecond,
		RetryBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, CloseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	in, stop := runSpool(t, w, 16)
	const batches, per = 60, 5000
	var maxSegs int
	for i := range batches {
		if i == 10 {
			pid := e.h.Supervisor.PID()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill engine %d: %v", pid, err)
			}
		}
		in <- execBatch(t, uint64(i*per), per, "enginekill")
		time.Sleep(20 * time.Millisecond)
		maxSegs = max(maxSegs, w.Stats().Segments)
	}
	if err := stop(false); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	t.Logf("engine SIGKILLed mid-stream: up to %d segments spooled; restarts %d; stats %+v", maxSegs, e.h.Supervisor.Restarts(), st)
	if st.InsertFailures == 0 {
		t.Error("no insert failed: the kill did not hit the stream")
	}
	if st.Segments != 0 || st.SpooledRows != batches*per {
		t.Errorf("stats = %+v", st)
	}
	e.wantRows(t, "enginekill", batches*per)
}

// crashAfterInsert inserts for real and then "crashes" vigil (cancels the
// spool writer) once, after the nth insert committed and before the spool
// could delete its segment: the worst moment, the replay must be
// deduplicated by its token.
type crashAfterInsert struct {
	spool.Inserter
	mu    sync.Mutex
	n     int
	crash func()
}

func (c *crashAfterInsert) InsertWithToken(ctx context.Context, kind collector.Kind, token string, recs []arrow.RecordBatch) error {
	if err := c.Inserter.InsertWithToken(ctx, kind, token, recs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n--; c.n == 0 {
		c.crash()
		return errors.New("vigil died before hearing back")
	}
	return nil
}

func TestSpoolSurvivesVigilCrash(t *testing.T) {
	e := startFaultEnv(t)
	dir := t.TempDir()
	ins := &crashAfterInsert{Inserter: e.store, n: 5}
	w1, err := spool.NewWriter(ins, spool.Options{Dir: dir, MaxRows: 5000, MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	in1, stop1 := runSpool(t, w1, 4)
	crashed := make(chan struct{})
	ins.crash = sync.OnceFunc(func() { close(crashed) })
	const per = 5000
	sent := 0
loop:
	for ; sent < 100; sent++ {
		select {
		case <-crashed:
			break loop
		case in1 <- execBatch(t, uint64(sent*per), per, "vigilcrash"):
		}
	}
	if err := stop1(true); !errors.Is(err, context.Canceled) {
		t.Fatalf("crashed run = %v", err)
	}
	st1 := w1.Stats()
	t.Logf("first run crashed after %d batches handed over: %+v", sent, st1)
	if st1.Segments == 0 {
		t.Fatal("the crash left nothing in the spool: the test did not test replay")
	}

	// vigil restarts on the same spool and goes on with new data.
	w2, err := spool.NewWriter(e.store, spool.Options{Dir: dir, MaxRows: 5000, CloseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	in2, stop2 := runSpool(t, w2, 4)
	const more = 20
	for i := range more {
		in2 <- execBatch(t, uint64((1000+i)*per), per, "vigilcrash")
	}
	if err := stop2(false); err != nil {
		t.Fatal(err)
	}
	st2 := w2.Stats()
	t.Logf("second run: %+v", st2)
	// Acknowledged = spooled (fsync'd) by either run; the rest of the first
	// run's batches were in memory at the crash and are counted as aborted.
	want := st1.SpooledRows + st2.SpooledRows
	if st2.SpooledRows != more*per || st2.Segments != 0 {
		t.Errorf("second run stats = %+v", st2)
	}
	e.wantRows(t, "vigilcrash", want)
}

func TestIngestRejectsBadRequestsWhileGoodSenderLands(t *testing.T) {
	e := startFaultEnv(t)
	w, err := spool.NewWriter(e.store, spool.Options{Dir: t.TempDir(), CloseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	in, stop := runSpool(t, w, 64)
	const token = "s3cret"
	h, err := ingest.NewHandler(in, ingest.HandlerOptions{Token: token, MaxBodyBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(ingest.Path, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The good sender streams concurrently with the bad requests.
	const batches, per = 60, 2000
	sender, err := ingest.NewSender(ingest.SenderOptions{URL: srv.URL, Token: token, MaxBatches: 4, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sendIn := make(chan collector.Batch, 8)
	sendDone := make(chan error, 1)
	go func() { sendDone <- sender.Run(context.Background(), sendIn) }()
	go func() {
		for i := range batches {
			sendIn <- execBatch(t, uint64(i*per), per, "ingest-good")
		}
		close(sendIn)
	}()

	encode := func(bs ...collector.Batch) []byte {
		var buf bytes.Buffer
		r := collector.NewRecorder(&buf)
		for _, b := range bs {
			if err := r.Write(b); err != nil {
				t.Fatal(err)
			}
			b.Record.Release()
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := encode(execBatch(t, 1<<40, 100, "ingest-bad"))
	big := encode(execBatch(t, 1<<40, 30_000, "ingest-bad"))
	if len(big) <= 1<<20 {
		t.Fatalf("oversized body is only %d bytes", len(big))
	}
	// A collector from a future version: exec with one more column.
	future := func() []byte {
		fs := append(collector.Schema(collector.KindExec).Fields(), arrow.Field{Name: "new_col", Type: arrow.PrimitiveTypes.Uint64})
		b := execBatch(t, 1<<40, 10, "ingest-bad")
		defer b.Record.Release()
		nb := array.NewUint64Builder(memory.DefaultAllocator)
		defer nb.Release()
		for range 10 {
			nb.Append(7)
		}
		extra := nb.NewArray()
		defer extra.Release()
		rec := array.NewRecordBatch(arrow.NewSchema(fs, nil), append(b.Record.Columns(), extra), 10)
		return encode(collector.Batch{Kind: collector.KindExec, Record: rec})
	}()
	unknown := func() []byte {
		b := execBatch(t, 1<<40, 10, "ingest-bad")
		return encode(collector.Batch{Kind: "exec_v9", Record: b.Record})
	}()

	for _, tc := range []struct {
		name   string
		body   []byte
		auth   string
		status int
		reason string
	}{
		{"garbage", []byte("this is not arrow at all, just bytes on the wire"), "Bearer " + token, 400, ingest.ReasonMalformed},
		{"truncated", good[:len(good)*2/3], "Bearer " + token, 400, ingest.ReasonMalformed},
		{"oversized", big, "Bearer " + token, 413, ingest.ReasonTooLarge},
		{"future schema", future, "Bearer " + token, 422, ingest.ReasonSchema},
		{"unknown kind", unknown, "Bearer " + token, 422, ingest.ReasonUnknownKind},
		{"no token", good, "", 401, ingest.ReasonUnauthorized},
		{"wrong token", good, "Bearer s3creT", 401, ingest.ReasonUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.Stats().Rejected[tc.reason]
			req, _ := http.NewRequest(http.MethodPost, srv.URL+ingest.Path, bytes.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var msg bytes.Buffer
			_, _ = msg.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(msg.String(), tc.reason) {
				t.Errorf("status %d %q, want %d %s", resp.StatusCode, strings.TrimSpace(msg.String()), tc.status, tc.reason)
			}
			if got := h.Stats().Rejected[tc.reason]; got != before+1 {
				t.Errorf("rejected[%s] = %d, want %d", tc.reason, got, before+1)
			}
			t.Logf("%d %s", resp.StatusCode, strings.TrimSpace(msg.String()))
		})
	}

	if err := <-sendDone; err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := stop(false); err != nil {
		t.Fatal(err)
	}
	t.Logf("sender %+v; handler %+v", sender.Stats(), h.Stats())
	e.wantRows(t, "ingest-good", batches*per)
	e.wantRows(t, "ingest-bad", 0)
	if st := sender.Stats(); st.DroppedRows != 0 || st.SentRows != batches*per {
		t.Errorf("sender stats = %+v", st)
	}
}

// TestSpoolSurvivesSIGKILL kills a real process: a child (this test binary
// re-run as TestSpoolSIGKILLChild) streams rows through spool and store,
// reporting how many rows its spool acknowledged; the parent SIGKILLs it
// mid-stream, replays the spool it left with a new writer, and checks that
// every acknowledged row is in ClickHouse and that no row is there twice.
func TestSpoolSurvivesSIGKILL(t *testing.T) {
	e := startFaultEnv(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolSIGKILLChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VIGIL_FAULTS_CHILD_DIR="+dir, "VIGIL_FAULTS_CHILD_ADDR="+e.h.Addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the child's acknowledgements until well into the stream.
	var acked uint64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked, _ = strconv.ParseUint(n, 10, 64)
			if acked >= 150_000 {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if acked < 150_000 {
		t.Fatalf("child acknowledged only %d rows before it ended", acked)
	}
	before, _ := e.rows(t, "sigkill")

	w, err := spool.NewWriter(e.store, spool.Options{Dir: dir, CloseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	left := w.Stats().Segments
	_, stop := runSpool(t, w, 1)
	if err := stop(false); err != nil {
		t.Fatal(err)
	}
	n, uniq := e.rows(t, "sigkill")
	t.Logf("child SIGKILLed after acknowledging %d rows; %d rows in ClickHouse then, %d segments left, %d rows after replay", acked, before, left, n)
	if n != uniq {
		t.Errorf("%d rows, %d distinct: stored twice", n, uniq)
	}
	if n < acked {
		t.Errorf("%d rows in ClickHouse, %d acknowledged: rows lost", n, acked)
	}
	var lost int64
	if err := e.h.Conn(t).QueryRow(context.Background(),
		"SELECT ? - countIf(cgroup_id < ?) FROM vigil.exec_events WHERE host = 'sigkill'", acked, acked).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if lost != 0 {
		t.Errorf("%d acknowledged rows missing", lost)
	}
}

// TestSpoolSIGKILLChild is the process TestSpoolSurvivesSIGKILL kills.
func TestSpoolSIGKILLChild(t *testing.T) {
	dir, addr := os.Getenv("VIGIL_FAULTS_CHILD_DIR"), os.Getenv("VIGIL_FAULTS_CHILD_ADDR")
	if dir == "" {
		t.Skip("run by TestSpoolSurvivesSIGKILL")
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spool.NewWriter(store.NewWriter(conn, store.Options{}), spool.Options{Dir: dir, MaxRows: 5000, MaxDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan collector.Batch, 4)
	go func() { _ = w.Run(context.Background(), in) }()
	const per = 5000
	for i := 0; ; i++ {
		in <- execBatch(t, uint64(i*per), per, "sigkill")
		// Acknowledged rows are a prefix of the sequence: one kind, spooled
		// in order.
		fmt.Printf("acked %d\n", w.Stats().SpooledRows)
	}
}
