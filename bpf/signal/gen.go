// Package signal holds the compiled signal probe: generated signals from
// signal/signal_generate, filtered in the kernel by signal_mask.
package signal

//go:generate go tool bpf2go -cc clang -target bpfel -type signal_event Probe signal.c -- -I../include
