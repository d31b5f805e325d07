package resourceguard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// TestGoSDKClientDiscovery: the Go MCP SDK's own parsers read our challenge
// and our PRM (including its RFC 9728 §3.3 resource check).
func TestGoSDKClientDiscovery(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	resource := "https://" + srv.Listener.Addr().String() + "/mcp"
	keys := newMemKeys(t)
	g, err := New(Config{Resource: resource, Issuer: testIssuer, Keys: keys, Scopes: []string{"mcp", "todo:read"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("upstream reached without a token")
	}))
	srv.StartTLS()
	defer srv.Close()

	for _, auth := range []string{"", "Bearer garbage"} {
		req, _ := http.NewRequest("POST", resource, strings.NewReader(`{}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
		if err != nil || len(cs) != 1 || cs[0].Scheme != "bearer" {
			t.Fatalf("SDK parse: %+v %v", cs, err)
		}
		md := cs[0].Params["resource_metadata"]
		if md != g.ResourceMetadataURL() || cs[0].Params["scope"] != "mcp todo:read" {
			t.Fatalf("params %v", cs[0].Params)
		}
		prm, err := oauthex.GetProtectedResourceMetadata(context.Background(), md, resource, srv.Client())
		if err != nil {
			t.Fatalf("SDK PRM fetch: %v", err)
		}
		if prm.Resource != resource || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != testIssuer {
			t.Fatalf("prm %+v", prm)
		}
	}
}

// TestMalformedRefusedBeforeKeyLookup: missing and malformed tokens never
// reach the key source (no cryptography, no key lookup).
func TestMalformedRefusedBeforeKeyLookup(t *testing.T) {
	f := newFixture(t, nil)
	for _, v := range []string{"", "Basic x", "Bearer", "Bearer a", "Bearer a.b", "Bearer a.b.c.d", "Bearer a..c",
		"Bearer " + b64u([]byte(`{"alg":"none","kid":"ec1"}`)) + ".e30.AAAA",
		"Bearer " + b64u([]byte(`{"alg":"HS256","kid":"ec1"}`)) + ".e30.AAAA",
		"Bearer " + b64u([]byte(`{"alg":"ES256","kid":"ec1","typ":"at+jwt","jku":"https://x"}`)) + ".e30.AAAA"} {
		r := httptest.NewRequest("POST", testResource, nil)
		if v != "" {
			r.Header.Set("Authorization", v)
		}
		if _, c := f.g.Check(r); c == nil {
			t.Fatalf("%q accepted", v)
		}
	}
	if n := f.keys.calls.Load(); n != 0 {
		t.Fatalf("%d key lookups for malformed tokens", n)
	}
}
