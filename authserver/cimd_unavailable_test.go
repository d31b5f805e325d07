package authserver

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// realCIMD plugs a real CIMD resolver (policy any) into the harness. Names
// under "down.test" fail to resolve (a transient failure), names under
// "private.test" resolve to a private address (a permanent refusal); no
// connection is ever made.
func realCIMD(c *Config) {
	f, err := cimd.NewFetcher(cimd.FetcherConfig{LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "private.test" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
		}
		return nil, &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}
	}})
	if err != nil {
		panic(err)
	}
	r, err := cimd.NewResolver(cimd.ResolverConfig{Fetcher: f, Policy: cimd.PolicyAny})
	if err != nil {
		panic(err)
	}
	c.ClientResolver = r
}

func checkRetryAfter(t *testing.T, h http.Header) {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 1 || n > 3600 {
		t.Fatalf("Retry-After %q", h.Get("Retry-After"))
	}
}

// A transient CIMD failure at /token is 503 temporarily_unavailable with
// Retry-After, never invalid_client (which clients read as "forget your
// credentials"); a permanent one stays invalid_client.
func TestTokenCIMDTransientFailureIs503(t *testing.T) {
	h := newHarness(t, realCIMD)
	form := url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"rt-x"}, "client_id": {"https://down.test/client.json"}}
	for i := range 3 { // the first fetches, the next ones hit the negative cache: same answer
		w := h.token(form)
		tj := decodeToken(t, w)
		if w.Code != http.StatusServiceUnavailable || tj.Error != oauth.CodeTemporarilyUnavailable {
			t.Fatalf("try %d: %d %q %q, want 503 temporarily_unavailable", i, w.Code, tj.Error, tj.Description)
		}
		checkRetryAfter(t, w.Header())
	}
	form.Set("client_id", "https://private.test/client.json")
	w := h.token(form)
	if tj := decodeToken(t, w); w.Code != http.StatusUnauthorized || tj.Error != oauth.CodeInvalidClient {
		t.Fatalf("permanent failure: %d %q, want 401 invalid_client", w.Code, tj.Error)
	}
	if w.Header().Get("Retry-After") != "" {
		t.Fatal("Retry-After on a permanent failure")
	}
}

// At /authorize the client and its redirect URI cannot be validated during a
// transient failure: an error page with 503 and Retry-After, never a
// redirect; a permanent failure stays the invalid_client page.
func TestAuthorizeCIMDTransientFailureIsErrorPage503(t *testing.T) {
	h := newHarness(t, realCIMD)
	for _, signedIn := range []string{"", "alice"} {
		w := h.authorize(h.authzQuery("https://down.test/client.json", "https://client.example.com/cb"), signedIn)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("X-Test-Page") != "error" ||
			w.Header().Get("X-Test-Error") != oauth.CodeTemporarilyUnavailable || w.Header().Get("Location") != "" {
			t.Fatalf("signed in %q: %d page %q error %q location %q", signedIn, w.Code, w.Header().Get("X-Test-Page"),
				w.Header().Get("X-Test-Error"), w.Header().Get("Location"))
		}
		checkRetryAfter(t, w.Header())
	}
	w := h.authorize(h.authzQuery("https://private.test/client.json", "https://client.example.com/cb"), "alice")
	if w.Code != http.StatusBadRequest || w.Header().Get("X-Test-Error") != oauth.CodeInvalidClient || w.Header().Get("Location") != "" {
		t.Fatalf("permanent failure: %d %q", w.Code, w.Header().Get("X-Test-Error"))
	}
}

// requesterResolver records the requester the server hands to the resolver.
type requesterResolver struct {
	testResolver
	mu   sync.Mutex
	seen []string
}

func (r *requesterResolver) ResolveClientFrom(ctx context.Context, id, requester string) (storage.Client, error) {
	r.mu.Lock()
	r.seen = append(r.seen, requester)
	r.mu.Unlock()
	return r.ResolveClient(ctx, id)
}

// The CIMD resolver is told who asked (the client IP), so it can budget
// fetches per requester.
func TestCIMDLookupPassesRequester(t *testing.T) {
	rr := &requesterResolver{}
	h := newHarness(t, func(c *Config) {
		rr.testResolver.clients = c.ClientResolver.(*testResolver).clients
		c.ClientResolver = rr
		c.ClientIP = func(*http.Request) string { return "203.0.113.9" }
	})
	h.authorize(h.authzQuery(testCIMDClient, "https://client.example.com/cb"), "")
	h.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}, "client_id": {testCIMDClient}})
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.seen) != 2 || rr.seen[0] != "203.0.113.9" || rr.seen[1] != "203.0.113.9" {
		t.Fatalf("requesters seen: %v", rr.seen)
	}
}
