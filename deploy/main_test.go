package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// repoRoot is the workspace root (the parent of this module).
var repoRoot string

// Overlays are the kustomize overlays every test covers.
var Overlays = []string{"dev", "staging", "prod"}

func TestMain(m *testing.M) {
	// The deploy script tests put this test binary on PATH as kubectl and
	// docker: it records its argv and plays the part (see stubMain).
	switch filepath.Base(os.Args[0]) {
	case "kubectl", "docker":
		os.Exit(stubMain(filepath.Base(os.Args[0]), os.Args[1:]))
	}
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Dir(wd)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// stubMain is a stand-in kubectl/docker: it appends its command line to
// $STUB_LOG, renders `kubectl kustomize DIR` with krusty (as kubectl would),
// and fails `kubectl rollout status deployment/$STUB_FAIL_ROLLOUT`.
func stubMain(name string, args []string) int {
	line := name + " " + strings.Join(args, " ")
	if f, err := os.OpenFile(os.Getenv("STUB_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
	if name == "kubectl" && len(args) == 2 && args[0] == "kustomize" {
		rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		y, err := rm.AsYaml()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(y)
		return 0
	}
	if fail := os.Getenv("STUB_FAIL_ROLLOUT"); fail != "" && name == "kubectl" &&
		strings.Contains(line, "rollout status deployment/"+fail+" ") {
		fmt.Fprintf(os.Stderr, "error: deployment %q exceeded its progress deadline\n", fail)
		return 1
	}
	return 0
}
