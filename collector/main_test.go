package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The collector ignores its own process, so kernel tests make their
	// activity in a child: this test binary re-executed as a helper.
	if name := os.Getenv("VIGIL_TEST_HELPER"); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		if err := h(strings.Fields(os.Getenv("VIGIL_TEST_ARGS"))); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// helpers are the activities kernel tests run in a child process; each
// prints its result on stdout.
var helpers = map[string]func(args []string) error{}

// runHelper runs a helper in a child process and returns its stdout.
func runHelper(t *testing.T, cmd *exec.Cmd, name string, args ...string) (pid int, stdout string) {
	t.Helper()
	if cmd == nil {
		cmd = exec.Command(os.Args[0])
	}
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HELPER="+name, "VIGIL_TEST_ARGS="+strings.Join(args, " "))
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v: %s", name, err, errOut.String())
	}
	return cmd.Process.Pid, strings.TrimSpace(out.String())
}

func mustExecutable(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// helperComm is the comm of a helper process: the test binary's name, cut
// to 15 bytes as the kernel does.
func helperComm() string {
	name := filepath.Base(os.Args[0])
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}
