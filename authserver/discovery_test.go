package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Requirement 28: every discovery spelling a client builds for this
// issuer's origin is the metadata or a JSON 404 {"error":"not_found"}, with
// CORS; paths the server does not own are left to the next handler.
func TestDiscoverySpellings(t *testing.T) {
	for _, tc := range []struct {
		issuerPath string
		served     []string // metadata
		notFound   []string // JSON 404, Handles true
		notOwned   []string // Handles false
	}{
		{"",
			[]string{"/.well-known/oauth-authorization-server"},
			[]string{"/.well-known/oauth-authorization-server/", "/.well-known/oauth-authorization-server/mcp",
				"/.well-known/oauth-authorization-server/mcp/", "/.well-known/openid-configuration",
				"/.well-known/openid-configuration/", "/.well-known/openid-configuration/mcp"},
			[]string{"/mcp/.well-known/openid-configuration", "/.well-known/oauth-protected-resource",
				"/.well-known/oauth-authorization-serverx", "/.well-known/security.txt", "/app/.well-known/openid-configuration"}},
		{"/tenant",
			[]string{"/.well-known/oauth-authorization-server/tenant", "/tenant/.well-known/oauth-authorization-server"},
			[]string{"/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/tenant/",
				"/.well-known/openid-configuration/tenant", "/tenant/.well-known/openid-configuration", "/.well-known/openid-configuration"},
			[]string{"/other/.well-known/openid-configuration", "/.well-known/oauth-protected-resource/tenant"}},
	} {
		t.Run("issuer path "+tc.issuerPath, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Issuer += tc.issuerPath })
			get := func(p string) (*httptest.ResponseRecorder, bool) {
				r := httptest.NewRequest(http.MethodGet, h.issuer+p, nil)
				r.Header.Set("Origin", "http://localhost:6274")
				return h.serve(r), h.srv.Handles(r)
			}
			for _, p := range tc.served {
				w, handles := get(p)
				var m map[string]any
				_ = json.Unmarshal(w.Body.Bytes(), &m)
				if !handles || w.Code != 200 || m["issuer"] != h.issuer+tc.issuerPath {
					t.Errorf("%s: handles %v, %d %v", p, handles, w.Code, m)
				}
			}
			for _, p := range tc.notFound {
				w, handles := get(p)
				if !handles || w.Code != 404 || w.Header().Get("Content-Type") != "application/json" ||
					w.Body.String() != "{\"error\":\"not_found\"}\n" || w.Header().Get("Access-Control-Allow-Origin") != "*" {
					t.Errorf("%s: handles %v, %d %q %q %v", p, handles, w.Code, w.Header().Get("Content-Type"), w.Body.String(), w.Header())
				}
			}
			for _, p := range tc.notOwned {
				if _, handles := get(p); handles {
					t.Errorf("%s: Handles is true", p)
				}
			}
		})
	}
}
