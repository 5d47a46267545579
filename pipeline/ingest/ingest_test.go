package ingest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/ingest"
)

// execBatch builds n exec rows.
func execBatch(t testing.TB, n int) collector.Batch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, collector.Schema(collector.KindExec))
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(i))
		_ = b.Field(1).(*array.BinaryDictionaryBuilder).AppendString("h")
		for _, c := range []int{2, 3, 4, 5} {
			b.Field(c).(*array.Uint32Builder).Append(uint32(i))
		}
		_ = b.Field(6).(*array.BinaryDictionaryBuilder).AppendString("sh")
		b.Field(7).(*array.StringBuilder).Append("/bin/sh")
		b.Field(8).(*array.ListBuilder).Append(true)
		b.Field(8).(*array.ListBuilder).ValueBuilder().(*array.StringBuilder).Append("-c")
		b.Field(9).(*array.Uint64Builder).Append(uint64(i))
		_ = b.Field(10).(*array.BinaryDictionaryBuilder).AppendString("")
		_ = b.Field(11).(*array.BinaryDictionaryBuilder).AppendString("")
		b.Field(12).(*array.Uint32Builder).Append(uint32(i))
	}
	return collector.Batch{Kind: collector.KindExec, Record: b.NewRecordBatch()}
}

// olderExecBatch builds n exec rows as a collector from before
// exec_ancestor was added sends them: without that last column.
func olderExecBatch(t testing.TB, n int) collector.Batch {
	t.Helper()
	b := execBatch(t, n)
	defer b.Record.Release()
	s := b.Record.Schema()
	if s.Field(s.NumFields()-1).Name != "exec_ancestor" {
		t.Fatalf("exec's last column is %s", s.Field(s.NumFields()-1).Name)
	}
	old := arrow.NewSchema(s.Fields()[:s.NumFields()-1], nil)
	return collector.Batch{Kind: b.Kind, Record: array.NewRecordBatch(old, b.Record.Columns()[:s.NumFields()-1], b.Record.NumRows())}
}

// withoutColumn builds n exec rows lacking column i, which no version of
// the collector sends.
func withoutColumn(t testing.TB, n, i int) collector.Batch {
	t.Helper()
	b := execBatch(t, n)
	defer b.Record.Release()
	f := slices.Delete(slices.Clone(b.Record.Schema().Fields()), i, i+1)
	c := slices.Delete(slices.Clone(b.Record.Columns()), i, i+1)
	return collector.Batch{Kind: b.Kind, Record: array.NewRecordBatch(arrow.NewSchema(f, nil), c, b.Record.NumRows())}
}

// body encodes batches as a Sender does; it releases them.
func body(t testing.TB, bs ...collector.Batch) []byte {
	t.Helper()
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

// untagged encodes one batch as a plain Arrow IPC stream, without vigil.kind.
func untagged(t testing.TB, b collector.Batch) []byte {
	t.Helper()
	defer b.Record.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(b.Record.Schema()))
	if err := w.Write(b.Record); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var lim = ingest.Limits{MaxBytes: 1 << 20, MaxBatchRows: 1000, MaxColumns: 64, MaxBatches: 4}

func TestDecode(t *testing.T) {
	good := body(t, execBatch(t, 10))
	// A length prefix claiming a 2 GiB schema message must be refused
	// without allocating it.
	hugePrefix := binary.LittleEndian.AppendUint32([]byte{0xff, 0xff, 0xff, 0xff}, 0x7fff_fff0)
	for _, tc := range []struct {
		name   string
		body   []byte
		kind   collector.Kind
		rows   int64
		reason string
	}{
		{"one batch", good, "", 10, ""},
		{"three streams", body(t, execBatch(t, 1), execBatch(t, 2), execBatch(t, 3)), "", 6, ""},
		{"kind from header", untagged(t, execBatch(t, 5)), collector.KindExec, 5, ""},
		{"no kind", untagged(t, execBatch(t, 5)), "", 0, ingest.ReasonUnknownKind},
		{"empty", nil, "", 0, ingest.ReasonMalformed},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), "", 0, ingest.ReasonMalformed},
		{"huge length prefix", hugePrefix, "", 0, ingest.ReasonMalformed},
		{"truncated", good[:len(good)-20], "", 0, ingest.ReasonMalformed},
		{"batch over row limit", body(t, execBatch(t, 1001)), "", 0, ingest.ReasonTooLarge},
		{"too many batches", body(t, execBatch(t, 1), execBatch(t, 1), execBatch(t, 1), execBatch(t, 1), execBatch(t, 1)), "", 0, ingest.ReasonTooLarge},
		{"older collector", body(t, olderExecBatch(t, 7)), "", 7, ""},
		{"column missing", body(t, withoutColumn(t, 3, 9)), "", 0, ingest.ReasonSchema},
		{"good then garbage", append(append([]byte{}, good...), "trailing junk"...), "", 0, ingest.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			bs, err := ingest.Decode(bytes.NewReader(tc.body), tc.kind, lim)
			var rows int64
			for _, b := range bs {
				rows += b.Record.NumRows()
				if !b.Record.Schema().Equal(collector.Schema(b.Kind)) {
					t.Errorf("batch schema %s", b.Record.Schema())
				}
				// Columns an older collector lacks read zero.
				if tc.name == "older collector" {
					anc := b.Record.Column(b.Record.Schema().FieldIndices("exec_ancestor")[0]).(*array.Uint32)
					if anc.Len() != int(b.Record.NumRows()) || slices.ContainsFunc(anc.Uint32Values(), func(v uint32) bool { return v != 0 }) {
						t.Errorf("exec_ancestor of an older collector's rows = %v, want zeros", anc.Uint32Values())
					}
				}
				b.Record.Release()
			}
			if time.Since(start) > time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if tc.reason == "" {
				if err != nil || rows != tc.rows {
					t.Fatalf("Decode = %d rows, %v; want %d rows", rows, err, tc.rows)
				}
				return
			}
			var re *ingest.RejectError
			if !errors.As(err, &re) || re.Reason != tc.reason || bs != nil {
				t.Fatalf("Decode = %d batches, %v; want reason %s", len(bs), err, tc.reason)
			}
		})
	}
}

