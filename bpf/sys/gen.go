// Package sys holds the compiled syscall probe object behind three of
// Vigil's probes: per-process syscall counts (the counts map), sensitive
// file opens (ring file_events, ProbeFileEvent) and privilege changes (ring
// priv_events, ProbePrivEvent). Each is switched on at load time by the
// enable_counts, enable_file and enable_priv constants.
package sys

//go:generate go tool bpf2go -cc clang -target bpfel -type file_event -type priv_event -type count_key -type count_slot -type pattern Probe sys.c -- -I../include
