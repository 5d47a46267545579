// Package exec holds the compiled exec probe: the sched/sched_process_exec
// tracepoint program, its ring buffer of ProbeExecEvent records and its
// per-CPU count of failed reserves. The collector loads it; nothing here
// runs on its own.
package exec

//go:generate go tool bpf2go -cc clang -target bpfel -type exec_event Probe exec.c -- -I../include
