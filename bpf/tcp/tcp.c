//go:build ignore

/* tcp: TCP connection lifecycle from sock/inet_sock_set_state and
 * retransmits from tcp/tcp_retransmit_skb, both attached as tp_btf.
 *
 * State changes often run in softirq context, where the current task is
 * unrelated to the socket. Flows are therefore attributed when the owner is
 * known: at connect() (CLOSE -> SYN_SENT, process context) or, for inbound
 * connections, to the process that called listen() on the local port.
 * The attribution lives in the flows map, keyed by socket, until close. */
#include "vigil.h"
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

enum tcp_event_type {
	TCP_EVENT_CONNECT = 1,        /* outbound connect established */
	TCP_EVENT_CONNECT_FAILED = 2, /* outbound connect refused or timed out */
	TCP_EVENT_ACCEPT = 3,         /* inbound connection established */
	TCP_EVENT_CLOSE = 4,          /* connection closed */
};

struct tcp_event {
	u64 boot_ns;
	u64 cgroup_id;
	u64 latency_ns;     /* connect, connect_failed: since SYN sent */
	u64 duration_ns;    /* close: since established */
	u64 bytes_sent;     /* close: payload bytes sent, retransmissions not counted */
	u64 bytes_received; /* close: payload bytes received */
	u32 pid;            /* owner (tgid), 0 if unknown */
	u32 type;           /* enum tcp_event_type */
	u32 family;         /* AF_INET or AF_INET6 */
	u32 retransmits;    /* close: segments retransmitted */
	u32 sport;
	u32 dport;
	u8 saddr[16];       /* first 4 bytes for AF_INET */
	u8 daddr[16];
	u8 comm[TASK_COMM_LEN];
};

/* Note: a failed connect's sport may be 0 (the port is assigned after
 * SYN_SENT is traced and released before CLOSE). */
struct retransmit_event {
	u64 boot_ns;
	u64 cgroup_id;
	u32 pid;
	u32 family;
	u32 sport;
	u32 dport;
	u32 state;          /* TCP state of the socket */
	u32 total_retrans;  /* retransmits so far on this socket */
	u8 saddr[16];
	u8 daddr[16];
	u8 comm[TASK_COMM_LEN];
};

struct owner {
	u64 cgroup_id;
	u32 pid;
	u32 _pad;
	u8 comm[TASK_COMM_LEN];
};

struct addrs {
	u32 family;
	u32 sport;
	u32 dport;
	u8 saddr[16];
	u8 daddr[16];
};

struct flow {
	u64 start_ns; /* SYN sent or accepted, bpf_ktime_get_ns */
	u64 est_ns;   /* established, 0 before */
	struct owner owner;
	/* Addresses as of established: by the time the socket reaches CLOSE
	 * the kernel may have released its local port. family 0 = unset. */
	struct addrs addrs;
};

/* Emit tcp_events only when the tcp probe is on; the retransmit probe loads
 * the same object for its flow attribution alone. Set by the loader. */
volatile const u32 emit_tcp = 1;

VIGIL_RINGBUF(tcp_events, 1 << 21);
VIGIL_RINGBUF(retransmit_events, 1 << 20);
VIGIL_DROPS(drops, 2); /* 0: tcp_events, 1: retransmit_events */
const struct tcp_event *unused_tcp_event __attribute__((unused));
const struct retransmit_event *unused_retransmit_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u64); /* struct sock * */
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u32); /* local port */
	__type(value, struct owner);
} listeners SEC(".maps");

