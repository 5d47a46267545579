package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Supervisor runs the engine as a child process and keeps it running. Its
// methods are safe for concurrent use.
type Supervisor struct {
	opts Options
	// tail keeps the end of the child's stdout and stderr for error messages;
	// it has its own lock.
	tail *tailWriter

	stop      chan struct{} // closed by Close: the monitor stops the child and returns
	done      chan struct{} // closed when the monitor goroutine has returned
	closeOnce sync.Once
	// closeErr is written by the monitor before it closes done.
	closeErr error

	// pid is the running child's pid, 0 between children. Atomic: the
	// detector asks for it on every telemetry row (detect.Options.Own).
	pid atomic.Int64

	// restarts counts children started after the first.
	restarts atomic.Uint64
}

// Restart backoff: a child that crashes at once is retried with growing
// pauses; one that ran for backoffReset starts the count again.
const (
	backoffMin   = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
)

// Start launches the engine child (Options.Executable with Options.ChildArgs),
// waits until its native port answers a Ping and returns. Afterwards the child
// is restarted with backoff whenever it dies, until Close or until ctx is
// cancelled. The child is in its own process group, so a Ctrl-C on the
// terminal reaches the parent only, and it gets SIGKILL if the parent dies.
func Start(ctx context.Context, opts Options) (*Supervisor, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if len(opts.ChildArgs) == 0 {
		return nil, errors.New("start engine: no child args")
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("start engine: find own executable: %w", err)
		}
		opts.Executable = exe
	}
	if err := checkPorts(opts); err != nil {
		return nil, err
	}
	s := &Supervisor{
		opts: opts,
		tail: newTailWriter(8<<10, opts),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	ready := make(chan error, 1)
	go s.monitor(ctx, ready)
	select {
	case err := <-ready:
		if err != nil {
			<-s.done
			return nil, err
		}
		// Only now: a failed Start must not leave metrics of a dead
		// supervisor registered.
		if opts.Registerer != nil {
			if err := s.register(opts.Registerer); err != nil {
				opts.Logger.Warn("register engine metrics", "err", err)
			}
		}
		return s, nil
	case <-ctx.Done():
		_ = s.Close()
		return nil, fmt.Errorf("start engine: %w", ctx.Err())
	}
}

func (s *Supervisor) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_engine_restarts_total",
			Help: "Times the embedded ClickHouse was restarted after it died."},
			func() float64 { return float64(s.restarts.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_engine_up",
			Help: "1 while an embedded ClickHouse child process runs."},
			func() float64 {
				if s.PID() != 0 {
					return 1
				}
				return 0
			}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Restarts is how many times the child was restarted after dying.
func (s *Supervisor) Restarts() uint64 { return s.restarts.Load() }

// DSN is the native-protocol address, for clickhouse.ParseDSN.
func (s *Supervisor) DSN() string { return DSN(s.opts.TCPPort) }

// HTTPURL is the HTTP interface, e.g. for curl.
func (s *Supervisor) HTTPURL() string { return HTTPURL(s.opts.HTTPPort) }

// DSN is the native-protocol address of an engine on tcpPort.
func DSN(tcpPort int) string { return "clickhouse://" + ListenHost + ":" + strconv.Itoa(tcpPort) }

// HTTPURL is the HTTP address of an engine on httpPort.
func HTTPURL(httpPort int) string { return "http://" + ListenHost + ":" + strconv.Itoa(httpPort) }

// Stop is Close.
func (s *Supervisor) Stop() error { return s.Close() }

// Close stops the child (SIGTERM to its process group, SIGKILL after
// StopTimeout) and waits until it is gone. It is safe to call more than once.
func (s *Supervisor) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.closeErr
}

// Done is closed when the supervisor has stopped for good.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// PID is the running child's process id, 0 while none runs.
func (s *Supervisor) PID() int { return int(s.pid.Load()) }

func (s *Supervisor) setPID(pid int) { s.pid.Store(int64(pid)) }

// StderrTail returns the last lines the child printed.
func (s *Supervisor) StderrTail() string { return s.tail.String() }

