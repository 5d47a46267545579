package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
)

// TestRecordAndReplay records real kernel events with `vigil collect
// --record`, replays the file into a real ClickHouse with `vigil replay`, and
// finds the marker exec there.
func TestRecordAndReplay(t *testing.T) {
	requireRoot(t)
	bin := vigilBinary(t)
	rec := filepath.Join(t.TempDir(), "host.arrow")
	cmd := exec.Command(bin, "collect", "--probes", "exec,tcp", "--duration", "4s", "--record", rec)
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	marker := uniqueExec(t)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("collect --record: %v", err)
	}

	h := enginetest.Start(t)
	out, err := exec.Command(bin, "replay", "--clickhouse", h.DSN, rec).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dropped 0") {
		t.Fatalf("vigil replay: %v\n%s", err, out)
	}
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM vigil.exec_events WHERE has(argv, '%s')", marker)
	if err := h.Conn(t).QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("marker exec replayed %d times, want 1\n%s", n, out)
	}
}
