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

func TestRunBurst(t *testing.T) {
	const burst = 16
	res, err := Run(context.Background(), Options{Duration: 500 * time.Millisecond, Burst: burst, Rate: 200_000, DecodeRecords: 100_000, Out: t.Output()})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("cannot run (needs root): %v", err)
	}
	if res.Burst != burst || res.Generated == 0 || res.Generated%burst != 0 {
		t.Fatalf("result = %+v: want a multiple of %d records generated", res, burst)
	}
	// Every record is accounted for: received, or dropped in the kernel
	// or in user space. Other processes' priv calls only add rows, unless
	// some of theirs were dropped as well.
	if got := res.Events - res.OtherEvents + res.KernelDrops + res.UserDrops; got != res.Generated && res.OtherEvents == 0 {
		t.Errorf("result = %+v: received %d + kernel drops %d + user drops %d = %d, generated %d",
			res, res.Events-res.OtherEvents, res.KernelDrops, res.UserDrops, got, res.Generated)
	}
	if res.Events < res.Generated/2 {
		t.Errorf("result = %+v: most records missing at %d records/s", res, 200_000)
	}
}

func TestRunBurstRange(t *testing.T) {
	for _, burst := range []int{-1, maxBurst + 1} {
		if _, err := Run(context.Background(), Options{Burst: burst}); err == nil {
			t.Errorf("burst %d: no error", burst)
		}
	}
}
