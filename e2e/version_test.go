package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVersionReportsRevision: a caddy-mcpauth built from a git checkout, as
// a user builds it, answers `mcpauth version` with the plugin's module, the
// checkout's commit and whether the tree had uncommitted changes (from
// runtime/debug.ReadBuildInfo), and `version` still shows Caddy's own.
func TestVersionReportsRevision(t *testing.T) {
	binaries(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to build a stamped binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	run := func(d string, env []string, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = d
		// A clone, not this (possibly worktree) checkout: the go command
		// stamps VCS data only where .git is a directory. GOFLAGS here
		// overrides a -buildvcs=false in the go env file.
		cmd.Env = append(append(os.Environ(), "GOFLAGS=-buildvcs=auto"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(repoRoot, nil, "git", "clone", "-q", "--no-local", repoRoot, src)
	want := strings.TrimSpace(run(src, nil, "git", "rev-parse", "HEAD"))
	bin := filepath.Join(dir, "caddy-mcpauth")
	version := func() map[string]any {
		t.Helper()
		run(src, nil, "go", "build", "-o", bin, "./cmd/caddy-mcpauth")
		var v map[string]any
		out := run(dir, nil, bin, "mcpauth", "version", "--json")
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("mcpauth version --json: %v\n%s", err, out)
		}
		return v
	}

	v := version()
	if v["module"] != "github.com/mcpauth/caddy-mcpauth" || v["revision"] != want || v["modified"] == true {
		t.Fatalf("clean checkout at %s: mcpauth version says %v", want, v)
	}
	text := run(dir, nil, bin, "mcpauth", "version")
	if !strings.HasPrefix(text, "caddy-mcpauth ") || !strings.Contains(text, "revision "+want) || strings.Contains(text, "modified") || !strings.Contains(text, "Caddy v2.") {
		t.Fatalf("mcpauth version: %q", text)
	}
	if caddyV := run(dir, nil, bin, "version"); !strings.HasPrefix(caddyV, "v2.") {
		t.Fatalf("caddy version: %q", caddyV)
	}

	// An uncommitted change shows as modified.
	if err := os.WriteFile(filepath.Join(src, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := version(); v["revision"] != want || v["modified"] != true {
		t.Fatalf("modified checkout: mcpauth version says %v", v)
	}
}

// TestVersionAsDependency: built as xcaddy builds it (a main module that
// requires the plugin), `mcpauth version` reports the required module
// version, the commit of its pseudo-version and the replacement, and
// Caddy's `list-modules --versions` shows that version next to mcp_auth.
func TestVersionAsDependency(t *testing.T) {
	binaries(t)
	dir := t.TempDir()
	const pseudo = "v0.0.0-20261201120000-0123456789ab"
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The plugin's own requirements, so the build needs no network.
	mod := strings.Replace(string(gomod), "module github.com/mcpauth/caddy-mcpauth", "module caddy", 1) +
		"\nrequire github.com/mcpauth/caddy-mcpauth " + pseudo + "\n\nreplace github.com/mcpauth/caddy-mcpauth " + pseudo + " => " + repoRoot + "\n"
	main := "package main\n\nimport (\n\tcaddycmd \"github.com/caddyserver/caddy/v2/cmd\"\n\t_ \"github.com/caddyserver/caddy/v2/modules/standard\"\n\t_ \"github.com/mcpauth/caddy-mcpauth/caddymodule\"\n)\n\nfunc main() { caddycmd.Main() }\n"
	for name, body := range map[string]string{"go.mod": mod, "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := os.ReadFile(filepath.Join(repoRoot, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	bin := filepath.Join(dir, "caddy")
	run("go", "build", "-o", bin, ".")
	var v map[string]any
	out := run(bin, "mcpauth", "version", "--json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("mcpauth version --json: %v\n%s", err, out)
	}
	if v["version"] != pseudo || v["revision"] != "0123456789ab" || v["replaced"] != repoRoot {
		t.Fatalf("as a dependency: mcpauth version says %v", v)
	}
	mods := run(bin, "list-modules", "--versions", "--skip-standard")
	found := false
	for _, line := range strings.Split(mods, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "mcp_auth" && f[1] == pseudo {
			found = true
		}
	}
	if !found {
		t.Fatalf("list-modules --versions:\n%s", mods)
	}
}
