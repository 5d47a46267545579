package store_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	benchstore "github.com/vigil-dev/vigil/bench/store"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
)

// TestRun runs the benchmark small, so it keeps working; set
// VIGIL_BENCH_ROWS (and VIGIL_BENCH_ROUNDS) for a real measurement.
func TestRun(t *testing.T) {
	h := enginetest.Start(t)
	rows := 100_000
	if s := os.Getenv("VIGIL_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		rows = n
	}
	rounds := 1
	if s := os.Getenv("VIGIL_BENCH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		rounds = n
	}
	res, err := benchstore.Run(context.Background(), benchstore.Options{Conn: h.Conn(t), Rows: rows, Rounds: rounds})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res)
	if res.Ratio() <= 0 {
		t.Errorf("ratio %v", res.Ratio())
	}
}
