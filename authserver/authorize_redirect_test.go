package authserver

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// Requirement 42: before a signed-in user has consented to a third-party
// (CIMD or DCR) client, an invalid request or prompt=none never sends the
// browser to that client's redirect URI: it is an error page. Once the user
// has a remembered consent for the client, errors are redirected again.
// Owned clients keep the redirect.
func TestAuthorizeNoRedirectBeforeConsent(t *testing.T) {
	h := newHarness(t)
	invalid := []struct {
		name string
		mod  func(q url.Values)
		code string
	}{
		{"unknown scope", func(q url.Values) { q.Set("scope", "read admin") }, oauth.CodeInvalidScope},
		{"unknown resource", func(q url.Values) { q.Set("resource", "https://evil.example.com/mcp") }, oauth.CodeInvalidTarget},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, oauth.CodeUnsupportedResponseType},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, oauth.CodeInvalidRequest},
		{"unknown prompt", func(q url.Values) { q.Set("prompt", "bogus") }, oauth.CodeInvalidRequest},
		{"repeated state", func(q url.Values) { q.Add("state", "x") }, oauth.CodeInvalidRequest},
	}
	isPage := func(t *testing.T, w *httptest.ResponseRecorder, code string) {
		t.Helper()
		if w.Code != 400 || w.Header().Get("X-Test-Page") != "error" || w.Header().Get("X-Test-Error") != code || w.Header().Get("Location") != "" {
			t.Fatalf("got %d page %q error %q Location %q, want a 400 %s page", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"), w.Header().Get("Location"), code)
		}
	}
	isRedirect := func(t *testing.T, w *httptest.ResponseRecorder, uri, code string) {
		t.Helper()
		u, p := redirectParams(t, w)
		if u.Scheme+"://"+u.Host+u.Path != uri || p.Get("error") != code || p.Has("code") {
			t.Fatalf("redirect %v %v, want %s to %s", u, p, code, uri)
		}
	}
	for _, c := range []struct{ id, uri string }{{"dcr-1", "http://localhost:4242/cb"}, {testCIMDClient, "https://client.example.com/cb"}} {
		t.Run(c.id, func(t *testing.T) {
			codes := len(h.audit("code.issued"))
			for _, tc := range invalid {
				q := h.authzQuery(c.id, c.uri)
				tc.mod(q)
				t.Run(tc.name, func(t *testing.T) { isPage(t, h.authorize(q, "alice"), tc.code) })
			}
			t.Run("prompt=none needing consent", func(t *testing.T) {
				q := h.authzQuery(c.id, c.uri)
				q.Set("prompt", "none")
				isPage(t, h.authorize(q, "alice"), oauth.CodeConsentRequired)
			})
			t.Run("prompt=none with a stale sign-in", func(t *testing.T) {
				q := h.authzQuery(c.id, c.uri)
				q.Set("prompt", "none")
				q.Set("max_age", "0")
				h.browser.mu.Lock()
				h.browser.authTime = h.clock.Now().Add(-time.Hour)
				h.browser.mu.Unlock()
				isPage(t, h.authorize(q, "alice"), oauth.CodeLoginRequired)
			})
			if n := len(h.audit("code.issued")) - codes; n != 0 {
				t.Fatalf("%d codes issued", n)
			}

			// Alice approves and remembers: the client is now hers.
			q := h.authzQuery(c.id, c.uri)
			q.Set("scope", "read")
			form := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}, "remember": {"on"}}
			if _, p := redirectParams(t, h.consentPost(q, "alice", form)); !p.Has("code") {
				t.Fatalf("consent: %v", p)
			}
			for _, tc := range invalid {
				q := h.authzQuery(c.id, c.uri)
				tc.mod(q)
				t.Run("consented/"+tc.name, func(t *testing.T) { isRedirect(t, h.authorize(q, "alice"), c.uri, tc.code) })
			}
			t.Run("consented/prompt=none needing more consent", func(t *testing.T) {
				q := h.authzQuery(c.id, c.uri)
				q.Set("scope", "read write")
				q.Set("prompt", "none")
				isRedirect(t, h.authorize(q, "alice"), c.uri, oauth.CodeConsentRequired)
			})
			t.Run("consented/prompt=none with a stale sign-in", func(t *testing.T) {
				q := h.authzQuery(c.id, c.uri)
				q.Set("prompt", "none")
				q.Set("max_age", "0")
				isRedirect(t, h.authorize(q, "alice"), c.uri, oauth.CodeLoginRequired)
			})
			// Bob has not consented: pages for him.
			q = h.authzQuery(c.id, c.uri)
			q.Set("scope", "read admin")
			t.Run("another user", func(t *testing.T) { isPage(t, h.authorize(q, "bob"), oauth.CodeInvalidScope) })
			h.browser.mu.Lock()
			h.browser.authTime = time.Time{}
			h.browser.mu.Unlock()
		})
	}
	// Owned clients keep the redirect (the operator vouches for them), with
	// or without a consent.
	t.Run("owned", func(t *testing.T) {
		q := h.authzQuery("asks", "https://asks.example.com/cb")
		q.Set("scope", "read admin")
		isRedirect(t, h.authorize(q, "carol"), "https://asks.example.com/cb", oauth.CodeInvalidScope)
		q = h.authzQuery("asks", "https://asks.example.com/cb")
		q.Set("prompt", "none")
		isRedirect(t, h.authorize(q, "carol"), "https://asks.example.com/cb", oauth.CodeConsentRequired)
	})
}
