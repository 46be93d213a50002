package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

// repoRoot is the workspace root (the parent of this module).
var repoRoot string

// Overlays are the kustomize overlays every test covers.
var Overlays = []string{"dev", "staging", "prod"}

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Dir(wd)
	os.Exit(m.Run())
}
