package collector

import (
	"fmt"
	"net/netip"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cilium/ebpf/link"

	tcpbpf "github.com/vigil-dev/vigil/bpf/tcp"
)

// The TCP kinds.
const (
	// KindTCP: one row per connect, failed connect, accept and close.
	KindTCP Kind = "tcp"
	// KindRetransmit: one row per retransmitted segment.
	KindRetransmit Kind = "retransmit"
)

// tcpSchema describes KindTCP:
//
//	ts              timestamp[ns, UTC]
//	host            dictionary<string>
//	event           dictionary<string>  connect | connect_failed | accept | close
//	pid             uint32              owner: the connecting process, or for inbound
//	                                    connections the process that listens on the port;
//	                                    0 for connections that predate the collector
//	comm            dictionary<string>  owner's comm at connect/listen time
//	family          dictionary<string>  ipv4 | ipv6
//	saddr           string              local address (IPv4-mapped IPv6 shown as IPv4)
//	sport           uint32              local port
//	daddr           string              remote address
//	dport           uint32              remote port
//	latency_ns      uint64              connect, connect_failed: SYN sent to established/failed
//	duration_ns     uint64              close: established to closed (0 if unknown)
//	bytes_sent      uint64              close: payload bytes sent (retransmissions not counted twice)
//	bytes_received  uint64              close: payload bytes received
//	retransmits     uint32              close: segments retransmitted over the lifetime
//	cgroup_id       uint64              owner's cgroup
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var tcpSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("event", typeDict),
	col("pid", typeU32),
	col("comm", typeDict),
	col("family", typeDict),
	col("saddr", typeString),
	col("sport", typeU32),
	col("daddr", typeString),
	col("dport", typeU32),
	col("latency_ns", typeU64),
	col("duration_ns", typeU64),
	col("bytes_sent", typeU64),
	col("bytes_received", typeU64),
	col("retransmits", typeU32),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

// retransmitSchema describes KindRetransmit:
//
//	ts             timestamp[ns, UTC]
//	host           dictionary<string>
//	pid            uint32              flow owner (as in tcp), 0 if unknown
//	comm           dictionary<string>
//	family         dictionary<string>  ipv4 | ipv6
//	saddr          string
//	sport          uint32
//	daddr          string
//	dport          uint32
//	state          dictionary<string>  TCP state, e.g. ESTABLISHED, SYN_SENT
//	total_retrans  uint32              retransmits so far on this connection
//	cgroup_id      uint64
//	container_id   dictionary<string>  container id parsed from the cgroup path, "" if none
//	pod_uid        dictionary<string>  Kubernetes pod UID parsed from the cgroup path, "" if none
var retransmitSchema = arrow.NewSchema([]arrow.Field{
	col("ts", typeTS),
	col("host", typeDict),
	col("pid", typeU32),
	col("comm", typeDict),
	col("family", typeDict),
	col("saddr", typeString),
	col("sport", typeU32),
	col("daddr", typeString),
	col("dport", typeU32),
	col("state", typeDict),
	col("total_retrans", typeU32),
	col("cgroup_id", typeU64),
	col("container_id", typeDict),
	col("pod_uid", typeDict),
}, nil)

// openTCP loads the TCP object for connection events.
func openTCP(lo *loadOptions) (*probe, error) {
	objs, p, err := loadTCP(lo, true)
	if err != nil {
		return nil, err
	}
	p.kind, p.ring, p.dropSlot = KindTCP, objs.TcpEvents, 0
	p.newBuilder = ringKinds[KindTCP].newBuilder
	return p, nil
}

// openRetransmit loads its own copy of the TCP object: the state program
// keeps the flow attribution (without emitting connection events) and the
// retransmit program reports.
func openRetransmit(lo *loadOptions) (*probe, error) {
	objs, p, err := loadTCP(lo, false)
	if err != nil {
		return nil, err
	}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleRetransmit})); err != nil {
		p.close()
		return nil, &probeError{Step: "attach tracepoint tcp/tcp_retransmit_skb", Err: err}
	}
	p.kind, p.ring, p.dropSlot = KindRetransmit, objs.RetransmitEvents, 1
	p.newBuilder = ringKinds[KindRetransmit].newBuilder
	return p, nil
}

