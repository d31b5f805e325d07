package resourceguard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestProtectedResourceMetadata(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Scopes = []string{"mcp"}
		c.ScopesSupported = []string{"mcp", "todo:read", "offline_access"}
		c.ResourceName = "Todo MCP"
		c.ResourceDocumentation = "https://docs.example.com/todo"
	})
	want := Metadata{
		Resource:               testResource,
		AuthorizationServers:   []string{testIssuer},
		ScopesSupported:        []string{"mcp", "todo:read"},
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Todo MCP",
		ResourceDocumentation:  "https://docs.example.com/todo",
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		t.Run("GET "+path, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://mcp.example.com"+path, nil)
			r.Host = "attacker.example" // never used to build the document
			r.Header.Set("X-Forwarded-Host", "attacker.example")
			w := f.do(r)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("CORS headers %v", w.Header())
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			var got Metadata
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("metadata = %+v, want %+v", got, want)
			}
			if strings.Contains(w.Body.String(), "attacker") {
				t.Fatal("metadata built from request headers")
			}
		})
	}
	methods := []struct {
		method string
		status int
	}{{"HEAD", 200}, {"OPTIONS", 204}, {"POST", 405}, {"DELETE", 405}}
	for _, m := range methods {
		t.Run(m.method, func(t *testing.T) {
			r := httptest.NewRequest(m.method, "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", nil)
			r.Header.Set("Origin", "https://evil.example") // PRM is public: no Origin check
			w := f.do(r)
			if w.Code != m.status {
				t.Fatalf("status %d, want %d", w.Code, m.status)
			}
			if w.Header().Get("Access-Control-Allow-Origin") != "*" {
				t.Fatal("no CORS")
			}
			if m.method == "HEAD" && w.Body.Len() != 0 {
				t.Fatal("HEAD has a body")
			}
			if m.method == "OPTIONS" && !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "GET") {
				t.Fatal("preflight without methods")
			}
		})
	}
	if f.reached.Load() != 0 {
		t.Fatal("PRM request reached the upstream")
	}
	t.Run("other well-known paths are JSON 404s", func(t *testing.T) {
		// Requirement 28: never the upstream's answer, never a 401.
		for _, p := range []string{"/.well-known/oauth-protected-resource/other", "/.well-known/oauth-protected-resource/mcp/", "/.well-known/oauth-protected-resourcex"} {
			w := f.do(httptest.NewRequest("GET", "https://mcp.example.com"+p, nil))
			if w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%s: status %d %q", p, w.Code, w.Header().Get("Content-Type"))
			}
		}
		if f.reached.Load() != 0 {
			t.Fatal("a well-known request reached the upstream")
		}
	})
}

func TestMetadataURLs(t *testing.T) {
	cases := []struct {
		resource string
		url      string
		paths    []string
		disable  bool
	}{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
			[]string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}, false},
		{"https://mcp.example.com/a/b/", "https://mcp.example.com/.well-known/oauth-protected-resource/a/b",
			[]string{"/.well-known/oauth-protected-resource/a/b"}, true},
		{"https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource",
			[]string{"/.well-known/oauth-protected-resource"}, false},
		{"http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
			[]string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}, false},
	}
	for _, c := range cases {
		t.Run(c.resource, func(t *testing.T) {
			g, err := New(Config{Resource: c.resource, Issuer: testIssuer, Keys: newMemKeys(t), DisableRootMetadata: c.disable})
			if err != nil {
				t.Fatal(err)
			}
			if g.ResourceMetadataURL() != c.url {
				t.Fatalf("url %q", g.ResourceMetadataURL())
			}
			if !reflect.DeepEqual(g.MetadataPaths(), c.paths) {
				t.Fatalf("paths %q", g.MetadataPaths())
			}
			if g.Metadata().Resource != c.resource {
				t.Fatalf("resource %q", g.Metadata().Resource)
			}
		})
	}
}

func TestDefaultScopesSupported(t *testing.T) {
	g, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: newMemKeys(t),
		Scopes:               []string{"mcp", "offline_access"},
		MethodScopes:         map[string][]string{"tools/call:b": {"b"}, "tools/call:a": {"a", "mcp"}},
		AuthorizationServers: []string{"https://as1.example", "https://as2.example"}})
	if err != nil {
		t.Fatal(err)
	}
	md := g.Metadata()
	if !reflect.DeepEqual(md.ScopesSupported, []string{"mcp", "a", "b"}) {
		t.Fatalf("scopes_supported %q", md.ScopesSupported)
	}
	if !reflect.DeepEqual(md.AuthorizationServers, []string{"https://as1.example", "https://as2.example"}) {
		t.Fatalf("authorization_servers %q", md.AuthorizationServers)
	}
}
