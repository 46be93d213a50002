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
// fails `kubectl rollout status deployment/$STUB_FAIL_ROLLOUT`, and plays a
// small cluster for the rest:
//   - `apply -f FILE` copies FILE to $STUB_LOG.apply<N> (what was applied);
//   - `get secret/NAME` fails for the names in $STUB_MISSING_SECRETS;
//   - `get -f FILE -o name` lists $STUB_EXISTING, plus $STUB_CREATED once
//     something was applied;
//   - `get -f FILE -o yaml` prints the $STUB_EXISTING objects as kubectl
//     does, with resourceVersion and uid.
func stubMain(name string, args []string) int {
	line := name + " " + strings.Join(args, " ")
	logPath := os.Getenv("STUB_LOG")
	prior, _ := os.ReadFile(logPath)
	if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
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
	if name != "kubectl" {
		return 0
	}
	list := func(env string) []string {
		var out []string
		for _, v := range strings.Split(os.Getenv(env), ",") {
			if v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	verb, file := "", ""
	for i, a := range args {
		if verb == "" && !strings.HasPrefix(a, "-") && (i == 0 || args[i-1] != "--namespace" && args[i-1] != "--context") {
			verb = a
		}
		if a == "-f" && i+1 < len(args) {
			file = args[i+1]
		}
	}
	switch {
	case verb == "apply" && file != "":
		if b, err := os.ReadFile(file); err == nil {
			n := strings.Count(string(prior), " apply ")
			_ = os.WriteFile(fmt.Sprintf("%s.apply%d", logPath, n), b, 0o644)
		}
		if os.Getenv("STUB_FAIL_APPLY") != "" {
			fmt.Fprintln(os.Stderr, "error: admission webhook denied the request")
			return 1
		}
	case verb == "get" && strings.Contains(line, " secret/"):
		for _, s := range list("STUB_MISSING_SECRETS") {
			if strings.Contains(line, " secret/"+s+" ") {
				fmt.Fprintf(os.Stderr, "Error from server (NotFound): secrets %q not found\n", s)
				return 1
			}
		}
	case verb == "get" && strings.Contains(line, "-o name"):
		names := list("STUB_EXISTING")
		if strings.Contains(string(prior), " apply ") {
			names = append(names, list("STUB_CREATED")...)
		}
		for _, n := range names {
			fmt.Println(n)
		}
	case verb == "get" && strings.Contains(line, "-o yaml"):
		fmt.Println("apiVersion: v1\nitems:")
		for _, n := range list("STUB_EXISTING") {
			kind, obj, _ := strings.Cut(n, "/")
			fmt.Printf("- apiVersion: v1\n  kind: %s\n  metadata:\n    creationTimestamp: \"2026-01-01T00:00:00Z\"\n    name: %s\n    resourceVersion: \"4711\"\n    uid: 0b7c-%s\n  spec: {}\n", kind, obj, obj)
		}
		fmt.Println("kind: List\nmetadata:\n  resourceVersion: \"\"")
	}
	if fail := os.Getenv("STUB_FAIL_ROLLOUT"); fail != "" &&
		strings.Contains(line, "rollout status deployment/"+fail+" ") {
		fmt.Fprintf(os.Stderr, "error: deployment %q exceeded its progress deadline\n", fail)
		return 1
	}
	return 0
}
