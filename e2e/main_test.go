package e2e

import (
	"os"
	"testing"

	"github.com/realmstream/realmstream/e2e/harness"
)

// TestMain removes the service binaries the stacks of this package built.
func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBuilds()
	os.Exit(code)
}
