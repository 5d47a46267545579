package spool_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Run starts a replay goroutine; it must not outlive Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
