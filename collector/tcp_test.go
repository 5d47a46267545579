package collector

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	tcpbpf "github.com/vigil-dev/vigil/bpf/tcp"
)

func init() {
	helpers["tcp-pair"] = helperTCPPair
	helpers["tcp-refused"] = helperTCPRefused
	helpers["tcp-retrans"] = helperTCPRetrans
}

// helperTCPPair: listen on args[0] ("tcp4" or "tcp6") loopback, connect,
// send args[1] bytes to the server, which answers with args[2] bytes, both
// close. Prints "clientport serverport".
func helperTCPPair(args []string) error {
	network := args[0]
	up, _ := strconv.Atoi(args[1])
	down, _ := strconv.Atoi(args[2])
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != int64(up) {
			err = fmt.Errorf("server read %d bytes", n)
		}
		if err == nil {
			_, err = c.Write(make([]byte, down))
		}
		served <- err
	}()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		return err
	}
	if _, err := c.Write(make([]byte, up)); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != int64(down) {
		return fmt.Errorf("client read %d bytes: %v", n, err)
	}
	if err := <-served; err != nil {
		return err
	}
	c.Close()
	fmt.Println(c.LocalAddr().(*net.TCPAddr).Port, ln.Addr().(*net.TCPAddr).Port)
	time.Sleep(50 * time.Millisecond) // let both sockets reach CLOSE
	return nil
}

// helperTCPRefused connects to a loopback port nobody listens on and
// prints the port.
func helperTCPRefused([]string) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("dial closed port: %v", err)
	}
	fmt.Println(port)
	return nil
}

// helperTCPRetrans runs in a fresh network namespace: it connects over
// loopback, takes loopback down so segments are lost, writes, and waits for
// the kernel to retransmit. Prints "clientport serverport".
func helperTCPRetrans([]string) error {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lo up: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	if out, err := exec.Command("ip", "link", "set", "lo", "down").CombinedOutput(); err != nil {
		return fmt.Errorf("lo down: %v: %s", err, out)
	}
	c.Write(make([]byte, 4096))
	time.Sleep(1200 * time.Millisecond) // RTO starts at 200ms-1s; expect a few
	fmt.Println(c.LocalAddr().(*net.TCPAddr).Port, ln.Addr().(*net.TCPAddr).Port)
	return nil
}

func ports(t *testing.T, s string) (client, server uint64) {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 2 {
		t.Fatalf("helper printed %q", s)
	}
	a, _ := strconv.ParseUint(f[0], 10, 32)
	b, _ := strconv.ParseUint(f[1], 10, 32)
	return a, b
}

func TestTCPProbe(t *testing.T) {
	_, out := startCollector(t, Options{Probes: []string{"tcp"}})
	for _, tc := range []struct {
		network, family, addr string
	}{
		{"tcp4", "ipv4", "127.0.0.1"},
		{"tcp6", "ipv6", "::1"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			const up, down = 100_000, 12_345
			pid, stdout := runHelper(t, nil, "tcp-pair", tc.network, strconv.Itoa(up), strconv.Itoa(down))
			cport, sport := ports(t, stdout)
			ev := func(event string, local, remote uint64) func(row) bool {
				return func(r row) bool {
					return r.str("event") == event && r.uint(t, "sport") == local && r.uint(t, "dport") == remote
				}
			}
			check := func(r row, want map[string]uint64) {
				t.Helper()
				for col, v := range want {
					if got := r.uint(t, col); got != v {
						t.Errorf("%s %s = %d, want %d", r.str("event"), col, got, v)
					}
				}
				if r.str("family") != tc.family || r.str("saddr") != tc.addr || r.str("daddr") != tc.addr {
					t.Errorf("%s addresses: %s %s -> %s", r.str("event"), r.str("family"), r.str("saddr"), r.str("daddr"))
				}
				if r.str("comm") != helperComm() {
					t.Errorf("%s comm = %q", r.str("event"), r.str("comm"))
				}
			}
			r := out.wait(t, KindTCP, 5*time.Second, ev("connect", cport, sport))
			check(r, map[string]uint64{"pid": uint64(pid)})
			if r.uint(t, "latency_ns") == 0 {
				t.Error("connect latency_ns = 0")
			}
			r = out.wait(t, KindTCP, 5*time.Second, ev("accept", sport, cport))
			check(r, map[string]uint64{"pid": uint64(pid)})
			r = out.wait(t, KindTCP, 5*time.Second, ev("close", cport, sport))
			check(r, map[string]uint64{"pid": uint64(pid), "bytes_sent": up, "bytes_received": down})
			if r.uint(t, "duration_ns") == 0 {
				t.Error("close duration_ns = 0")
			}
			r = out.wait(t, KindTCP, 5*time.Second, ev("close", sport, cport))
			check(r, map[string]uint64{"pid": uint64(pid), "bytes_sent": down, "bytes_received": up})
		})
	}
	t.Run("refused", func(t *testing.T) {
		pid, stdout := runHelper(t, nil, "tcp-refused")
		port, _ := strconv.ParseUint(stdout, 10, 32)
		r := out.wait(t, KindTCP, 5*time.Second, func(r row) bool {
			return r.str("event") == "connect_failed" && r.uint(t, "dport") == port
		})
		if r.uint(t, "pid") != uint64(pid) {
			t.Errorf("pid = %d, want %d", r.uint(t, "pid"), pid)
		}
	})
}

func TestRetransmitProbe(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) to take loopback down in a test namespace")
	}
	_, out := startCollector(t, Options{Probes: []string{"retransmit"}})
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	cmd.Path = mustExecutable(t)
	pid, stdout := runHelper(t, cmd, "tcp-retrans")
	cport, sport := ports(t, stdout)
	r := out.wait(t, KindRetransmit, 5*time.Second, func(r row) bool {
		return r.uint(t, "sport") == cport && r.uint(t, "dport") == sport
	})
	if r.uint(t, "pid") != uint64(pid) || r.str("comm") != helperComm() {
		t.Errorf("retransmit attributed to %d %q, want %d", r.uint(t, "pid"), r.str("comm"), pid)
	}
	if r.uint(t, "total_retrans") == 0 || r.str("daddr") != "127.0.0.1" {
		t.Errorf("row = %v", r)
	}
}

func FuzzTCPDecode(f *testing.F) {
	f.Add(make([]byte, unsafe.Sizeof(tcpbpf.ProbeTcpEvent{})))
	f.Add([]byte{1, 2})
	tb := &tcpBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), tcpSchema, &env{clock: &clock{}})}
	rb := &retransmitBuilder{rowBuilder: newRowBuilder(memory.NewGoAllocator(), retransmitSchema, &env{clock: &clock{}})}
	defer tb.release()
	defer rb.release()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = tb.append(raw)
		_ = rb.append(raw)
		if tb.len() > 1024 || rb.len() > 1024 {
			tb.flush().Release()
			rb.flush().Release()
		}
	})
}
