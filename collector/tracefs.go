package collector

import (
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
)

// tracefsDir is where tracefs is mounted when it is not mounted anywhere.
const tracefsDir = "/sys/kernel/tracing"

// ensureTracefs makes tracefs available for classic tracepoints
// (link.Tracepoint looks the event ids up in it), mounting it at
// tracefsDir when neither it nor debugfs's tracing directory is mounted.
// A mount is logged and left in place on Close: other tools may be using
// it by then, and it is what a systemd boot sets up anyway.
func ensureTracefs(log *slog.Logger) error {
	if tracefsMounted() {
		return nil
	}
	err := unix.Mount("nodev", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RELATIME, "")
	if errors.Is(err, unix.EBUSY) && tracefsMounted() {
		return nil // mounted by someone else meanwhile
	}
	if err != nil {
		return fmt.Errorf("mount tracefs on %s: %w", tracefsDir, err)
	}
	log.Info("mounted tracefs for the per-syscall tracepoints", "path", tracefsDir)
	return nil
}

// tracefsMounted reports whether tracefs is where link.Tracepoint looks
// for it: tracefsDir, or tracing/ in a debugfs mount (a tracefs automount
// on kernels since 4.1, part of debugfs itself before).
func tracefsMounted() bool {
	for _, p := range []struct {
		path  string
		magic int64
	}{
		{tracefsDir, unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.DEBUGFS_MAGIC},
	} {
		var st unix.Statfs_t
		if unix.Statfs(p.path, &st) == nil && int64(st.Type) == p.magic {
			return true
		}
	}
	return false
}
