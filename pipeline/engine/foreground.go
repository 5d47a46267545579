package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// holdQueryID names the query that keeps a libchdb engine serving; stopping
// the engine is KILL QUERY on it. Data scientists see it in system.processes.
const holdQueryID = "vigil-engine-hold"

// configDirName is the folder under DataDir with the generated config files.
// It is rewritten on every start, so edits there do not survive.
const configDirName = "vigil-engine"

// RunForeground runs the engine in this process until ctx is cancelled or the
// engine fails, and returns nil after a clean stop. It prefers an official
// clickhouse binary (see Options.BinaryPath) and otherwise loads libchdb.so.
//
// With libchdb, a cancelled ctx kills the blocking query over HTTP. The
// library then ends the whole process itself (chdb 26.7:
// clickhouse-local exits when its query fails), so RunForeground usually does
// not return after a cancel; deferred functions of the caller do not run.
// Nothing committed is lost: a MergeTree INSERT is on disk when it returns. If
// the process is still alive after StopTimeout, RunForeground returns an
// error and the caller should exit.
func RunForeground(ctx context.Context, opts Options) error {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return fmt.Errorf("resolve data dir: %w", err)
	}
	opts.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := checkPorts(opts); err != nil {
		return err
	}
	kind, path, err := locate(opts)
	if err != nil {
		return err
	}
	cfg, err := writeConfig(opts, kind)
	if err != nil {
		return err
	}
	opts.Logger.Info("starting clickhouse engine", "kind", kind, "path", path, "data_dir", dataDir,
		"tcp_port", opts.TCPPort, "http_port", opts.HTTPPort)
	if kind == kindBinary {
		return runBinary(ctx, opts, path, cfg)
	}
	return runLibrary(ctx, opts, path, cfg)
}

const (
	kindBinary  = "clickhouse-binary"
	kindLibrary = "libchdb"
)

// MinServerVersion is the oldest ClickHouse Vigil supports, embedded or
// external: the schema uses 24.8 features, and Debian's packaged 18.16 must
// never be picked up from PATH.
var MinServerVersion = [2]int{24, 8}

// locate picks the engine: a clickhouse binary if one is configured or on
// PATH (and recent enough), else libchdb.so.
func locate(opts Options) (kind, path string, err error) {
	switch opts.BinaryPath {
	case "-":
	case "":
		if p, err := exec.LookPath("clickhouse"); err == nil {
			verr := checkBinaryVersion(p)
			if verr == nil {
				return kindBinary, p, nil
			}
			opts.Logger.Warn("ignoring clickhouse on PATH; using libchdb", "path", p, "err", verr)
		}
	default:
		if err := checkBinaryVersion(opts.BinaryPath); err != nil {
			return "", "", err
		}
		return kindBinary, opts.BinaryPath, nil
	}
	lib := opts.LibPath
	if lib == "" {
		lib = DefaultLibPath()
	}
	if lib == "" {
		return "", "", ErrNoEngine
	}
	if _, err := os.Stat(lib); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("%w (looked for %s)", ErrNoEngine, lib)
		}
		return "", "", fmt.Errorf("libchdb: %w", err)
	}
	return kindLibrary, lib, nil
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)\.\d+`)

// checkBinaryVersion runs `clickhouse --version`, which every build since
// 2018 answers, and compares with MinServerVersion.
func checkBinaryVersion(bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("clickhouse binary %s: %w", bin, err)
	}
	return checkVersionText(bin, string(out))
}

func checkVersionText(bin, out string) error {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("clickhouse binary %s: no version in %q", bin, strings.TrimSpace(out))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < MinServerVersion[0] || major == MinServerVersion[0] && minor < MinServerVersion[1] {
		return fmt.Errorf("clickhouse binary %s is version %s.%s; need %d.%d or newer", bin, m[1], m[2], MinServerVersion[0], MinServerVersion[1])
	}
	return nil
}

// Available reports whether RunForeground would find an engine with opts, and
// if not, why. Tests use it to skip or fail early.
func Available(opts Options) error {
	kind, _, err := locate(opts.withDefaults())
	if err != nil {
		return err
	}
	if kind == kindLibrary {
		return libraryAvailable()
	}
	return nil
}

// checkPorts fails early with a message naming the flag, because ClickHouse
// reports a busy port deep inside a long exception.
func checkPorts(opts Options) error {
	for _, p := range []struct {
		proto string
		port  int
	}{{"tcp", opts.TCPPort}, {"http", opts.HTTPPort}} {
		l, err := net.Listen("tcp", net.JoinHostPort(ListenHost, strconv.Itoa(p.port)))
		if err != nil {
			return &PortInUseError{Port: p.port, Protocol: p.proto, Err: err}
		}
		_ = l.Close()
	}
	return nil
}

type configFiles struct {
	dir    string
	config string
	users  string
}

var usersTemplate = template.Must(template.New("users").Parse(`<clickhouse>
  <!-- Generated by vigil on every engine start; edits are overwritten. -->
  <profiles>
    <default>
      <!-- An idle native connection notices a shutdown only every
           poll_interval seconds (default 10), which held stops for 10 s. -->
      <poll_interval>1</poll_interval>
    </default>
    <readonly>
      <readonly>1</readonly>
      <poll_interval>1</poll_interval>
      <max_execution_time>{{.MaxExecSeconds}}</max_execution_time>
      <max_result_rows>{{.MaxResultRows}}</max_result_rows>
      <result_overflow_mode>throw</result_overflow_mode>
    </readonly>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>1</access_management>
    </default>
    <{{.ReadOnlyUser}}>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>readonly</profile>
      <quota>default</quota>
    </{{.ReadOnlyUser}}>
  </users>
  <quotas><default></default></quotas>
