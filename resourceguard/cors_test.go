package resourceguard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Requirement 27: with CORSOrigins, a browser page on a listed origin gets
// its preflight answered before any token check, may send the MCP headers
// (the Mcp-Param-* ones echoed), reads WWW-Authenticate and Mcp-Session-Id,
// and passes the Origin check; other origins are still refused with 403.
func TestCORSOrigins(t *testing.T) {
	const web = "https://inspector.example"
	cases := []struct {
		name        string
		method      string
		origin      string
		preflight   string // Access-Control-Request-Headers; "-" for no preflight
		token       bool
		status      int
		acao        string
		allow       string
		reachesNext bool
	}{
		{"preflight from a CORS origin, before any token", "OPTIONS", web,
			"authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, mcp-param-city, last-event-id, dpop, accept",
			false, 204, web,
			"authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, mcp-param-city, last-event-id, dpop, accept", false},
		{"preflight: headers outside the MCP set are not echoed", "OPTIONS", web, "Authorization, X-Evil, Cookie, mcp-param-, Mcp-Param-Unit",
			false, 204, web, "authorization, mcp-param-unit", false},
		{"preflight naming no header", "OPTIONS", web, "", false, 204, web, corsDefaultAllowHeaders, false},
		{"preflight from another origin", "OPTIONS", "https://evil.example", "authorization", false, 403, "", "", false},
		{"challenge readable by the CORS origin", "POST", web, "-", false, 401, web, "", false},
		{"token from the CORS origin passes the Origin check", "POST", web, "-", true, 200, web, "", true},
		{"the resource's own origin is still allowed (same origin: no CORS)", "POST", "https://mcp.example.com", "-", true, 200, "", "", true},
		{"another origin with a token is 403", "POST", "https://evil.example", "-", true, 403, "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.CORSOrigins = []string{web} })
			tok := ""
			if c.token {
				tok = f.token(nil)
			}
			r := bearerReq(c.method, testResource, tok)
			r.Header.Set("Origin", c.origin)
			if c.preflight != "-" {
				r.Header.Set("Access-Control-Request-Method", "POST")
				if c.preflight != "" {
					r.Header.Set("Access-Control-Request-Headers", c.preflight)
				}
			}
			w := f.do(r)
			h := w.Header()
			if w.Code != c.status || h.Get("Access-Control-Allow-Origin") != c.acao || h.Get("Access-Control-Allow-Headers") != c.allow {
				t.Fatalf("status %d acao %q allow %q, want %d %q %q", w.Code, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Headers"), c.status, c.acao, c.allow)
			}
			if (f.reached.Load() != 0) != c.reachesNext {
				t.Fatalf("upstream reached %d times", f.reached.Load())
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatal("credentials allowed")
			}
			if c.acao != "" {
				for _, e := range []string{"WWW-Authenticate", "Mcp-Session-Id", "DPoP-Nonce"} {
					if !strings.Contains(h.Get("Access-Control-Expose-Headers"), e) {
						t.Fatalf("%s not exposed: %q", e, h.Get("Access-Control-Expose-Headers"))
					}
				}
				if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
					t.Fatal("no Vary: Origin")
				}
			}
		})
	}
}

// With allowed_origins "*" (no DNS-rebinding defence), CORS is still only
// for the CORS origins.
func TestCORSOriginsOnlyForListedOrigins(t *testing.T) {
	f := newFixture(t, func(cfg *Config) {
		cfg.AllowedOrigins = []string{"*"}
		cfg.CORSOrigins = []string{"https://inspector.example"}
	})
	for origin, acao := range map[string]string{"https://inspector.example": "https://inspector.example", "https://INSPECTOR.example:443": "https://INSPECTOR.example:443", "https://other.example": ""} {
		r := bearerReq("OPTIONS", testResource, "")
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		w := f.do(r)
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != acao || (acao != "" && w.Code != 204) {
			t.Errorf("%s: %d ACAO %q, want %q", origin, w.Code, got, acao)
		}
	}
}

func TestCORSOriginsRefusesWildcard(t *testing.T) {
	for _, o := range []string{"*", "null", "https://x.example/path", "ftp://x.example"} {
		_, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: newMemKeys(t), CORSOrigins: []string{o}})
		if err == nil {
			t.Errorf("CORSOrigins %q accepted", o)
		}
	}
}

// Requirement 28: discovery probes under the resource's path get a JSON
// 404 before any token check, and never reach the upstream.
func TestDiscoveryUnderResourceIsJSON404(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"/mcp/.well-known/openid-configuration", "/mcp/.well-known/oauth-authorization-server",
		"/mcp/.WELL-KNOWN/oauth-protected-resource", "/mcp/x/.well-known", "/.well-known/openid-configuration"} {
		for _, tok := range []string{"", f.token(nil)} {
			w := f.do(bearerReq("GET", "https://mcp.example.com"+p, tok))
			if w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/json" ||
				strings.TrimSpace(w.Body.String()) != `{"error":"not_found"}` {
				t.Fatalf("%s: %d %q %q", p, w.Code, w.Header().Get("Content-Type"), w.Body.String())
			}
		}
	}
	if f.reached.Load() != 0 {
		t.Fatal("upstream reached")
	}
	// The PRM and ordinary subpaths are unaffected.
	if w := f.do(bearerReq("GET", "https://mcp.example.com"+WellKnownPRM+"/mcp", "")); w.Code != 200 {
		t.Fatalf("PRM: %d", w.Code)
	}
	if w := f.do(bearerReq("GET", "https://mcp.example.com/mcp/well-known", "")); w.Code != 401 {
		t.Fatalf("/mcp/well-known: %d", w.Code)
	}
	w := httptest.NewRecorder()
	WriteNotFound(w, httptest.NewRequest("HEAD", "/.well-known/x", nil))
	if w.Code != 404 || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", w.Code, w.Body.String())
	}
}

// FuzzAllowRequestHeaders: whatever a preflight asks, the echoed list only
// names allowed headers, each a valid token, at most maxCORSRequestHeaders.
func FuzzAllowRequestHeaders(f *testing.F) {
	for _, s := range []string{"authorization, content-type", "Mcp-Param-A,mcp-param-b , x", ",,,", "mcp-param-\x00", "MCP-PARAM-Ä", strings.Repeat("mcp-param-a,", 100)} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		out := AllowRequestHeaders([]string{a, b})
		if out == "" {
			return
		}
		names := strings.Split(out, ", ")
		if len(names) > maxCORSRequestHeaders {
			t.Fatalf("%d names", len(names))
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] || !isToken(n) || n != strings.ToLower(n) ||
				(!corsAllowedHeaders[n] && !(strings.HasPrefix(n, corsParamPrefix) && len(n) > len(corsParamPrefix))) {
				t.Fatalf("echoed %q in %q", n, out)
			}
			seen[n] = true
		}
	})
}
