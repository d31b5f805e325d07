package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import boundaries of the module (each package's doc.go): the domain
// packages never reach Caddy, only caddymodule and cmd/... import it; the
// guard does not depend on the authorization server; storage is the leaf.

const module = "github.com/mcpauth/caddy-mcpauth"

// pkg is the part of `go list -json` the rules need.
type pkg struct {
	ImportPath string
	Standard   bool
	DepOnly    bool
	Imports    []string
}

// base is the package a (possibly test-variant) import path belongs to:
// "x [x.test]", "x_test [x.test]" and "x.test" all belong to x.
func base(ip string) string {
	ip, _, _ = strings.Cut(ip, " ")
	ip = strings.TrimSuffix(ip, ".test")
	return strings.TrimSuffix(ip, "_test")
}

// isTestVariant reports whether ip is compiled only for tests.
func isTestVariant(ip string) bool {
	return strings.Contains(ip, " [") || strings.HasSuffix(ip, ".test")
}

// under reports whether the package path p is one of the module's dirs or
// below it.
func under(p string, dirs ...string) bool {
	for _, d := range dirs {
		d = module + "/" + d
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func isCaddy(p string) bool { return strings.HasPrefix(p, "github.com/caddyserver/") }

// config (the JSON model and its builders) is as Caddy-free as the domain.
var domain = []string{"authserver", "resourceguard", "idp", "storage", "internal", "config"}

type rule struct {
	name string
	// from selects the packages (go list import paths, test variants
	// included) the rule constrains.
	from func(ip string) bool
	// forbidden selects the packages they must not depend on.
	forbidden func(p *pkg) bool
	// direct limits the rule to direct imports; otherwise every transitive
	// dependency counts.
	direct bool
}

var rules = []rule{
	{
		name:      "domain packages (and their tests) never depend on Caddy",
		from:      func(ip string) bool { return under(base(ip), domain...) },
		forbidden: func(p *pkg) bool { return isCaddy(base(p.ImportPath)) },
	},
	{
		name:      "only caddymodule and cmd/... import Caddy",
		from:      func(ip string) bool { return !under(base(ip), "caddymodule", "cmd") },
		forbidden: func(p *pkg) bool { return isCaddy(base(p.ImportPath)) },
		direct:    true,
	},
	{
		// Its tests may run the real authorization server (interop).
		name: "resourceguard does not depend on authserver",
		from: func(ip string) bool { return !isTestVariant(ip) && under(ip, "resourceguard") },
		forbidden: func(p *pkg) bool {
			return under(base(p.ImportPath), "authserver")
		},
	},
	{
		// They report through callbacks (OnEvent, OnFetch) and operator
		// methods; the adapter wires the admin API, the counters and the
		// discovery registry around them.
		name: "authserver, resourceguard, idp and storage do not depend on internal/adminapi, internal/metrics or internal/discovery",
		from: func(ip string) bool {
			return !isTestVariant(ip) && under(ip, "authserver", "resourceguard", "idp", "storage")
		},
		forbidden: func(p *pkg) bool {
			return under(base(p.ImportPath), "internal/adminapi", "internal/metrics", "internal/discovery")
		},
	},
	{
		name: "authserver/oauth (the rules leaf) depends only on the standard library and storage",
		from: func(ip string) bool { return !isTestVariant(ip) && ip == module+"/authserver/oauth" },
		forbidden: func(p *pkg) bool {
			// "C" is cgo's pseudo-package, reached through net.
			return !p.Standard && p.ImportPath != "C" && p.ImportPath != module+"/storage" && p.ImportPath != module+"/authserver/oauth"
		},
	},
	{
		name: "internal/version, internal/adminwire and internal/duration depend only on the standard library",
		from: func(ip string) bool {
			return !isTestVariant(ip) && (ip == module+"/internal/version" || ip == module+"/internal/adminwire" || ip == module+"/internal/duration")
		},
		forbidden: func(p *pkg) bool { return !p.Standard },
	},
	{
		// It operates a server through the admin API and opens stores
		// offline; doctor uses authserver/cimd's fetcher, not the server.
		name: "the operator CLI (internal/opscli) links neither the authorization server, the guard nor idp",
		from: func(ip string) bool { return !isTestVariant(ip) && ip == module+"/internal/opscli" },
		forbidden: func(p *pkg) bool {
			return p.ImportPath == module+"/authserver" || under(p.ImportPath, "resourceguard", "idp", "caddymodule")
		},
	},
	{
		name:      "storage (the leaf) depends only on the standard library",
		from:      func(ip string) bool { return ip == module+"/storage" },
		forbidden: func(p *pkg) bool { return !p.Standard && p.ImportPath != module+"/storage" },
	},
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-test", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// violation returns the import chain from root to the first forbidden
// package it reaches, or nil.
func violation(pkgs map[string]*pkg, root string, r rule) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := pkgs[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			dep := pkgs[imp]
			if dep == nil {
				dep = &pkg{ImportPath: imp}
			}
			if r.forbidden(dep) {
				chain := []string{imp}
				for at := cur; at != ""; at = parent[at] {
					chain = append([]string{at}, chain...)
				}
				return chain
			}
			if !r.direct {
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func TestImportBoundaries(t *testing.T) {
	pkgs := loadPackages(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			roots := 0
			for _, ip := range slices.Sorted(maps.Keys(pkgs)) {
				// A test main (x.test) only imports x's variants, which are
				// checked themselves.
				if pkgs[ip].DepOnly || !strings.HasPrefix(base(ip), module) || strings.HasSuffix(ip, ".test") || !r.from(ip) {
					continue
				}
				roots++
				if chain := violation(pkgs, ip, r); chain != nil {
					t.Errorf("%s imports %s:\n\t%s", ip, chain[len(chain)-1], strings.Join(chain, "\n\t-> "))
				}
			}
			if roots == 0 {
				t.Fatal("the rule matched no package: its selector is stale")
			}
		})
	}
}
