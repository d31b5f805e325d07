package caddymodule

import (
	"context"
	"crypto"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (crypto.PublicKey, string, error) {
	return nil, "", resourceguard.ErrUnknownKey
}
func (noKeys) Generation() uint64 { return 1 }

// Requirement 28: a discovery path at the root of the host that the guard
// does not serve is a JSON 404 and never reaches the upstream; a sibling
// guard's metadata path on the same host is passed on, with the same
// upstream hygiene as a guarded request (no product cookie, no
// Authorization, no client-sent identity header).
func TestGuardDiscoveryPaths(t *testing.T) {
	headers := resourceguard.IdentityHeaders{Subject: "X-Mcp-Subject"}
	rg, err := resourceguard.New(resourceguard.Config{Resource: "https://mcp.example.com/mcp", Issuer: "https://login.example.org", Keys: noKeys{}, Identity: headers})
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{guard: rg, Guard: config.Guard{Resource: "https://mcp.example.com/mcp"}}
	forget := standalonePRM.Claim("mcp.example.com", []string{"/.well-known/oauth-protected-resource/notes"})
	defer forget()
	other := standalonePRM.Claim("other.example.com", []string{"/.well-known/oauth-protected-resource/other"})
	defer other()
	for _, tc := range []struct {
		path   string
		passed bool
	}{
		{"/.well-known/oauth-authorization-server", false},
		{"/.well-known/oauth-authorization-server/mcp", false},
		{"/.well-known/openid-configuration", false},
		{"/.well-known/oauth-protected-resource/unknown", false},
		{"/.well-known/oauth-protected-resource/other", false}, // another host's
		{"/.well-known/oauth-protected-resource/notes", true},
	} {
		r := httptest.NewRequest("GET", "https://mcp.example.com"+tc.path, nil)
		r.Header.Set("Cookie", "__Host-mcpauth_session=s; theme=dark")
		r.Header.Set("Authorization", "Bearer x")
		r.Header.Set("X-Mcp-Subject", "admin")
		var seen http.Header
		next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { seen = r.Header.Clone(); return nil })
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		if w.Code != 404 || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != "{\"error\":\"not_found\"}\n" {
			t.Errorf("%s: %d %q %q", tc.path, w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
		if (seen != nil) != tc.passed {
			t.Errorf("%s: passed on = %v", tc.path, seen != nil)
		}
		if seen != nil {
			if got := seen.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark" || seen.Get("Authorization") != "" || seen.Get("X-Mcp-Subject") != "" {
				t.Errorf("%s: upstream headers %v", tc.path, seen)
			}
		}
	}
	forget()
	forget() // idempotent
	if standalonePRM.ServedElsewhere("/.well-known/oauth-protected-resource/notes", "mcp.example.com", "mcp.example.com") {
		t.Fatal("claim not forgotten")
	}
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }
