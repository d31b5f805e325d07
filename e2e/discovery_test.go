package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// wellKnownSpellings are the discovery URLs that MCP clients and SDKs build
// (RFC 8414 §3.1 path insertion, the OIDC appended form, RFC 9728 path
// insertion, trailing slashes, the MCP path used as an issuer): every one must
// answer a JSON document or a JSON 404, never an empty or HTML 200
// (requirement 28).
var wellKnownSpellings = []string{
	"/.well-known/oauth-authorization-server",
	"/.well-known/oauth-authorization-server/",
	"/.well-known/oauth-authorization-server/mcp",
	"/.well-known/oauth-authorization-server/mcp/",
	"/.well-known/openid-configuration",
	"/.well-known/openid-configuration/",
	"/.well-known/openid-configuration/mcp",
	"/mcp/.well-known/openid-configuration",
	"/mcp/.well-known/oauth-authorization-server",
	"/mcp/.well-known/oauth-protected-resource",
	"/.well-known/oauth-protected-resource",
	"/.well-known/oauth-protected-resource/",
	"/.well-known/oauth-protected-resource/mcp",
	"/.well-known/oauth-protected-resource/mcp/",
	"/.well-known/oauth-protected-resource/unknown",
	"/.well-known/oauth-protected-resource/mcp/extra",
}

// wantDoc says what a spelling answers on one host: "as" (the authorization
// server metadata of issuer), "prm:<resource>" (that resource's protected
// resource metadata) or "" (a JSON 404).
type wellKnownCase struct {
	path string
	want string
}

