package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Run starts inserter goroutines; none may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
