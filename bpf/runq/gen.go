// Package runq holds the compiled run-queue latency probe: a per-cgroup
// log2 histogram (microseconds) in the per-CPU hash hist, keyed by
// ProbeHistKey, filled from sched_wakeup, sched_wakeup_new and
// sched_switch.
package runq

//go:generate go tool bpf2go -cc clang -target bpfel -type hist_key Probe runq.c -- -I../include
