package collect

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	res, err := Run(context.Background(), Options{Duration: 500 * time.Millisecond, Rate: 50_000, DecodeRecords: 100_000, Out: t.Output()})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("cannot run (needs root): %v", err)
	}
	if res.Events == 0 || res.Events+res.KernelDrops+res.UserDrops < res.Generated {
		t.Errorf("result = %+v: events missing", res)
	}
	if res.DecodePerSec == 0 {
		t.Error("no decode rate")
	}
}
