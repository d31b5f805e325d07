package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// The guard's copy of the authorization server metadata on the MCP host
// (for clients that look there) is the authorization server's own answer,
// under the app's CORS policy: the app's origins get it, others (even an
// origin only the guard lists for the MCP endpoint) do not.
func TestGuardASMetadataUsesAppCORS(t *testing.T) {
	app := newTestApp(t)
	if s, err := app.Server(); err == nil {
		_ = s.Close()
	}
	app.CORSOrigins = []string{"https://web.example"}
	app.st = &appState{} // rebuild the server with the app's CORS origins
	if _, err := app.Server(); err != nil {
		t.Fatal(err)
	}
	rg, err := resourceguard.New(resourceguard.Config{Resource: testResource, Issuer: app.Issuer, Keys: app.Keys(),
		CORSOrigins: []string{"https://guard-only.example"}})
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{guard: rg, Guard: config.Guard{Resource: testResource}, app: app, prm: app.prmRegistry()}
	do := func(method, origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, testResource[:len(testResource)-len("/mcp")]+"/.well-known/oauth-authorization-server", nil)
		r.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			r.Header.Set("Access-Control-Request-Method", "GET")
		}
		w := httptest.NewRecorder()
		next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { t.Fatal("reached the upstream"); return nil })
		if err := g.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := do(http.MethodOptions, "https://web.example"); w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://web.example" {
		t.Fatalf("preflight from the app's origin: %d %v", w.Code, w.Header())
	}
	if w := do(http.MethodGet, "https://web.example"); w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "https://web.example" {
		t.Fatalf("metadata for the app's origin: %d %v", w.Code, w.Header())
	}
	for _, o := range []string{"https://guard-only.example", "https://evil.example"} {
		if w := do(http.MethodOptions, o); w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight from %s: %d %v", o, w.Code, w.Header())
		}
		if w := do(http.MethodGet, o); w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("metadata for %s: %v", o, w.Header())
		}
	}
}
