package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Source-level rules that an import graph cannot see: every cite of a
// requirement resolves inside the repository, one log key for errors, no
// global logger fallback, no deprecated Caddy logger call.

// root is the module's directory (this package is internal/archtest).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return dir
}

// goFile is one parsed Go file of the module.
type goFile struct {
	rel  string // path from the module root, slash-separated
	test bool
	fset *token.FileSet
	file *ast.File
}

func parseModule(t *testing.T) []goFile {
	t.Helper()
	dir := root(t)
	var out []goFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != dir && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, goFile{rel: filepath.ToSlash(rel), test: strings.HasSuffix(path, "_test.go"), fset: fset, file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 50 {
		t.Fatalf("only %d Go files found: the walk is broken", len(out))
	}
	return out
}

var (
	// "requirement 28", "requirements 9 and 37", "Requirements 10 and 41".
	requirementCite = regexp.MustCompile(`(?i)\brequirements? (\d+)(?: and (\d+))?`)
	// A numbered item of docs/requirements.md: "12. **DCR.** …".
	requirementItem = regexp.MustCompile(`(?m)^(\d+)\. `)
	// Files outside the repository that comments used to cite.
	outsideDoc = regexp.MustCompile(`\bclients\.md\b|\barchitecture\.md\b|\bconventions\.md\b`)
)

// TestRequirementCitesResolve: every "requirement N" in a comment names an
// item of docs/requirements.md, and no comment cites a document that is not
// in the repository.
func TestRequirementCitesResolve(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root(t), "docs", "requirements.md"))
	if err != nil {
		t.Fatalf("docs/requirements.md: %v", err)
	}
	items := map[int]bool{}
	for _, m := range requirementItem.FindAllStringSubmatch(string(doc), -1) {
		n, _ := strconv.Atoi(m[1])
		items[n] = true
	}
	if len(items) < 40 {
		t.Fatalf("docs/requirements.md has %d numbered items: the pattern is stale", len(items))
	}
	cites := 0
	for _, f := range parseModule(t) {
		for _, cg := range f.file.Comments {
			text := cg.Text()
			pos := f.fset.Position(cg.Pos())
			if m := outsideDoc.FindString(text); m != "" {
				t.Errorf("%s:%d cites %s, which is not in the repository (cite docs/requirements.md or the RFC section)", f.rel, pos.Line, m)
			}
			for _, m := range requirementCite.FindAllStringSubmatch(text, -1) {
				for _, g := range m[1:] {
					if g == "" {
						continue
					}
					cites++
					if n, _ := strconv.Atoi(g); !items[n] {
						t.Errorf("%s:%d cites requirement %s, which docs/requirements.md does not have", f.rel, pos.Line, g)
					}
				}
			}
		}
	}
	if cites == 0 {
		t.Fatal("no requirement cites found: the pattern is stale")
	}
}

// calls visits every call expression of the module's non-test files.
func calls(t *testing.T, visit func(f goFile, call *ast.CallExpr)) {
	for _, f := range parseModule(t) {
		if f.test {
			continue
		}
		ast.Inspect(f.file, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				visit(f, c)
			}
			return true
		})
	}
}

// selector returns "pkg.Name" for a call of pkg.Name (or x.Name).
func selector(c *ast.CallExpr) (recv, name string) {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", ""
	}
	if id, ok := sel.X.(*ast.Ident); ok {
		return id.Name, sel.Sel.Name
	}
	return "", sel.Sel.Name
}

// slogMethods are the *slog.Logger methods whose arguments after the
// message are key-value pairs.
var slogMethods = map[string]int{"Debug": 1, "Info": 1, "Warn": 1, "Error": 1, "Log": 3,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2}

// TestOneErrorLogKey: an error is logged under the key "error" (zap.Error's
// key), never "err" or "e": a log query for errors finds every one.
func TestOneErrorLogKey(t *testing.T) {
	calls(t, func(f goFile, c *ast.CallExpr) {
		recv, name := selector(c)
		if recv == "zap" && (name == "NamedError" || name == "String" || name == "Any") && len(c.Args) > 0 {
			if k := stringLit(c.Args[0]); k == "err" || k == "e" {
				t.Errorf("%s:%d: zap.%s(%q, …): use zap.Error(err)", f.rel, f.fset.Position(c.Pos()).Line, name, k)
			}
		}
		first, ok := slogMethods[name]
		if !ok || recv == "zap" || recv == "t" || recv == "b" {
			return
		}
		for i := first; i+1 < len(c.Args); i += 2 {
			if k := stringLit(c.Args[i]); k == "err" || k == "e" {
				t.Errorf("%s:%d: log key %q: use \"error\"", f.rel, f.fset.Position(c.Pos()).Line, k)
			}
		}
	})
}

func stringLit(e ast.Expr) string {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

// TestNoGlobalLoggerFallback: loggers are injected (Caddy's ctx.Logger() /
// ctx.Slogger() into the domain packages' Logger fields); a nil logger is a
// discarding one, never the process-global logger, which would bypass
// Caddy's log configuration.
func TestNoGlobalLoggerFallback(t *testing.T) {
	calls(t, func(f goFile, c *ast.CallExpr) {
		recv, name := selector(c)
		switch {
		case recv == "zap" && (name == "L" || name == "S" || name == "NewNop"),
			recv == "slog" && name == "Default",
			recv == "log" && strings.HasPrefix(f.rel, "caddymodule/") && (name == "Printf" || name == "Println" || name == "Print"):
			t.Errorf("%s:%d: %s.%s(): inject the logger instead of the global one", f.rel, f.fset.Position(c.Pos()).Line, recv, name)
		}
	})
}

// TestNoDeprecatedCaddyLogger: caddy.Context.Logger(module) is deprecated;
// modules call ctx.Logger().
func TestNoDeprecatedCaddyLogger(t *testing.T) {
	calls(t, func(f goFile, c *ast.CallExpr) {
		if !strings.HasPrefix(f.rel, "caddymodule/") {
			return
		}
		if _, name := selector(c); name == "Logger" && len(c.Args) > 0 {
			t.Errorf("%s:%d: Logger(…) with a module argument is deprecated: use ctx.Logger()", f.rel, f.fset.Position(c.Pos()).Line)
		}
	})
}

// adapterBudget is the most non-test lines caddymodule may hold: it is the
// thin adapter between Caddy and the domain packages (config holds the JSON
// model and its builders; internal/opscli, internal/adminapi and the rest
// hold what is not Caddy's). A rule that lands here instead of in its domain
// package shows up as growth; raise the budget only with a reason.
const adapterBudget = 3000

// TestCaddymoduleStaysThin counts caddymodule's non-test lines.
func TestCaddymoduleStaysThin(t *testing.T) {
	dir := filepath.Join(root(t), "caddymodule")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines, files := 0, 0
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		lines += strings.Count(string(b), "\n")
		files++
	}
	if files < 5 {
		t.Fatalf("only %d Go files in caddymodule: the count is broken", files)
	}
	if lines > adapterBudget {
		t.Fatalf("caddymodule has %d non-test lines, over its budget of %d: move the rule that grew it into its domain package", lines, adapterBudget)
	}
	t.Logf("caddymodule: %d non-test lines in %d files (budget %d)", lines, files, adapterBudget)
}
