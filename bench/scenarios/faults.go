package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// forkStorm has vbench-forker (a copy of sh) fork 3000 subshells that exit
// at once, at most 100 alive at a time.
func forkStorm(ctx context.Context, e *Env) error {
	ctx, cancel := bounded(ctx, 20*time.Second)
	defer cancel()
	script := `i=0; while [ $i -lt 3000 ]; do ( : ) & i=$((i+1)); if [ $((i % 100)) -eq 0 ]; then wait; fi; done; wait`
	return run(ctx, e.bin("vbench-forker"), "-c", script)
}

// cleanupTimeout bounds each cleanup step, which runs on a fresh context so
// that it also happens after cancel.
const cleanupTimeout = 10 * time.Second

// lossMethod installs packet loss on dev inside netns ns.
type lossMethod struct {
	name string
	cmds [][]string
	// stdin, when set, is fed to the single command.
	stdin string
}

// lossMethods are tried in order; the first that installs wins.
func lossMethods(dev string) []lossMethod {
	return []lossMethod{
		{name: "netem loss 20%", cmds: [][]string{{"tc", "qdisc", "add", "dev", dev, "root", "netem", "loss", "20%"}}},
		{name: "nftables numgen random mod 100 < 20 drop", cmds: [][]string{{"nft", "-f", "-"}},
			stdin: "table ip vbench { chain fwd { type filter hook forward priority 0; policy accept; numgen random mod 100 < 20 drop; } }\n"},
		{name: "iptables statistic --probability 0.2 DROP", cmds: [][]string{{"iptables", "-A", "FORWARD", "-m", "statistic", "--mode", "random", "--probability", "0.2", "-j", "DROP"}}},
		{name: "HTB 50 Mbit bottleneck with a 2-packet pfifo (tail-drop congestion loss; no netem, nft or iptables here)", cmds: [][]string{
			{"tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", "r2q", "100"},
			{"tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", "50mbit"},
			{"tc", "qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:", "pfifo", "limit", "2"},
		}},
	}
}

