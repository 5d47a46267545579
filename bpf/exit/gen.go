// Package exit holds the compiled exit probe: process exits (status,
// signal, lifetime) from sched/sched_process_exit, with per-process fork
// and thread counts kept in the kernel from sched/sched_process_fork.
package exit

//go:generate go tool bpf2go -cc clang -target bpfel -type exit_event Probe exit.c -- -I../include
