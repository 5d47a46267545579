// Package tcp holds the compiled TCP probe: connection lifecycle from
// sock/inet_sock_set_state (ProbeTcpEvent, ring tcp_events) and
// retransmits from tcp/tcp_retransmit_skb (ProbeRetransmitEvent, ring
// retransmit_events), attributed to the owning process through the flows
// map.
package tcp

//go:generate go tool bpf2go -cc clang -target bpfel -type tcp_event -type retransmit_event Probe tcp.c -- -I../include
