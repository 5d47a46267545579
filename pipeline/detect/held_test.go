package detect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/models/ckpt"
	"github.com/vigil-dev/vigil/query/incidents"
)

func heldSample() []heldInsert {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 123, time.UTC)
	resolved := t0.Add(time.Hour)
	return []heldInsert{
		{table: tableMetrics, token: "detect-ab-1", rows: 2, metrics: metricCols{
			ts: []time.Time{t0, t0}, host: []string{"vm", "vm"}, entityKind: []string{"host", "comm"},
			entity: []string{"vm", "a\x00b\n@vm"}, series: []string{"execs", "runq_p99_us"}, value: []float64{3, math.NaN()},
		}},
		{table: tableAnomalies, token: "detect-ab-2", rows: 1, anomalies: []incidents.AnomalyRow{{
			ID: "a0000000-0000-0000-0000-000000000001", TS: t0, Host: "vm", EntityKind: "comm", Entity: "sh", Series: "exec_pair",
			Detector: "novelty/exec_pair/novel", Score: 0.9, Severity: "high", Expected: 0, Observed: 1, WindowStart: t0, WindowEnd: t0,
			Evidence:   incidents.Evidence{Value: "nginx -> /bin/sh", Comm: "sh", PID: 201, Tree: "tree:nginx/200@vm", EventIDs: []uint64{7, 1 << 60}},
			IncidentID: "6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01",
		}}},
		{table: tableIncidents, token: "detect-ab-3", rows: 2, incidents: []*incidentRow{
			{id: "6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01", opened: t0, updated: t0.Add(time.Second), state: "open", severity: "high",
				title: "New exec pair", hosts: []string{"vm"}, entities: []string{"comm:sh@vm"}, anomalyIDs: []string{"a0000000-0000-0000-0000-000000000001"}},
			{id: "6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a02", opened: t0, updated: resolved, resolved: &resolved, state: "resolved", severity: "low",
				title: "t", summary: "Title: t", model: "offline", promptTok: 12, complTok: math.MaxUint32},
		}, summarize: []string{"6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01"}},
	}
}

func TestHeldRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		held []heldInsert
	}{
		{"none", nil},
		{"every table", heldSample()},
		{"one table", heldSample()[1:2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, torn, err := decodeHeld(encodeHeld(tc.held))
			if err != nil || torn {
				t.Fatal(err, torn)
			}
			// NaN is not equal to itself: compare the encodings too.
			if !bytes.Equal(encodeHeld(got), encodeHeld(tc.held)) {
				t.Errorf("round trip changed the inserts:\n got %+v\nwant %+v", got, tc.held)
			}
			if len(tc.held) > 1 {
				got[0].metrics.value[1], tc.held[0].metrics.value[1] = 0, 0
			}
			if len(got) != len(tc.held) || len(got) > 0 && !reflect.DeepEqual(got, tc.held) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.held)
			}
		})
	}
}

// record frames one record as the sink appends it.
func record(rec []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(rec))), rec...) }

// TestHeldLog: what the sink appends while ClickHouse refuses reads back
// as the inserts not yet done, and a record cut short by a crash loses
// only itself.
func TestHeldLog(t *testing.T) {
	in := heldSample()
	log := encodeHeld(in[:1])
	log = append(log, record(appendInsert(nil, &in[1]))...)
	log = append(log, record(appendDone(nil, in[0].token))...)
	log = append(log, record(appendDone(nil, "detect-never-held"))...) // done twice, or dropped: harmless
	whole := append(log, record(appendInsert(nil, &in[2]))...)

	for _, tc := range []struct {
		name   string
		file   []byte
		tokens []string
		torn   bool
	}{
		{"inserts and done marks", whole, []string{in[1].token, in[2].token}, false},
		{"last record cut short", whole[:len(whole)-5], []string{in[1].token}, true},
		{"only its length written", whole[:len(log)+1], []string{in[1].token}, true},
		{"everything done", append(slices.Clone(log), record(appendDone(nil, in[1].token))...), nil, false},
	} {
		held, torn, err := decodeHeld(tc.file)
		var tokens []string
		for _, h := range held {
			tokens = append(tokens, h.token)
		}
		if err != nil || torn != tc.torn || !slices.Equal(tokens, tc.tokens) {
			t.Errorf("%s: %v, torn %v, err %v; want %v, torn %v", tc.name, tokens, torn, err, tc.tokens, tc.torn)
		}
	}
}

