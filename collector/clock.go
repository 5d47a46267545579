package collector

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// clock converts the kernel's CLOCK_BOOTTIME stamps (bpf_ktime_get_boot_ns)
// to wall-clock time. The offset is re-read on every flush so that wall
// clock steps show up within one batch.
type clock struct {
	offset atomic.Int64 // realtime - boottime, in ns
}

func (c *clock) sync() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return // keep the previous offset; CLOCK_BOOTTIME does not fail on Linux
	}
	c.offset.Store(time.Now().UnixNano() - ts.Nano())
}

// wall returns the wall-clock ns since the epoch of a boot-time stamp.
func (c *clock) wall(bootNs uint64) int64 {
	return int64(bootNs) + c.offset.Load()
}

// bootNow returns the current CLOCK_BOOTTIME in ns.
func bootNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}
