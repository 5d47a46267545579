package detect

import (
	"os"
	"regexp"
	"testing"
)

// TestSyscallClassNames: every name the classes list is a syscall the
// collector can report (its generated x86-64 table), so a typo cannot
// silently leave a syscall out of its class.
func TestSyscallClassNames(t *testing.T) {
	src, err := os.ReadFile("../../collector/syscalls_amd64.go")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(\w+)"`).FindAllSubmatch(src, -1) {
		known[string(m[1])] = true
	}
	if len(known) < 300 {
		t.Fatalf("only %d syscall names in the collector's table", len(known))
	}
	for name, class := range syscallClass {
		if !known[name] {
			t.Errorf("%s (%s) is not an x86-64 syscall", name, class)
		}
	}
}