</clickhouse>
`))

var localConfigTemplate = template.Must(template.New("local").Parse(`<clickhouse>
  <!-- Generated by vigil on every engine start; edits are overwritten. -->
  <users_config>{{.Users}}</users_config>
</clickhouse>
`))

var serverConfigTemplate = template.Must(template.New("server").Parse(`<clickhouse>
  <!-- Generated by vigil on every engine start; edits are overwritten. -->
  <logger><level>warning</level><console>1</console></logger>
  <path>{{.DataDir}}/</path>
  <tmp_path>{{.DataDir}}/tmp/</tmp_path>
  <user_files_path>{{.DataDir}}/user_files/</user_files_path>
  <listen_host>{{.Host}}</listen_host>
  <tcp_port>{{.TCPPort}}</tcp_port>
  <http_port>{{.HTTPPort}}</http_port>
  <users_config>{{.Users}}</users_config>
  <mark_cache_size>268435456</mark_cache_size>
</clickhouse>
`))

func writeConfig(opts Options, kind string) (configFiles, error) {
	dir := filepath.Join(opts.DataDir, configDirName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return configFiles{}, fmt.Errorf("create config dir: %w", err)
	}
	cf := configFiles{dir: dir, config: filepath.Join(dir, "config.xml"), users: filepath.Join(dir, "users.xml")}
	secs := int(opts.ReadOnlyMaxExecutionTime.Seconds())
	if secs < 1 {
		secs = 1
	}
	data := map[string]any{
		"DataDir": opts.DataDir, "Host": ListenHost, "TCPPort": opts.TCPPort, "HTTPPort": opts.HTTPPort,
		"Users": cf.users, "ReadOnlyUser": ReadOnlyUser, "MaxExecSeconds": secs, "MaxResultRows": opts.ReadOnlyMaxResultRows,
	}
	tmpl := localConfigTemplate
	if kind == kindBinary {
		tmpl = serverConfigTemplate
	}
	for path, t := range map[string]*template.Template{cf.users: usersTemplate, cf.config: tmpl} {
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return configFiles{}, fmt.Errorf("render %s: %w", filepath.Base(path), err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
			return configFiles{}, fmt.Errorf("write %s: %w", filepath.Base(path), err)
		}
	}
	return cf, nil
}

// runBinary runs `clickhouse server`, which shuts down in order on SIGTERM.
func runBinary(ctx context.Context, opts Options, bin string, cfg configFiles) error {
	cmd := exec.CommandContext(ctx, bin, "server", "--config-file", cfg.config)
	cmd.Dir = opts.DataDir
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = opts.StopTimeout
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clickhouse server: %w", err)
	}
	return errors.New("clickhouse server exited")
}

// libArgs is the clickhouse-local command line that makes the library serve:
// the listeners are started by SQL, and the hold query keeps them up. The
// server settings must follow "--"; as normal options they are rejected.
func libArgs(opts Options, cfg configFiles) []string {
	return []string{
		"clickhouse",
		"--config-file", cfg.config,
		"--path", opts.DataDir,
		"--query_id", holdQueryID,
		"--multiquery",
		"--query", "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; " +
			// One row per block and one second per row: the query never ends
			// and costs no CPU.
			"SELECT count() FROM system.numbers WHERE sleepEachRow(1) SETTINGS max_block_size = 1",
		"--",
		"--listen_host=" + ListenHost,
		"--tcp_port=" + strconv.Itoa(opts.TCPPort),
		"--http_port=" + strconv.Itoa(opts.HTTPPort),
		// Stop at once: the only query still running at shutdown is the hold
		// query itself, which clickhouse-local would otherwise wait 5 s for.
		"--shutdown_wait_unfinished=0",
	}
}
