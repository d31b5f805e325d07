package discovery

import "testing"

// A claim counts per host (default ports and case do not matter), a path
// stays claimed while one guard still holds it, forgetting is idempotent,
// and two registries (two configs) never see each other's claims.
func TestPRMRegistry(t *testing.T) {
	const notes = "/.well-known/oauth-protected-resource/notes"
	reg := NewPRMRegistry()
	forget := reg.Claim("MCP.example.com:443", []string{notes})
	if !reg.ServedElsewhere(notes, "mcp.example.com", "mcp.example.com") {
		t.Fatal("claimed path not served")
	}
	if !reg.ServedElsewhere(notes, "mcp.example.com:443", "mcp.example.com") {
		t.Fatal("default port not normalized")
	}
	if reg.ServedElsewhere("/.well-known/oauth-protected-resource/other", "mcp.example.com", "mcp.example.com") {
		t.Fatal("unclaimed path served")
	}
	// Another host's claim counts only when the request is not for the
	// handler's own host.
	other := reg.Claim("other.example.com", []string{"/.well-known/oauth-protected-resource/other"})
	if reg.ServedElsewhere("/.well-known/oauth-protected-resource/other", "mcp.example.com", "mcp.example.com") {
		t.Fatal("another host's path served on the own host")
	}
	if !reg.ServedElsewhere("/.well-known/oauth-protected-resource/other", "alias.example.com", "mcp.example.com") {
		t.Fatal("a request for another name refused a path a guard serves")
	}
	other()

	if NewPRMRegistry().ServedElsewhere(notes, "mcp.example.com", "mcp.example.com") {
		t.Fatal("a claim leaked into another registry")
	}

	second := reg.Claim("mcp.example.com:80", []string{notes})
	forget()
	forget() // idempotent: the second guard's claim survives
	if !reg.ServedElsewhere(notes, "mcp.example.com", "mcp.example.com") {
		t.Fatal("forgetting one claim twice dropped another guard's")
	}
	second()
	if reg.ServedElsewhere(notes, "mcp.example.com", "mcp.example.com") {
		t.Fatal("claim not forgotten")
	}
	if len(reg.m) != 0 {
		t.Fatalf("registry not emptied: %v", reg.m)
	}
}