func loadTCP(lo *loadOptions, emit bool) (*tcpbpf.ProbeObjects, *probe, error) {
	spec, err := tcpbpf.LoadProbe()
	if err != nil {
		return nil, nil, &probeError{Step: "load", Err: err}
	}
	var flag uint32
	if emit {
		flag = 1
	}
	if err := spec.Variables["emit_tcp"].Set(flag); err != nil {
		return nil, nil, &probeError{Step: "configure", Err: err}
	}
	objs := new(tcpbpf.ProbeObjects)
	if err := lo.loadAndAssign(spec, objs); err != nil {
		return nil, nil, err
	}
	p := &probe{drops: objs.Drops, closers: []closer{objs}}
	if err := p.attach(link.AttachTracing(link.TracingOptions{Program: objs.HandleSetState})); err != nil {
		p.close()
		return nil, nil, &probeError{Step: "attach tracepoint sock/inet_sock_set_state", Err: err}
	}
	return objs, p, nil
}

var tcpEventNames = [...][]byte{
	1: []byte("connect"),
	2: []byte("connect_failed"),
	3: []byte("accept"),
	4: []byte("close"),
}

const (
	afInet  = 2
	afInet6 = 10
)

var (
	familyIPv4 = []byte("ipv4")
	familyIPv6 = []byte("ipv6")
)

// appendAddr formats a 16-byte kernel address of the given family.
func appendAddr(dst []byte, family uint32, a *[16]byte) ([]byte, []byte) {
	if family == afInet {
		return netip.AddrFrom4([4]byte(a[:4])).AppendTo(dst), familyIPv4
	}
	return netip.AddrFrom16(*a).Unmap().AppendTo(dst), familyIPv6
}

type tcpBuilder struct {
	rowBuilder
	scratch tcpbpf.ProbeTcpEvent
	addr    []byte
}

func (b *tcpBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	if e.Type == 0 || int(e.Type) >= len(tcpEventNames) {
		return fmt.Errorf("%w: tcp event type %d", errBadRecord, e.Type)
	}
	if e.Family != afInet && e.Family != afInet6 {
		return fmt.Errorf("%w: address family %d", errBadRecord, e.Family)
	}
	b.start(e.BootNs)
	b.dict(2, tcpEventNames[e.Type])
	b.u32(3, e.Pid)
	b.dict(4, cstring(e.Comm[:]))
	var fam []byte
	b.addr, fam = appendAddr(b.addr[:0], e.Family, &e.Saddr)
	b.dict(5, fam)
	b.str(6, b.addr)
	b.u32(7, e.Sport)
	b.addr, _ = appendAddr(b.addr[:0], e.Family, &e.Daddr)
	b.str(8, b.addr)
	b.u32(9, e.Dport)
	b.u64(10, e.LatencyNs)
	b.u64(11, e.DurationNs)
	b.u64(12, e.BytesSent)
	b.u64(13, e.BytesReceived)
	b.u32(14, e.Retransmits)
	b.u64(15, e.CgroupId)
	b.container(16, e.CgroupId)
	return nil
}

var tcpStateNames = [...][]byte{
	[]byte("UNKNOWN"), []byte("ESTABLISHED"), []byte("SYN_SENT"), []byte("SYN_RECV"),
	[]byte("FIN_WAIT1"), []byte("FIN_WAIT2"), []byte("TIME_WAIT"), []byte("CLOSE"),
	[]byte("CLOSE_WAIT"), []byte("LAST_ACK"), []byte("LISTEN"), []byte("CLOSING"),
	[]byte("NEW_SYN_RECV"), []byte("BOUND_INACTIVE"),
}

type retransmitBuilder struct {
	rowBuilder
	scratch tcpbpf.ProbeRetransmitEvent
	addr    []byte
}

func (b *retransmitBuilder) append(raw []byte) error {
	e, err := view(raw, &b.scratch)
	if err != nil {
		return err
	}
	if e.Family != afInet && e.Family != afInet6 {
		return fmt.Errorf("%w: address family %d", errBadRecord, e.Family)
	}
	state := tcpStateNames[0]
	if int(e.State) < len(tcpStateNames) {
		state = tcpStateNames[e.State]
	}
	b.start(e.BootNs)
	b.u32(2, e.Pid)
	b.dict(3, cstring(e.Comm[:]))
	var fam []byte
	b.addr, fam = appendAddr(b.addr[:0], e.Family, &e.Saddr)
	b.dict(4, fam)
	b.str(5, b.addr)
	b.u32(6, e.Sport)
	b.addr, _ = appendAddr(b.addr[:0], e.Family, &e.Daddr)
	b.str(7, b.addr)
	b.u32(8, e.Dport)
	b.dict(9, state)
	b.u32(10, e.TotalRetrans)
	b.u64(11, e.CgroupId)
	b.container(12, e.CgroupId)
	return nil
}