// FuzzDecode: untrusted bytes from the network give an error or valid
// batches, never a panic, a hang or an unbounded allocation.
func FuzzDecode(f *testing.F) {
	good := body(f, execBatch(f, 3))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(body(f, execBatch(f, 1), execBatch(f, 2)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		bs, err := ingest.Decode(bytes.NewReader(data), collector.KindExec, lim)
		if err != nil {
			var re *ingest.RejectError
			if !errors.As(err, &re) || re.Status < 400 || bs != nil {
				t.Fatalf("error %v (%T) with %d batches", err, err, len(bs))
			}
			return
		}
		for _, b := range bs {
			// Touch every value the store would read.
			for _, c := range b.Record.Columns() {
				for i := range c.Len() {
					_ = c.ValueStr(i)
				}
			}
			b.Record.Release()
		}
	})
}

func TestHandlerQueueFullAndMethod(t *testing.T) {
	out := make(chan collector.Batch, 1)
	h, err := ingest.NewHandler(out, ingest.HandlerOptions{Token: "t", HandoffTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(method string, b []byte) *http.Response {
		req, _ := http.NewRequest(method, srv.URL, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer t")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(http.MethodPost, body(t, execBatch(t, 3))); r.StatusCode != http.StatusNoContent {
		t.Fatalf("first = %d", r.StatusCode)
	}
	if r := post(http.MethodPost, body(t, execBatch(t, 3))); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("full queue = %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := post(http.MethodGet, nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET = %d", r.StatusCode)
	}
	(<-out).Record.Release()
	st := h.Stats()
	if st.AcceptedRows != 3 || st.Rejected[ingest.ReasonQueueFull] != 1 || st.Rejected[ingest.ReasonMethod] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestSenderRetries: a pipeline that answers 503 twice, then accepts,
// receives every row once; a 4xx is not retried.
func TestSenderRetries(t *testing.T) {
	out := make(chan collector.Batch, 64)
	h, err := ingest.NewHandler(out, ingest.HandlerOptions{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	fails := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails > 0 {
			fails--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, err := ingest.NewSender(ingest.SenderOptions{URL: srv.URL, Token: "t", Backoff: 10 * time.Millisecond, MaxBatches: 5})
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan collector.Batch, 16)
	for range 12 {
		in <- execBatch(t, 10)
	}
	close(in)
	if err := s.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	close(out)
	var rows int64
	for b := range out {
		rows += b.Record.NumRows()
		b.Record.Release()
	}
	if st := s.Stats(); rows != 120 || st.Retries != 2 || st.SentRows != 120 {
		t.Errorf("received %d rows; sender %+v", rows, st)
	}

	bad, err := ingest.NewSender(ingest.SenderOptions{URL: srv.URL, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	in = make(chan collector.Batch, 1)
	in <- execBatch(t, 7)
	close(in)
	if err := bad.Run(context.Background(), in); !errors.Is(err, ingest.ErrRefusedToken) {
		t.Fatalf("wrong token: Run returned %v, want ErrRefusedToken", err)
	}
	if st := bad.Stats(); st.DroppedRows != 7 || st.Retries != 0 {
		t.Errorf("wrong token: %+v", st)
	}
	for _, u := range []string{"", "ftp://x", "http://"} {
		if _, err := ingest.NewSender(ingest.SenderOptions{URL: u, Token: "t"}); err == nil || !strings.Contains(err.Error(), "URL") {
			t.Errorf("URL %q: %v", u, err)
		}
	}
}