func TestHeldDecodeRefuses(t *testing.T) {
	good := encodeHeld(heldSample())
	rec := appendInsert(nil, &heldSample()[0])
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"another format", []byte("vigil-detect-held\x01\x00")},
		{"a record with bytes to spare", append([]byte(heldMagic), record(append(slices.Clone(rec), 0))...)},
		{"a record too short inside", append([]byte(heldMagic), record(rec[:len(rec)-3])...)},
		{"unknown table", append([]byte(heldMagic), record([]byte{recInsert, 3, 'f', 'o', 'o', 1, 't', 0})...)},
		{"unknown record kind", append([]byte(heldMagic), record([]byte{9})...)},
		{"count beyond the record", append([]byte(heldMagic), record([]byte{recInsert, 7, 'm', 'e', 't', 'r', 'i', 'c', 's', 1, 't', 0xff, 0x0f})...)},
		{"a length no append writes", append(slices.Clone(good), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
	} {
		if _, _, err := decodeHeld(tc.in); !errors.Is(err, ckpt.ErrBad) {
			t.Errorf("%s: err %v, want ckpt.ErrBad", tc.name, err)
		}
	}
}

// TestHeldFileSetAside: a hold file that does not decode is renamed, not
// deleted and not retried, and the sink starts without it.
func TestHeldFileSetAside(t *testing.T) {
	file := filepath.Join(t.TempDir(), "held-detections")
	if err := os.WriteFile(file, []byte("not a hold file"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s := NewSink(SinkOptions{Conn: &outageConn{}, HoldFile: file, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file + ".bad"); err != nil || string(b) != "not a hold file" {
		t.Errorf("file not set aside: %q, %v", b, err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Error("the bad file is still where the next start would read it")
	}
	if !strings.Contains(log.String(), "kept rows not restored") {
		t.Errorf("log does not say so:\n%s", log.String())
	}
}

func FuzzDecodeHeld(f *testing.F) {
	f.Add(encodeHeld(heldSample()))
	f.Add(encodeHeld(nil))
	f.Add(append(encodeHeld(heldSample()[:1]), record(appendDone(nil, "detect-ab-1"))...))
	f.Add([]byte(heldMagic + "\x0b\x01\x07metrics\x00\x05"))
	f.Fuzz(func(t *testing.T, b []byte) {
		held, _, err := decodeHeld(b)
		if err != nil {
			return
		}
		// What decodes is kept whole: written again and read back, it
		// writes the same bytes (the input itself may spell a number
		// longer than needed).
		once := encodeHeld(held)
		back, torn, err := decodeHeld(once)
		if err != nil || torn {
			t.Fatalf("re-encoded inserts do not decode: %v", err)
		}
		if twice := encodeHeld(back); !bytes.Equal(once, twice) {
			t.Fatalf("a round trip changed the inserts:\n%x\n%x", once, twice)
		}
	})
}

// TestHeldFileLeftForAStoringSink: a sink that stores nothing (no Conn)
// neither reads nor removes the hold file a previous run left.
func TestHeldFileLeftForAStoringSink(t *testing.T) {
	file := filepath.Join(t.TempDir(), "held-detections")
	kept := encodeHeld(heldSample())
	if err := os.WriteFile(file, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewSink(SinkOptions{HoldFile: file})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, kept) {
		t.Errorf("hold file changed by a sink with no ClickHouse: %v", err)
	}
}