// checkWellKnown fetches base+path and checks the answer against want.
func checkWellKnown(t *testing.T, c *http.Client, base, issuer string, tc wellKnownCase) {
	t.Helper()
	resp, err := c.Get(base + tc.path)
	if err != nil {
		t.Fatalf("GET %s: %v", tc.path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode == 200 && len(strings.TrimSpace(string(body))) == 0 {
		t.Fatalf("%s%s: an empty 200", base, tc.path)
	}
	if ct != "application/json" {
		t.Fatalf("%s%s: %d Content-Type %q, want application/json (body %.120q)", base, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s%s: %d, body is not a JSON object: %v (%.120q)", base, tc.path, resp.StatusCode, err, body)
	}
	switch {
	case tc.want == "":
		if resp.StatusCode != 404 || doc["error"] != "not_found" {
			t.Fatalf("%s%s: %d %v, want a JSON 404 {\"error\":\"not_found\"}", base, tc.path, resp.StatusCode, doc)
		}
	case tc.want == "as":
		if resp.StatusCode != 200 || doc["issuer"] != issuer || doc["token_endpoint"] == nil {
			t.Fatalf("%s%s: %d %v, want the metadata of %s", base, tc.path, resp.StatusCode, doc, issuer)
		}
		if m, _ := doc["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
			t.Fatalf("%s%s: code_challenge_methods_supported %v", base, tc.path, doc["code_challenge_methods_supported"])
		}
	case strings.HasPrefix(tc.want, "prm:"):
		res := strings.TrimPrefix(tc.want, "prm:")
		as, _ := doc["authorization_servers"].([]any)
		if resp.StatusCode != 200 || doc["resource"] != res || len(as) != 1 || as[0] != issuer {
			t.Fatalf("%s%s: %d %v, want the PRM of %s", base, tc.path, resp.StatusCode, doc, res)
		}
	default:
		t.Fatalf("bad case %q", tc.want)
	}
}

// expectations maps the spellings of wellKnownSpellings to what a host
// answers; unlisted spellings are JSON 404s. Spellings under a path prefix
// that is not one of the product's routes on the host (notUnder) are the
// operator's and skipped.
func expectations(served map[string]string, notUnder ...string) []wellKnownCase {
	var out []wellKnownCase
	for _, p := range wellKnownSpellings {
		skip := false
		for _, prefix := range notUnder {
			skip = skip || strings.HasPrefix(p, prefix)
		}
		if !skip {
			out = append(out, wellKnownCase{p, served[p]})
		}
	}
	for p, w := range served {
		found := false
		for _, s := range wellKnownSpellings {
			found = found || s == p
		}
		if !found {
			out = append(out, wellKnownCase{p, w})
		}
	}
	return out
}

// TestWellKnownDiscovery (requirement 28) walks every well-known spelling
// clients use on the drop-in shape (one site: authorization server + guard,
// with a matched and with a catch-all reverse_proxy) and on the several-hosts
// shape (the authorization server alone on its host, guarded MCP servers on
// others, one of them with two guards), through a real Caddy.
func TestWellKnownDiscovery(t *testing.T) {
	t.Run("drop-in", func(t *testing.T) {
		for _, proxyAll := range []bool{false, true} {
			t.Run(fmt.Sprintf("proxyAll=%v", proxyAll), func(t *testing.T) {
				s := startStack(t, stackOpts{proxyAll: proxyAll})
				for _, tc := range expectations(map[string]string{
					"/.well-known/oauth-authorization-server":   "as",
					"/.well-known/oauth-protected-resource":     "prm:" + s.MCPURL,
					"/.well-known/oauth-protected-resource/mcp": "prm:" + s.MCPURL,
				}) {
					t.Run(tc.path, func(t *testing.T) { checkWellKnown(t, s.Client, s.Issuer, s.Issuer, tc) })
				}
			})
		}
	})

	t.Run("several hosts", func(t *testing.T) {
		binaries(t)
		todoAddr, _ := startTodo(t)
		dir := t.TempDir()
		asPort, mcpPort, twoPort := freePort(t), freePort(t), freePort(t)
		issuer := fmt.Sprintf("https://localhost:%d", asPort)
		mcpBase := fmt.Sprintf("http://127.0.0.1:%d", mcpPort)
		twoBase := fmt.Sprintf("http://127.0.0.1:%d", twoPort)
		caddyfile := fmt.Sprintf(`{
	admin {ADMIN}
	skip_install_trust
	local_certs
	auto_https disable_redirects
	persist_config off
	mcp_auth {
		issuer %[1]s
		storage bbolt %[2]s
		scopes todo:read notes:read
	}
}

%[1]s {
	tls internal
	mcp_auth_server
}

%[3]s {
	mcp_protect /mcp* {
		resource %[3]s/mcp
		scopes todo:read
	}
	reverse_proxy /mcp* %[5]s
}

%[4]s {
	mcp_protect /todo* {
		resource %[4]s/todo
		scopes todo:read
	}
	mcp_protect /notes* {
		resource %[4]s/notes
		scopes notes:read
	}
	reverse_proxy %[5]s
}
`, issuer, filepath.Join(dir, "mcpauth.db"), mcpBase, twoBase, todoAddr)
		startCaddy(t, dir, caddyfile)
		client := trustingClient(t, filepath.Join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt"))
		waitHTTP(t, client, issuer+"/.well-known/oauth-authorization-server")

		hosts := []struct {
			name, base string
			served     map[string]string
			notUnder   []string // prefixes that are not the product's routes
		}{
			{"authorization server host", issuer, map[string]string{
				"/.well-known/oauth-authorization-server": "as",
			}, nil},
			{"MCP host", mcpBase, map[string]string{
				"/.well-known/oauth-protected-resource":     "prm:" + mcpBase + "/mcp",
				"/.well-known/oauth-protected-resource/mcp": "prm:" + mcpBase + "/mcp",
			}, nil},
			{"MCP host with two guards", twoBase, map[string]string{
				"/.well-known/oauth-protected-resource":         "prm:" + twoBase + "/todo",
				"/.well-known/oauth-protected-resource/todo":    "prm:" + twoBase + "/todo",
				"/.well-known/oauth-protected-resource/notes":   "prm:" + twoBase + "/notes",
				"/.well-known/oauth-protected-resource/mcp":     "",
				"/todo/.well-known/openid-configuration":        "",
				"/notes/.well-known/oauth-authorization-server": "",
			}, []string{"/mcp/"}}, // /mcp is not guarded here: the catch-all upstream's
		}
		for _, h := range hosts {
			t.Run(h.name, func(t *testing.T) {
				for _, tc := range expectations(h.served, h.notUnder...) {
					t.Run(tc.path, func(t *testing.T) { checkWellKnown(t, client, h.base, issuer, tc) })
				}
			})
		}
	})
}
