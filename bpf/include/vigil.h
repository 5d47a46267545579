/* Shared definitions for Vigil's BPF probes. Each probe folder compiles one
 * object; this header gives every object the same self-filter, ring buffer
 * wakeup policy and failed-reserve counter. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16

/* The collector's own tgid, set by the loader before load so that Vigil's
 * activity never feeds back into its own telemetry. */
volatile const u32 vigil_tgid = 0;

/* Wake the reader only once this many bytes are queued; below that the
 * reader picks records up on its own short poll deadline. 0 wakes on every
 * record. Set by the loader. */
volatile const u64 wakeup_bytes = 0;

/* VIGIL_RINGBUF declares a ring buffer of the given size in bytes. */
#define VIGIL_RINGBUF(name, size)                 \
	struct {                                  \
		__uint(type, BPF_MAP_TYPE_RINGBUF);   \
		__uint(max_entries, size);            \
	} name SEC(".maps")

/* VIGIL_DROPS declares a per-CPU counter of failed ring buffer reserves;
 * user space sums the CPUs. One slot per ring buffer of the object. */
#define VIGIL_DROPS(name, slots)                        \
	struct {                                        \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);    \
		__uint(max_entries, slots);                 \
		__type(key, u32);                           \
		__type(value, u64);                         \
	} name SEC(".maps")

static __always_inline void vigil_count_drop(void *drops, u32 slot)
{
	u64 *n = bpf_map_lookup_elem(drops, &slot);
	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

/* vigil_submit commits a reserved record of size bytes with batched
 * wakeups: the reader is woken only as the queued data crosses
 * wakeup_bytes (a window of a few records, since other CPUs reserve
 * concurrently). A reader sleeps only once it has drained the ring, so one
 * wakeup per crossing suffices; anything missed is picked up by the
 * reader's poll deadline. Waking on every record above the threshold would
 * cost an irq_work per record exactly when the reader is already behind. */
static __always_inline void vigil_submit_sized(void *rb, void *rec, u64 size)
{
	u64 flags = BPF_RB_NO_WAKEUP;
	u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	if (avail >= wakeup_bytes && avail < wakeup_bytes + 16 * (size + 8))
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
}

#define vigil_submit(rb, rec) vigil_submit_sized(rb, rec, sizeof(*(rec)))

static __always_inline bool vigil_is_self(u32 tgid)
{
	return vigil_tgid != 0 && tgid == vigil_tgid;
}
