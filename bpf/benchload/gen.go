// Package benchload holds a BPF load generator for benchmarks only: on each
// getppid call of one process (load_tgid) it writes burst records in the
// priv probe's format (ProbePrivEvent, the same as bpf/sys) into the priv
// probe's ring buffer, whose map and drop counter the loader substitutes
// (MapReplacements for priv_events and drops). The per-CPU map generated
// counts records submitted (slot 0) and not reserved (slot 1).
// benchload.c says why.
package benchload

//go:generate go tool bpf2go -cc clang -target bpfel -type priv_event Probe benchload.c -- -I../include
