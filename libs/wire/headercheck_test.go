package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The contract's headers (Realm-*, Nats-*) are set by libs/wire's builders
// only (header.go). The check below is a vet-style pass over the source
// tree: outside libs/wire, no production file may set such a header by hand,
// whether with a string literal or with a header constant (wire.Header*,
// nats.MsgIdHdr, jetstream.MsgIDHeader, ...), through Header.Set/Add, an
// index assignment h[key] = v, or a nats.Header{key: ...} literal. Test files
// and test helper packages (a folder named *test, e.g. storetest) are exempt:
// they forge old or broken messages on purpose.

// headerExceptions are files that still set contract headers by hand, each
// with the reason it is not fixed yet. An entry that no longer violates fails
// the check, so the list only shrinks.
var headerExceptions = map[string]string{}

type headerViolation struct {
	pos  token.Position
	what string
}

// contractHeaderConsts returns the names of libs/wire's constants whose
// value is a Realm-* or Nats-* header name.
func contractHeaderConsts(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, s := range gd.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) && isHeaderLit(vs.Values[i]) {
							out[n.Name] = true
						}
					}
				}
			}
		}
	}
	if !out["HeaderMsgID"] || !out["HeaderZone"] || out["HeaderTraceParent"] {
		t.Fatalf("header constants of libs/wire misread: %v", out)
	}
	return out
}

func isHeaderLit(e ast.Expr) bool {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return false
	}
	v, err := strconv.Unquote(bl.Value)
	if err != nil {
		return false
	}
	v = strings.ToLower(v)
	return strings.HasPrefix(v, "realm-") || strings.HasPrefix(v, "nats-")
}

// checkHeaders reports where f sets a contract header by hand.
func checkHeaders(fset *token.FileSet, f *ast.File, wireConsts map[string]bool) []headerViolation {
	imports := map[string]string{} // local name -> import path
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := filepath.Base(path)
		if path == "github.com/nats-io/nats.go" {
			name = "nats"
		}
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = path
	}
	isKey := func(e ast.Expr) (string, bool) {
		if isHeaderLit(e) {
			return e.(*ast.BasicLit).Value, true
		}
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		name := pkg.Name + "." + sel.Sel.Name
		switch path := imports[pkg.Name]; {
		case strings.HasSuffix(path, "/libs/wire"):
			return name, wireConsts[sel.Sel.Name]
		case path == "github.com/nats-io/nats.go" || path == "github.com/nats-io/nats.go/jetstream":
			n := sel.Sel.Name
			return name, strings.HasSuffix(n, "Hdr") || (strings.HasSuffix(n, "Header") && n != "Header")
		}
		return "", false
	}
	var out []headerViolation
	add := func(n ast.Node, how, key string) {
		out = append(out, headerViolation{fset.Position(n.Pos()), how + " " + key})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Set" || sel.Sel.Name == "Add") && len(n.Args) == 2 {
				if key, ok := isKey(n.Args[0]); ok {
					add(n, sel.Sel.Name, key)
				}
			}
		case *ast.AssignStmt:
			for _, l := range n.Lhs {
				if ix, ok := l.(*ast.IndexExpr); ok {
					if key, ok := isKey(ix.Index); ok {
						add(n, "h[key] =", key)
					}
				}
			}
		case *ast.CompositeLit:
			// Only header literals (nats.Header{...}, http.Header{...}): a
			// map of other things may have keys like "nats-auth".
			if !isHeaderType(n.Type) {
				return true
			}
			for _, el := range n.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					if key, ok := isKey(kv.Key); ok {
						add(kv, "Header literal", key)
					}
				}
			}
		}
		return true
	})
	return out
}

// isHeaderType reports whether a composite literal's type is a header map
// (X.Header or a local Header type).
func isHeaderType(e ast.Expr) bool {
	switch t := e.(type) {
	case *ast.SelectorExpr:
		return t.Sel.Name == "Header"
	case *ast.Ident:
		return t.Name == "Header"
	}
	return false
}

// repoRoot is the checkout's root (the folder of go.work), or "".
func repoRoot() string {
	dir, err := filepath.Abs(".")
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// walkProductionGo parses every production Go file of the tree under root
// (outside libs/wire; test files, generated code and test helper packages
// such as natstest and storetest left out) and calls fn with its path
// relative to root.
func walkProductionGo(t *testing.T, root string, fn func(rel string, fset *token.FileSet, f *ast.File)) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch name := d.Name(); {
			case rel == "libs/wire", name == "testdata", name == "vendor", name == "node_modules", strings.HasPrefix(name, ".") && rel != ".",
				strings.HasSuffix(name, "test") && name != "test": // test helper packages (natstest, storetest): only tests import them
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || strings.HasSuffix(rel, ".pb.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		fn(rel, fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d Go files under %s: the walk missed the tree", files, root)
	}
}

// TestOnlyWireSetsContractHeaders is the check over the whole tree.
func TestOnlyWireSetsContractHeaders(t *testing.T) {
	root := repoRoot()
	if root == "" {
		t.Skip("not in a checkout (no go.work above libs/wire)")
	}
	consts := contractHeaderConsts(t)
	violating := map[string][]headerViolation{}
	walkProductionGo(t, root, func(rel string, fset *token.FileSet, f *ast.File) {
		if v := checkHeaders(fset, f, consts); len(v) > 0 {
			violating[rel] = v
		}
	})
	var names []string
	for name := range violating {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := headerExceptions[name]; ok {
			continue
		}
		for _, v := range violating[name] {
			t.Errorf("%s:%d: sets contract header %s by hand: use libs/wire's builders (wire.CommandHeaders, wire.TickRecordHeaders, ...)", name, v.pos.Line, v.what)
		}
	}
	for name, why := range headerExceptions {
		if violating[name] == nil {
			t.Errorf("%s no longer sets contract headers by hand: remove it from headerExceptions (%s)", name, why)
		}
	}
}

// TestHeaderCheckCatchesViolations: the check flags every hand-made form in
// testdata/headercheck/bad.go and nothing in good.go.
func TestHeaderCheckCatchesViolations(t *testing.T) {
	consts := contractHeaderConsts(t)
	parse := func(name string) []headerViolation {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join("testdata", "headercheck", name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		return checkHeaders(fset, f, consts)
	}
	got := map[int]string{}
	for _, v := range parse("bad.go") {
		got[v.pos.Line] = v.what
	}
	// The lines of bad.go marked "// want".
	src, err := os.ReadFile(filepath.Join("testdata", "headercheck", "bad.go"))
	if err != nil {
		t.Fatal(err)
	}
	wants := 0
	for i, line := range strings.Split(string(src), "\n") {
		if !strings.Contains(line, "// want") {
			continue
		}
		wants++
		if _, ok := got[i+1]; !ok {
			t.Errorf("bad.go:%d not flagged: %s", i+1, strings.TrimSpace(line))
		}
		delete(got, i+1)
	}
	if wants < 8 {
		t.Fatalf("bad.go has %d marked lines", wants)
	}
	for line, what := range got {
		t.Errorf("bad.go:%d flagged but not marked: %s", line, what)
	}
	if v := parse("good.go"); len(v) > 0 {
		t.Errorf("good.go flagged: %v", v)
	}
}
