package engine_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The supervisor's monitor and wait goroutines must end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
