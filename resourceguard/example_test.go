package resourceguard_test

import (
	"context"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// A guard in front of an MCP server, trusting an external authorization
// server discovered through its RFC 8414 metadata.
func Example() {
	ctx := context.Background()
	keys, err := resourceguard.NewRemoteKeySource(ctx, "https://auth.example.com", nil, nil)
	if err != nil {
		log.Print(err)
		return
	}
	guard, err := resourceguard.New(resourceguard.Config{
		Resource: "https://mcp.example.com/mcp",
		Issuer:   "https://auth.example.com",
		Keys:     keys,
		Scopes:   []string{"mcp"},
		MethodScopes: map[string][]string{
			"tools/call:delete_todo": {"todo:admin"},
		},
		ScopeHierarchy: map[string][]string{"todo:admin": {"mcp"}},
		Identity:       resourceguard.IdentityHeaders{Subject: "X-Auth-Subject", Email: "X-Auth-Email"},
	})
	if err != nil {
		log.Print(err)
		return
	}
	upstream, _ := url.Parse("http://127.0.0.1:3000")
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.FlushInterval = -1 // stream SSE
	log.Fatal(http.ListenAndServe(":8443", guard.Wrap(proxy)))
}
