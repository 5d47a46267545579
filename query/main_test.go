package query

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind, e.g. an
// unclosed stream body or a retry timer.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