static __always_inline void current_owner(struct owner *o)
{
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->_pad = 0;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline void read_addrs(const struct sock *sk, u32 *family, u8 *saddr,
				       u8 *daddr, u32 *sport, u32 *dport)
{
	u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	*family = fam;
	__builtin_memset(saddr, 0, 16);
	__builtin_memset(daddr, 0, 16);
	if (fam == AF_INET) {
		BPF_CORE_READ_INTO((u32 *)saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((u32 *)daddr, sk, __sk_common.skc_daddr);
	} else {
		bpf_core_read(saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	*sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	*dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* fill_owner_addrs sets an event's owner (cgroup, pid, comm) from its flow,
 * zero when the socket is not tracked, and its addresses from the flow or,
 * when the flow has none, from the socket. A macro because tcp_event and
 * retransmit_event are different structs with the same field names. */
#define fill_owner_addrs(e, f, sk)                                                         \
	do {                                                                               \
		if (f) {                                                                   \
			(e)->cgroup_id = (f)->owner.cgroup_id;                             \
			(e)->pid = (f)->owner.pid;                                         \
			__builtin_memcpy((e)->comm, (f)->owner.comm, sizeof((e)->comm));   \
		} else {                                                                   \
			(e)->cgroup_id = 0;                                                \
			(e)->pid = 0;                                                      \
			__builtin_memset((e)->comm, 0, sizeof((e)->comm));                 \
		}                                                                          \
		if ((f) && (f)->addrs.family) {                                            \
			(e)->family = (f)->addrs.family;                                   \
			(e)->sport = (f)->addrs.sport;                                     \
			(e)->dport = (f)->addrs.dport;                                     \
			__builtin_memcpy((e)->saddr, (f)->addrs.saddr, 16);                \
			__builtin_memcpy((e)->daddr, (f)->addrs.daddr, 16);                \
		} else {                                                                   \
			read_addrs((sk), &(e)->family, (e)->saddr, (e)->daddr, &(e)->sport, \
				   &(e)->dport);                                           \
		}                                                                          \
	} while (0)

static __always_inline void emit(const struct sock *sk, u32 type, struct flow *f, u64 now)
{
	if (!emit_tcp)
		return;
	if (f && vigil_is_self(f->owner.pid))
		return;
	struct tcp_event *e = bpf_ringbuf_reserve(&tcp_events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 0);
		return;
	}
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->type = type;
	e->latency_ns = 0;
	e->duration_ns = 0;
	e->bytes_sent = 0;
	e->bytes_received = 0;
	e->retransmits = 0;
	fill_owner_addrs(e, f, sk);
	switch (type) {
	case TCP_EVENT_CONNECT:
	case TCP_EVENT_CONNECT_FAILED:
		if (f)
			e->latency_ns = now - f->start_ns;
		break;
	case TCP_EVENT_CLOSE: {
		const struct tcp_sock *tp = (const struct tcp_sock *)sk;
		if (f && f->est_ns)
			e->duration_ns = now - f->est_ns;
		/* Payload only: bytes_sent counts payload including
		 * retransmissions; bytes_received counts rcv_nxt advances,
		 * which include the peer's FIN (flagged SOCK_DONE). */
		e->bytes_sent = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
		if (e->bytes_received &&
		    (BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)))
			e->bytes_received -= 1;
		e->retransmits = BPF_CORE_READ(tp, total_retrans);
		break;
	}
	}
	vigil_submit(&tcp_events, e);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	u64 key = (u64)sk;
	u64 now = bpf_ktime_get_ns();

	if (newstate == TCP_LISTEN) {
		struct owner o;
		current_owner(&o);
		u32 port = BPF_CORE_READ(sk, __sk_common.skc_num);
		bpf_map_update_elem(&listeners, &port, &o, BPF_ANY);
		return 0;
	}
	if (oldstate == TCP_LISTEN) {
		/* LISTEN -> SYN_RECV is a child socket being cloned. */
		if (newstate != TCP_CLOSE)
			return 0;
		u32 port = BPF_CORE_READ(sk, __sk_common.skc_num);
		bpf_map_delete_elem(&listeners, &port);
		return 0;
	}
	if (newstate == TCP_SYN_SENT) {
		/* connect(): process context, current owns the socket. */
		struct flow f = {.start_ns = now};
		current_owner(&f.owner);
		bpf_map_update_elem(&flows, &key, &f, BPF_ANY);
		return 0;
	}

	struct flow *f = bpf_map_lookup_elem(&flows, &key);
	if (oldstate == TCP_SYN_SENT) {
		if (newstate == TCP_ESTABLISHED) {
			if (f) {
				f->est_ns = now;
				read_addrs(sk, &f->addrs.family, f->addrs.saddr, f->addrs.daddr,
					   &f->addrs.sport, &f->addrs.dport);
			}
			emit(sk, TCP_EVENT_CONNECT, f, now);
		} else if (newstate == TCP_CLOSE) {
			emit(sk, TCP_EVENT_CONNECT_FAILED, f, now);
			bpf_map_delete_elem(&flows, &key);
		}
		return 0;
	}
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		/* Inbound: softirq context; the owner is the listener. */
		struct flow nf = {.start_ns = now, .est_ns = now};
		u32 port = BPF_CORE_READ(sk, __sk_common.skc_num);
		struct owner *o = bpf_map_lookup_elem(&listeners, &port);
		if (o)
			nf.owner = *o;
		read_addrs(sk, &nf.addrs.family, nf.addrs.saddr, nf.addrs.daddr, &nf.addrs.sport,
			   &nf.addrs.dport);
		bpf_map_update_elem(&flows, &key, &nf, BPF_ANY);
		f = bpf_map_lookup_elem(&flows, &key);
		emit(sk, TCP_EVENT_ACCEPT, f ? f : &nf, now);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		if (oldstate == TCP_SYN_RECV && !f)
			return 0; /* handshake that never completed */
		emit(sk, TCP_EVENT_CLOSE, f, now);
		if (f)
			bpf_map_delete_elem(&flows, &key);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	u64 key = (u64)sk;
	struct flow *f = bpf_map_lookup_elem(&flows, &key);
	if (f && vigil_is_self(f->owner.pid))
		return 0;
	struct retransmit_event *e = bpf_ringbuf_reserve(&retransmit_events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 1);
		return 0;
	}
	e->boot_ns = bpf_ktime_get_boot_ns();
	fill_owner_addrs(e, f, sk);
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->total_retrans = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
	vigil_submit(&retransmit_events, e);
	return 0;
}
