package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Run's goroutines (load, poller, websocket reader, process waiter) must all
// be gone when it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHistogramQuantiles(t *testing.T) {
	h := histogram{buckets: map[int64]uint64{}}
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i)*time.Millisecond, 1)
	}
	s := h.summary()
	if s.Samples != 100 || s.P50MS < 50 || s.P50MS > 51.1 || s.P99MS < 99 || s.P99MS > 100.1 || s.MaxMS != 100 {
		t.Fatalf("summary = %+v, want p50≈50 p99≈99..100 max 100 over 100 samples", s)
	}
	if (&histogram{buckets: map[int64]uint64{}}).summary() != (Latency{}) {
		t.Fatal("an empty histogram is not zero")
	}
}

func TestParseTS(t *testing.T) {
	want := time.Date(2026, 11, 24, 17, 1, 2, 123456789, time.UTC)
	for _, s := range []string{"2026-11-24T17:01:02.123456789Z", "2026-11-24 17:01:02.123456789"} {
		got, err := parseTS(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTS(%q) = %v, %v", s, got, err)
		}
	}
}

// TestRunLowRate runs the whole measurement at a low rate for a few seconds
// against a freshly built vigil: the real probes and the embedded engine.
// It needs root and BTF; with CI=true their absence fails the test.
func TestRunLowRate(t *testing.T) {
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "the kernel probes need root"
	case !exists("/sys/kernel/btf/vmlinux"):
		why = "the kernel has no BTF"
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s", why)
		}
		t.Skip(why)
	}
	bin := buildVigil(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var table strings.Builder
	res, err := Run(ctx, Options{Binary: bin, Rate: 500, Duration: 3 * time.Second, Out: &table})
	if err != nil {
		if strings.Contains(err.Error(), "no ClickHouse engine") || strings.Contains(err.Error(), "libchdb") {
			if os.Getenv("CI") == "true" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if res.Generated < 1000 {
		t.Errorf("generated %d events in 3 s at 500/s", res.Generated)
	}
	if res.Stored != res.Generated || res.Late != 0 {
		t.Errorf("stored %d of %d (late %d): a low rate must lose nothing", res.Stored, res.Generated, res.Late)
	}
	if res.ClickHouse.Samples != res.Stored || res.ClickHouse.P99MS <= 0 || res.ClickHouse.P99MS > 10_000 {
		t.Errorf("clickhouse latency %+v implausible for %d stored", res.ClickHouse, res.Stored)
	}
	if res.Websocket.Samples == 0 {
		t.Errorf("no marked event reached the websocket (%s)", res.WebsocketError)
	}
}

// TestRunAtRate is the measurement itself, run by hand:
//
//	VIGIL_TEST_E2E_RATE=100000 VIGIL_TEST_E2E_DURATION=10s go test -run RunAtRate -v ./bench/e2e
func TestRunAtRate(t *testing.T) {
	rate, _ := strconv.Atoi(os.Getenv("VIGIL_TEST_E2E_RATE"))
	if rate <= 0 {
		t.Skip("set VIGIL_TEST_E2E_RATE (events/s) to run the measurement")
	}
	d, err := time.ParseDuration(os.Getenv("VIGIL_TEST_E2E_DURATION"))
	if err != nil {
		d = 10 * time.Second
	}
	bin := buildVigil(t)
	var table strings.Builder
	res, err := Run(context.Background(), Options{Binary: bin, Rate: rate, Duration: d, Out: &table})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("\n%s\n%s", table.String(), b)
}

func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