// monitor owns the child process. It runs on a locked OS thread because
// Pdeathsig fires when the thread that forked the child exits, not the
// process; a locked thread lives as long as this goroutine.
func (s *Supervisor) monitor(ctx context.Context, ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	log := s.opts.Logger

	backoff := backoffMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.restarts.Add(1)
		}
		cmd, exited, err := s.spawn()
		if err != nil {
			if attempt == 0 {
				ready <- err
				return
			}
			log.Error("restart clickhouse engine", "err", err)
		} else {
			began := time.Now()
			if attempt == 0 {
				if gone, err := s.waitReady(ctx, exited); err != nil {
					if !gone {
						_ = s.kill(cmd, exited)
					}
					ready <- err
					return
				}
				log.Info("clickhouse engine ready", "dsn", s.DSN(), "http", s.HTTPURL(), "pid", cmd.Process.Pid)
				ready <- nil
			}
			select {
			case err := <-exited:
				log.Error("clickhouse engine exited; restarting", "err", err, "after", backoff, "stderr", s.tail.String())
				if time.Since(began) > backoffReset {
					backoff = backoffMin
				}
			case <-s.stop:
				s.closeErr = s.kill(cmd, exited)
				return
			case <-ctx.Done():
				s.closeErr = s.kill(cmd, exited)
				return
			}
		}
		select {
		case <-time.After(backoff):
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// spawn starts one child. exited receives cmd.Wait's result exactly once.
func (s *Supervisor) spawn() (*exec.Cmd, <-chan error, error) {
	cmd := exec.Command(s.opts.Executable, s.opts.ChildArgs...)
	cmd.Env = append(os.Environ(), s.opts.ChildEnv...)
	cmd.Stdout = s.tail
	cmd.Stderr = s.tail
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A grandchild (the clickhouse server binary) holding the output pipe
	// must not keep Wait from reporting the child's death.
	cmd.WaitDelay = s.opts.StopTimeout
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start engine child %s: %w", s.opts.Executable, err)
	}
	s.setPID(cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		s.setPID(0)
		exited <- err
	}()
	return cmd, exited, nil
}

// waitReady pings the native port until it answers, the child dies (gone is
// then true: exited has been drained) or StartTimeout passes.
func (s *Supervisor) waitReady(ctx context.Context, exited <-chan error) (gone bool, err error) {
	deadline := time.NewTimer(s.opts.StartTimeout)
	defer deadline.Stop()
	addr := net.JoinHostPort(ListenHost, strconv.Itoa(s.opts.TCPPort))
	var lastErr error
	for {
		if lastErr = ping(ctx, addr); lastErr == nil {
			return false, nil
		}
		select {
		case err := <-exited:
			return true, fmt.Errorf("clickhouse engine exited before it was ready (%v); its output ends:\n%s", err, s.tail.String())
		case <-deadline.C:
			return false, fmt.Errorf("clickhouse engine did not answer on %s within %s (last error: %v); its output ends:\n%s",
				addr, s.opts.StartTimeout, lastErr, s.tail.String())
		case <-s.stop:
			return false, errors.New("start engine: closed")
		case <-ctx.Done():
			return false, fmt.Errorf("start engine: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ping dials first so that a port nobody listens on costs no driver setup,
// then does a real native-protocol Ping as the default user (never a wrong
// password: a failed native login aborts libchdb).
func ping(ctx context.Context, addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	_ = c.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return conn.Ping(pctx)
}

// kill stops the child's process group: SIGTERM, then SIGKILL after
// StopTimeout. It returns once the child has been reaped.
func (s *Supervisor) kill(cmd *exec.Cmd, exited <-chan error) error {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(s.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-exited:
		// The group may hold helpers the child started; make sure none stays.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	case <-t.C:
	}
	s.opts.Logger.Warn("clickhouse engine ignored SIGTERM; killing", "pid", pgid, "after", s.opts.StopTimeout)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	return fmt.Errorf("clickhouse engine did not stop within %s and was killed", s.opts.StopTimeout)
}

// tailWriter keeps the last max bytes written to it and logs each line.
type tailWriter struct {
	max  int
	opts Options
	mu   sync.Mutex // guards buf and line
	buf  []byte
	line []byte // an incomplete last line, not yet logged
}

func newTailWriter(max int, opts Options) *tailWriter { return &tailWriter{max: max, opts: opts} }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if l := bytes.TrimSpace(w.line[:i]); len(l) > 0 {
			w.opts.Logger.Debug("clickhouse engine", "line", string(l))
		}
		w.line = w.line[i+1:]
	}
	if len(w.line) > w.max {
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
