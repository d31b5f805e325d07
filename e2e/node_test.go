package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeClients runs the Node-side end-to-end checks (e2e/node/run-all.sh)
// against the binaries built for this run: the official TypeScript SDK
// client through DCR and through CIMD (discovery, PKCE, resource, hosted
// login, token exchange, tools, refresh), the MCP conformance suite's
// authorization scenarios (Node 22), and the hosted pages in headless
// Chromium (screenshots, security headers, keyboard navigation).
// scripts/test-deps.sh installs what it needs; a missing piece fails.
func TestNodeClients(t *testing.T) {
	binaries(t)
	if _, err := os.Stat(filepath.Join(repoRoot, "e2e", "node", "node_modules")); err != nil {
		t.Fatal("e2e/node/node_modules is missing: run scripts/test-deps.sh (npm ci)")
	}
	art := os.Getenv("MCPAUTH_E2E_ARTIFACTS")
	if art == "" {
		art = t.TempDir()
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "e2e", "node", "run-all.sh"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CADDY_BIN="+caddyBin, "TODO_BIN="+todoBin, "E2E_ARTIFACTS="+filepath.Join(art, "e2e-node"))
	out, err := cmd.CombinedOutput()
	t.Logf("run-all.sh output:\n%s", tail(string(out), 8000))
	if err != nil {
		t.Fatalf("e2e/node/run-all.sh failed: %v", err)
	}
	if !strings.Contains(string(out), " 0 failed") {
		t.Fatal("run-all.sh did not report 0 failed")
	}
}