// netnsRun runs a command inside a named network namespace.
func netnsRun(ctx context.Context, ns, stdin string, args ...string) error {
	c := command(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// xferScript is both ends of the transfer. It enters the named network
// namespace itself (setns), so the process that sends is vbench-xfer run
// by the bench, not by ip. "forward" turns on IPv4 forwarding; "recv"
// listens, prints "ready", reads to EOF; "send" writes for 6 s, then prints
// its namespace's RetransSegs.
const xferScript = `
my ($mode, $ns, $addr, $nr) = @ARGV;
alarm 30;
open(my $fh, "<", "/var/run/netns/$ns") or die "open netns: $!";
syscall($nr + 0, fileno($fh), 0x40000000) == 0 or die "setns: $!";
use IO::Socket::INET;
$| = 1;
if ($mode eq "forward") {
    open(my $f, ">", "/proc/sys/net/ipv4/ip_forward") or die "open ip_forward: $!";
    print $f "1\n";
    close $f or die "ip_forward: $!";
    exit 0;
}
if ($mode eq "recv") {
    my $l = IO::Socket::INET->new(LocalAddr => $addr, Listen => 1, ReuseAddr => 1) or die "listen: $!";
    print "ready\n";
    my $c = $l->accept or die "accept: $!";
    my ($n, $buf) = (0, "");
    while ((my $r = sysread($c, $buf, 65536)) > 0) { $n += $r }
    print "received $n\n";
    exit 0;
}
my $c = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 5) or die "connect: $!";
my $buf = "r" x 65536;
my $end = time + 6;
while (time < $end) { defined syswrite($c, $buf) or die "write: $!" }
close $c;
open(my $snmp, "<", "/proc/net/snmp") or die;
my @h;
while (<$snmp>) { next unless /^Tcp:/; my @f = split; if (@h) { my %t; @t{@h} = @f; print "retrans $t{RetransSegs}\n" } else { @h = @f } }
`

// retransmitStorm builds a → r → b out of three network namespaces and two
// veth pairs, makes r lose packets on its way to b, and sends TCP from a to
// b for 6 s with vbench-xfer. Everything goes with the namespaces.
func retransmitStorm(ctx context.Context, e *Env) (err error) {
	ctx, cancel := bounded(ctx, 45*time.Second)
	defer cancel()
	_, sysSetns, err := sysnos()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs iproute2: %w", err)
	}
	id := strconv.Itoa(os.Getpid())
	nsA, nsR, nsB := "vbench-"+id+"-a", "vbench-"+id+"-r", "vbench-"+id+"-b"
	// interface names: at most 15 bytes
	ar, ra, rb, br := "vb"+id+"ar", "vb"+id+"ra", "vb"+id+"rb", "vb"+id+"br"
	var made []string
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer ccancel()
		for _, ns := range made {
			if cerr := run(cctx, "ip", "netns", "del", ns); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	for _, ns := range []string{nsA, nsR, nsB} {
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
		made = append(made, ns)
	}
	setup := [][]string{
		{"link", "add", ar, "netns", nsA, "type", "veth", "peer", "name", ra, "netns", nsR},
		{"link", "add", rb, "netns", nsR, "type", "veth", "peer", "name", br, "netns", nsB},
		{"-n", nsA, "addr", "add", "10.213.1.1/24", "dev", ar},
		{"-n", nsR, "addr", "add", "10.213.1.2/24", "dev", ra},
		{"-n", nsR, "addr", "add", "10.213.2.1/24", "dev", rb},
		{"-n", nsB, "addr", "add", "10.213.2.2/24", "dev", br},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
		{"-n", nsA, "link", "set", ar, "up"},
		{"-n", nsR, "link", "set", ra, "up"},
		{"-n", nsR, "link", "set", rb, "up"},
		{"-n", nsB, "link", "set", br, "up"},
		{"-n", nsA, "route", "add", "default", "via", "10.213.1.2"},
		{"-n", nsB, "route", "add", "default", "via", "10.213.2.1"},
	}
	for _, args := range setup {
		if err := run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	xfer := e.bin("vbench-xfer")
	// vbench-xfer turns forwarding on itself, not through ip netns exec sh,
	// which the models would flag as a new exec pair
	if err := run(ctx, xfer, "-e", xferScript, "forward", nsR, "", strconv.Itoa(sysSetns)); err != nil {
		return err
	}
	var tried []string
	method := ""
	for _, m := range lossMethods(rb) {
		ok := true
		for _, c := range m.cmds {
			if err := netnsRun(ctx, nsR, m.stdin, c...); err != nil {
				tried = append(tried, m.name+": "+err.Error())
				ok = false
				break
			}
		}
		if ok {
			method = m.name
			break
		}
		// a half-installed HTB tree would be replaced by the next attempt
		_ = netnsRun(ctx, nsR, "", "tc", "qdisc", "del", "dev", rb, "root")
	}
	if method == "" {
		return fmt.Errorf("no loss mechanism works: %s", strings.Join(tried, "; "))
	}
	e.Notef("loss: %s", method)

	recv, err := startBackground(command(ctx, xfer, "-e", xferScript, "recv", nsB, "10.213.2.2:5001", strconv.Itoa(sysSetns)), "receiver")
	if err != nil {
		return err
	}
	defer recv.stop()
	if line, err := recv.out.ReadString('\n'); err != nil || line != "ready\n" {
		return fmt.Errorf("receiver not ready: %q %v", line, err)
	}
	out, err := command(ctx, xfer, "-e", xferScript, "send", nsA, "10.213.2.2:5001", strconv.Itoa(sysSetns)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sender: %w: %s", err, out)
	}
	got, _ := recv.out.ReadString('\n')
	if err := recv.wait(); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	e.Notef("%s, sender %s", strings.TrimSpace(got), strings.TrimSpace(string(out)))
	if strings.TrimSpace(string(out)) == "retrans 0" {
		return fmt.Errorf("no retransmits with %s", method)
	}
	return nil
}

// memCgroup finds where to create a memory-limited cgroup: the cgroup v2
// root with the memory controller, else the v1 memory hierarchy.
func memCgroup() (root string, v2 bool, err error) {
	for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		b, err := os.ReadFile(filepath.Join(r, "cgroup.controllers"))
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " memory ") {
			return r, true, nil
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		return "/sys/fs/cgroup/memory", false, nil
	}
	return "", false, errors.New("no memory cgroup controller (v2 or v1) mounted")
}

// oomKills reads the cgroup's oom_kill counter.
func oomKills(dir string, v2 bool) int {
	f := "memory.oom_control"
	if v2 {
		f = "memory.events"
	}
	b, _ := os.ReadFile(filepath.Join(dir, f))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// hogScript moves itself into the cgroup before allocating, then touches
// 1 MiB strings until the OOM killer ends it; alarm bounds it if not.
const hogScript = `
alarm 20;
open(my $f, ">", $ARGV[0]) or die "open cgroup.procs: $!";
print $f $$;
close $f or die "join cgroup: $!";
my @keep;
push @keep, "h" x (1 << 20) while 1;
`

// oomKill runs vbench-hog in a fresh cgroup limited to 64 MiB without swap
// until the OOM killer kills it, then removes the cgroup.
func oomKill(ctx context.Context, e *Env) (err error) {
	ctx, cancel := bounded(ctx, 30*time.Second)
	defer cancel()
	root, v2, err := memCgroup()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "vigil-bench-oom-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	defer func() {
		// the cgroup empties a moment after its last task is reaped
		for i := 0; ; i++ {
			rerr := os.Remove(dir)
			if rerr == nil || errors.Is(rerr, os.ErrNotExist) {
				return
			}
			if i == 50 {
				err = errors.Join(err, fmt.Errorf("remove cgroup: %w", rerr))
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	limits := [][2]string{{"memory.max", "64M"}, {"memory.swap.max", "0"}}
	if !v2 {
		limits = [][2]string{{"memory.limit_in_bytes", "64M"}, {"memory.memsw.limit_in_bytes", "64M"}}
	}
	for i, l := range limits {
		// the swap limit is missing without swap accounting; the memory one is required
		if err := os.WriteFile(filepath.Join(dir, l[0]), []byte(l[1]), 0o644); err != nil && i == 0 {
			return fmt.Errorf("set %s: %w", l[0], err)
		}
	}
	before := oomKills(dir, v2)
	hog := command(ctx, e.bin("vbench-hog"), "-e", hogScript, filepath.Join(dir, "cgroup.procs"))
	out, herr := hog.CombinedOutput()
	kills := oomKills(dir, v2) - before
	v := "v1"
	if v2 {
		v = "v2"
	}
	e.Notef("cgroup %s %s, oom_kill +%d", v, dir, kills)
	if kills < 1 {
		return fmt.Errorf("hog not OOM-killed: %v: %s", herr, out)
	}
	return nil
}
