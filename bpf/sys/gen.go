// Package sys holds the compiled syscall probe object behind three of
// Vigil's probes: per-process syscall counts (the counts map), sensitive
// file opens (ring file_events, ProbeFileEvent) and privilege changes (ring
// priv_events, ProbePrivEvent). Counts run in the sys_enter program on
// every syscall (enable_counts); file and priv on the per-syscall
// tracepoints (FileSysEnter, FileSysExit, PrivSysEnter1..3, PrivSysExit)
// or in sys_enter and sys_exit (generic_file, generic_priv): sys.c says
// which when.
package sys

//go:generate go tool bpf2go -cc clang -target bpfel -type file_event -type priv_event -type count_key -type count_slot -type pattern Probe sys.c -- -I../include
