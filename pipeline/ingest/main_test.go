package ingest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Senders and the test servers start goroutines; none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
