// Package oom holds the compiled OOM probe: OOM-killer victims from
// oom/mark_victim.
package oom

//go:generate go tool bpf2go -cc clang -target bpfel -type oom_event Probe oom.c -- -I../include
