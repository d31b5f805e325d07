package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGuardExternalIssuerOutage (requirement 29): a guard-only process
// against an external authorization server (a second caddy-mcpauth process
// running mcp_auth_server) starts while that issuer is down, keeps its other
// sites serving, answers guarded requests 503 with Retry-After, verifies
// tokens once the issuer is back, keeps verifying with the cached keys when
// it goes down again, and after a restart during the outage verifies with the
// key set it persisted in Caddy's storage.
func TestGuardExternalIssuerOutage(t *testing.T) {
	guardPort, otherPort := freePort(t), freePort(t)
	resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", guardPort)
	issOpts := stackOpts{extraApp: "resource " + resource}
	iss := startStack(t, issOpts)
	login := func() string {
		s := *iss
		s.MCPURL = resource // tokens for the guard's resource
		return s.login(t, s.oauthConfig("todo:read")).AccessToken
	}
	tok1 := login()
	// The guard process trusts the issuer's internal CA (and only it).
	root := filepath.Join(t.TempDir(), "issuer-root.crt")
	pem, err := os.ReadFile(iss.RootPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	iss.caddy.stop()
	startIssuer := func() {
		iss.caddy = startCaddy(t, iss.dir, iss.caddyfile(issOpts))
		waitHTTP(t, iss.Client, iss.Issuer+"/.well-known/oauth-authorization-server")
	}

	guardDir := t.TempDir()
	guardfile := fmt.Sprintf(`{
	admin {ADMIN}
	auto_https off
	persist_config off
}

http://127.0.0.1:%[1]d {
	mcp_protect /mcp* {
		issuer %[2]s
		resource %[3]s
		scopes todo:read
	}
	reverse_proxy /mcp* %[4]s
}

http://127.0.0.1:%[5]d {
	respond "other site" 200
}
`, guardPort, iss.Issuer, resource, iss.todoAddr, otherPort)
	env := "SSL_CERT_FILE=" + root
	t0 := time.Now()
	guard := startCaddy(t, guardDir, guardfile, env)
	t.Logf("guard started in %s with the issuer down", time.Since(t0).Round(time.Millisecond))

	client := &http.Client{Timeout: 10 * time.Second}
	mcp := func(tok string) (int, http.Header, string) {
		t.Helper()
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
		req, _ := http.NewRequest("POST", resource, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, string(b)
	}
	otherSite := func() {
		t.Helper()
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", otherPort))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "other site" {
			t.Fatalf("other site: %d %q", resp.StatusCode, b)
		}
	}

	// 1. Issuer down, nothing persisted: Caddy runs, the other site serves,
	// guarded requests get 503 + Retry-After (not 401), metadata is served.
	otherSite()
	st, h, body := mcp(tok1)
	if st != 503 || h.Get("Retry-After") == "" || h.Get("WWW-Authenticate") != "" || !strings.Contains(body, "temporarily_unavailable") {
		t.Fatalf("issuer down: %d Retry-After %q WWW-Authenticate %q %s", st, h.Get("Retry-After"), h.Get("WWW-Authenticate"), body)
	}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/oauth-protected-resource/mcp", guardPort))
	if err != nil {
		t.Fatal(err)
	}
	var prm map[string]any
	json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if resp.StatusCode != 200 || prm["resource"] != resource {
		t.Fatalf("metadata while the issuer is down: %d %v", resp.StatusCode, prm)
	}

	// 2. The issuer comes back: within the back-off the guard verifies.
	time.Sleep(3 * time.Second) // a few failed attempts: the back-off grows
	startIssuer()
	back := time.Now()
	for {
		st, h, body = mcp(tok1)
		if st == 200 {
			break
		}
		if st != 503 {
			t.Fatalf("while recovering: %d %s", st, body)
		}
		if time.Since(back) > 2*time.Minute {
			t.Fatalf("never recovered: %d Retry-After %q", st, h.Get("Retry-After"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("guard verified tokens %s after the issuer came back", time.Since(back).Round(time.Millisecond))
	tok2, tok3 := login(), login() // unused until the issuer is down again (no verified-token cache hit)
	persisted, _ := filepath.Glob(filepath.Join(guardDir, "data", "caddy", "mcpauth", "guard", "jwks", "*.json"))
	if len(persisted) != 1 {
		t.Fatalf("persisted key sets: %v", persisted)
	}
	if b, _ := os.ReadFile(persisted[0]); !strings.Contains(string(b), `"jwks_uri":"`+iss.Issuer) {
		t.Fatalf("persisted: %s", b)
	}

	// 3. The issuer goes down again: cached keys keep verifying.
	iss.caddy.stop()
	if st, _, body := mcp(tok2); st != 200 {
		t.Fatalf("issuer down again, cached keys: %d %s", st, body)
	}

	// 4. The guard restarts during the outage: the persisted key set.
	guard.stop()
	guard = startCaddy(t, guardDir, guardfile, env)
	otherSite()
	if st, _, body := mcp(tok3); st != 200 {
		t.Fatalf("restart during the outage: %d %s\n%s", st, body, tail(guard.logs.String(), 4000))
	}
	if !strings.Contains(guard.logs.String(), "persisted key set") {
		t.Fatalf("the restarted guard did not say it used the persisted key set:\n%s", tail(guard.logs.String(), 4000))
	}
}
