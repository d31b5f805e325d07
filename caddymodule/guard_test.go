package caddymodule

import (
	"context"
	"crypto"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (crypto.PublicKey, string, error) {
	return nil, "", resourceguard.ErrUnknownKey
}
func (noKeys) Generation() uint64 { return 1 }

// The unauthenticated pass-through of /.well-known/oauth-authorization-server
// (when the guard does not mirror our metadata) gets the same upstream
// hygiene as a guarded request: no product cookie, no Authorization, no
// client-sent identity header.
func TestGuardPassThroughStripsProductCookies(t *testing.T) {
	headers := resourceguard.IdentityHeaders{Subject: "X-Mcp-Subject"}
	rg, err := resourceguard.New(resourceguard.Config{Resource: "https://mcp.example.com/mcp", Issuer: "https://login.example.org", Keys: noKeys{}, Identity: headers})
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{guard: rg, headers: headers}
	r := httptest.NewRequest("GET", "https://mcp.example.com/.well-known/oauth-authorization-server", nil)
	r.Header.Set("Cookie", "__Host-mcpauth_session=s; theme=dark")
	r.Header.Set("Authorization", "Bearer x")
	r.Header.Set("X-Mcp-Subject", "admin")
	var seen http.Header
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { seen = r.Header.Clone(); return nil })
	if err := g.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if seen == nil {
		t.Fatal("next not called")
	}
	if got := seen.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark" || seen.Get("Authorization") != "" || seen.Get("X-Mcp-Subject") != "" {
		t.Fatalf("upstream headers %v", seen)
	}
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }
