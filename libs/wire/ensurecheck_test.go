package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"
)

// Streams and buckets are created and changed by EnsureStreams and
// EnsureKeyValue only: they update a stream only when its settings differ.
// jetstream's CreateOrUpdateKeyValue, UpdateKeyValue, UpdateStream and
// CreateOrUpdateStream rewrite the stream's config every time, and a stream
// update while another instance creates a consumer on the stream is a data
// race inside nats-server 2.15.2 (fileStore.UpdateConfig against
// fileStore.ConsumerStore; CI's -race run caught it when a world instance
// recreated its members bucket under the watchers of the others).

// streamWriters are the jetstream methods that rewrite a stream's config.
var streamWriters = map[string]bool{
	"CreateOrUpdateKeyValue": true, "UpdateKeyValue": true, "UpdateStream": true, "CreateOrUpdateStream": true,
	"CreateOrUpdateObjectStore": true, "UpdateObjectStore": true,
}

// checkStreamWriters returns the calls of streamWriters in f.
func checkStreamWriters(fset *token.FileSet, f *ast.File) []headerViolation {
	var out []headerViolation
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && streamWriters[sel.Sel.Name] {
			out = append(out, headerViolation{pos: fset.Position(call.Pos()), what: sel.Sel.Name})
		}
		return true
	})
	return out
}

// TestOnlyWireUpdatesStreams is the check over the whole tree.
func TestOnlyWireUpdatesStreams(t *testing.T) {
	root := repoRoot()
	if root == "" {
		t.Skip("not in a checkout (no go.work above libs/wire)")
	}
	walkProductionGo(t, root, func(rel string, fset *token.FileSet, f *ast.File) {
		for _, v := range checkStreamWriters(fset, f) {
			t.Errorf("%s:%d: calls %s, which rewrites the stream's config on every call: use wire.EnsureKeyValue or wire.EnsureStreams (they update only a changed setting)", rel, v.pos.Line, v.what)
		}
	})
}

// TestStreamWriterCheckCatchesCalls: the check flags each method in
// testdata/ensurecheck/bad.go and nothing in good.go.
func TestStreamWriterCheckCatchesCalls(t *testing.T) {
	parse := func(name string) []headerViolation {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join("testdata", "ensurecheck", name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		return checkStreamWriters(fset, f)
	}
	bad := parse("bad.go")
	seen := map[string]bool{}
	for _, v := range bad {
		seen[v.what] = true
	}
	for m := range streamWriters {
		if !seen[m] {
			t.Errorf("bad.go: the call of %s was not flagged", m)
		}
	}
	if good := parse("good.go"); len(good) > 0 {
		t.Errorf("good.go flagged: %v", good)
	}
}
