package overhead

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	res, err := Run(context.Background(), Options{Duration: 200 * time.Millisecond, Out: t.Output()})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("cannot run (needs root): %v", err)
	}
	if res.Ratio <= 0 || len(res.Probes) == 0 {
		t.Errorf("result = %+v", res)
	}
}
