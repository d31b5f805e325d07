package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/internal/discovery"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// The registry of sibling guards' metadata paths belongs to one config's
// app: a guard of another config (the old one during a reload, or a second
// Caddy config in the same process) claiming a path does not make this
// config's guard pass that path on; a sibling in the same config does.
func TestPRMRegistryIsPerConfig(t *testing.T) {
	rg, err := resourceguard.New(resourceguard.Config{Resource: "https://mcp.example.com/mcp", Issuer: "https://login.example.org", Keys: noKeys{}})
	if err != nil {
		t.Fatal(err)
	}
	const path = "/.well-known/oauth-protected-resource/notes"
	mine, theirs := &App{prm: discovery.NewPRMRegistry()}, &App{prm: discovery.NewPRMRegistry()}
	g := &Guard{guard: rg, Guard: config.Guard{Resource: "https://mcp.example.com/mcp"}, prm: mine.prmRegistry()}
	passed := func() bool {
		t.Helper()
		reached := false
		next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { reached = true; return nil })
		if err := g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "https://mcp.example.com"+path, nil), next); err != nil {
			t.Fatal(err)
		}
		return reached
	}
	forget := theirs.prmRegistry().Claim("mcp.example.com", []string{path})
	defer forget()
	if passed() {
		t.Fatal("another config's guard path was passed on")
	}
	sibling := mine.prmRegistry().Claim("mcp.example.com", []string{path})
	defer sibling()
	if !passed() {
		t.Fatal("a sibling guard's path in the same config was not passed on")
	}
}
