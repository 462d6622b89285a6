package engine

import (
	"testing"

	"github.com/tierd/tierd/testenv"
)

// TestMain stops the shared MinIO when the tests end.
func TestMain(m *testing.M) { testenv.Main(m) }
