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
