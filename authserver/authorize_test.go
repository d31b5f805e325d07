package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Requirement 4: a bad client_id or redirect_uri is shown on a page and
// never redirected; nothing is stored.
func TestAuthorizeErrorPagesNeverRedirect(t *testing.T) {
	h := newHarness(t)
	if err := h.store.SetClientDisabled(context.Background(), "app2", true, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mod    func(q url.Values)
		status int
		code   string
	}{
		{"missing client_id", func(q url.Values) { q.Del("client_id") }, 400, oauth.CodeInvalidRequest},
		{"repeated client_id", func(q url.Values) { q.Add("client_id", "app") }, 400, oauth.CodeInvalidRequest},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, 400, oauth.CodeInvalidClient},
		{"unknown cimd client", func(q url.Values) { q.Set("client_id", "https://evil.example.com/meta.json") }, 400, oauth.CodeInvalidClient},
		{"disabled client", func(q url.Values) { q.Set("client_id", "app2"); q.Set("redirect_uri", "https://app2.example.com/cb") }, 400, oauth.CodeInvalidClient},
		{"missing redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, 400, oauth.CodeInvalidRequest},
		{"repeated redirect_uri", func(q url.Values) { q.Add("redirect_uri", "http://127.0.0.1/callback") }, 400, oauth.CodeInvalidRequest},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") }, 400, oauth.CodeInvalidRequest},
		{"https redirect with another port", func(q url.Values) { q.Set("redirect_uri", "https://app.example.com:8443/cb?tenant=1") }, 400, oauth.CodeInvalidRequest},
		{"redirect without registered query", func(q url.Values) { q.Set("redirect_uri", "https://app.example.com/cb") }, 400, oauth.CodeInvalidRequest},
		{"localhost is not 127.0.0.1", func(q url.Values) { q.Set("redirect_uri", "http://localhost/callback") }, 400, oauth.CodeInvalidRequest},
		{"loopback with another path", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5000/other") }, 400, oauth.CodeInvalidRequest},
		{"redirect with fragment", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1/callback#x") }, 400, oauth.CodeInvalidRequest},
		{"redirect of another client", func(q url.Values) { q.Set("redirect_uri", "https://asks.example.com/cb") }, 400, oauth.CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := h.authzQuery("app", "http://127.0.0.1/callback")
			tc.mod(q)
			for _, user := range []string{"", "alice"} {
				w := h.authorize(q, user)
				if w.Code != tc.status || w.Header().Get("X-Test-Page") != "error" || w.Header().Get("X-Test-Error") != tc.code {
					t.Fatalf("user %q: got %d page %q error %q, want %d error page %s", user, w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"), tc.status, tc.code)
				}
				if loc := w.Header().Get("Location"); loc != "" {
					t.Fatalf("redirected to %q", loc)
				}
			}
			if n := len(h.audit("code.issued")); n != 0 {
				t.Fatalf("%d codes issued", n)
			}
		})
	}
}

// mcp-remote re-registers when /authorize answers JSON saying the client is
// not registered (requirement 12; docs/requirements.md "Known clients").
func TestAuthorizeUnknownClientJSONWhenRegistrationOn(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Registration = http.NotFoundHandler() })
	q := h.authzQuery("gone", "http://127.0.0.1/callback")
	r := httptest.NewRequest(http.MethodGet, h.issuer+"/authorize?"+q.Encode(), nil)
	r.Header.Set("Accept", "application/json")
	w := h.serve(r)
	if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidClient || !strings.Contains(w.Body.String(), "is not registered") ||
		!strings.Contains(w.Body.String(), `"registration_endpoint":"`+h.issuer+`/register"`) {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

// Requirement 4 (later errors) and 5: errors after client and redirect are
// validated are redirected with error, state and iss, each exactly once, 303.
func TestAuthorizeRedirectedErrors(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		client string
		uri    string
		mod    func(q url.Values)
		code   string
		state  bool
	}{
		{"missing response_type", "app", "", func(q url.Values) { q.Del("response_type") }, oauth.CodeInvalidRequest, true},
		{"response_type token", "app", "", func(q url.Values) { q.Set("response_type", "token") }, oauth.CodeUnsupportedResponseType, true},
		{"response_type code id_token", "app", "", func(q url.Values) { q.Set("response_type", "code id_token") }, oauth.CodeUnsupportedResponseType, true},
		{"response_mode fragment", "app", "", func(q url.Values) { q.Set("response_mode", "fragment") }, oauth.CodeInvalidRequest, true},
		{"missing code_challenge", "app", "", func(q url.Values) { q.Del("code_challenge") }, oauth.CodeInvalidRequest, true},
		{"missing code_challenge_method", "app", "", func(q url.Values) { q.Del("code_challenge_method") }, oauth.CodeInvalidRequest, true},
		{"plain PKCE", "app", "", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", testVerifier) }, oauth.CodeInvalidRequest, true},
		{"short challenge", "app", "", func(q url.Values) { q.Set("code_challenge", "abc") }, oauth.CodeInvalidRequest, true},
		{"unknown scope", "app", "", func(q url.Values) { q.Set("scope", "read admin") }, oauth.CodeInvalidScope, true},
		{"malformed scope", "app", "", func(q url.Values) { q.Set("scope", "re\"ad") }, oauth.CodeInvalidScope, true},
		{"scope not allowed for client", "narrow", "https://narrow.example.com/cb", func(q url.Values) { q.Set("scope", "write") }, oauth.CodeInvalidScope, true},
		{"unknown resource", "app", "", func(q url.Values) { q.Set("resource", "https://evil.example.com/mcp") }, oauth.CodeInvalidTarget, true},
		{"resource with fragment", "app", "", func(q url.Values) { q.Set("resource", testResource+"#f") }, oauth.CodeInvalidTarget, true},
		{"two resources", "app", "", func(q url.Values) { q.Add("resource", testResource) }, oauth.CodeInvalidTarget, true},
		{"repeated scope", "app", "", func(q url.Values) { q.Set("scope", "read"); q.Add("scope", "write") }, oauth.CodeInvalidRequest, true},
		{"repeated state", "app", "", func(q url.Values) { q.Add("state", "other") }, oauth.CodeInvalidRequest, false},
		{"prompt none with login", "app", "", func(q url.Values) { q.Set("prompt", "none login") }, oauth.CodeInvalidRequest, true},
		{"unknown prompt", "app", "", func(q url.Values) { q.Set("prompt", "bogus") }, oauth.CodeInvalidRequest, true},
		{"negative max_age", "app", "", func(q url.Values) { q.Set("max_age", "-1") }, oauth.CodeInvalidRequest, true},
		{"request object", "app", "", func(q url.Values) { q.Set("request", "eyJ...") }, oauth.CodeInvalidRequest, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uri := tc.uri
			if uri == "" {
				uri = "http://127.0.0.1/callback"
			}
			q := h.authzQuery(tc.client, uri)
			tc.mod(q)
			w := h.authorize(q, "alice")
			u, params := redirectParams(t, w)
			if got := u.Scheme + "://" + u.Host + u.Path; got != uri {
				t.Fatalf("redirected to %q, want %q", got, uri)
			}
			if len(params["error"]) != 1 || params.Get("error") != tc.code {
				t.Fatalf("error = %v, want %s (%s)", params["error"], tc.code, params.Get("error_description"))
			}
			if len(params["iss"]) != 1 || params.Get("iss") != h.issuer {
				t.Fatalf("iss = %v", params["iss"])
			}
			if tc.state && (len(params["state"]) != 1 || params.Get("state") != "st-123") {
				t.Fatalf("state = %v", params["state"])
			}
			if !tc.state && len(params["state"]) != 0 {
				t.Fatalf("state = %v, want none", params["state"])
			}
			if params.Has("code") {
				t.Fatal("code issued on error")
			}
			if n := len(h.audit("code.issued")); n != 0 {
				t.Fatalf("%d codes issued", n)
			}
		})
	}
}

// Requirement 4 (choice): for CIMD and DCR clients every error before
// sign-in is a page; after sign-in too until the user has consented
// (requirement 42, TestAuthorizeNoRedirectBeforeConsent).
func TestAuthorizeThirdPartyPreLoginErrorsArePages(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ id, uri string }{{"dcr-1", "http://localhost:4242/cb"}, {testCIMDClient, "https://client.example.com/cb"}} {
		t.Run(c.id, func(t *testing.T) {
			q := h.authzQuery(c.id, c.uri)
			q.Set("code_challenge_method", "plain")
			w := h.authorize(q, "")
			if w.Code != 400 || w.Header().Get("X-Test-Error") != oauth.CodeInvalidRequest || w.Header().Get("Location") != "" {
				t.Fatalf("signed out: %d %q %q", w.Code, w.Header().Get("X-Test-Error"), w.Header().Get("Location"))
			}
			q2 := h.authzQuery(c.id, c.uri)
			q2.Set("prompt", "none")
			w = h.authorize(q2, "")
			if w.Code != 400 || w.Header().Get("X-Test-Error") != oauth.CodeLoginRequired {
				t.Fatalf("prompt=none signed out: %d %q", w.Code, w.Header().Get("X-Test-Error"))
			}
			w = h.authorize(q, "alice")
			if w.Code != 400 || w.Header().Get("X-Test-Error") != oauth.CodeInvalidRequest || w.Header().Get("Location") != "" {
				t.Fatalf("signed in, no consent: %d %q %q", w.Code, w.Header().Get("X-Test-Error"), w.Header().Get("Location"))
			}
		})
	}
	// An owned client gets the redirect even before sign-in.
	q := h.authzQuery("app", "http://127.0.0.1/callback")
	q.Set("code_challenge_method", "plain")
	if _, p := redirectParams(t, h.authorize(q, "")); p.Get("error") != oauth.CodeInvalidRequest {
		t.Fatalf("owned: %v", p)
	}
}

// Requirement 5: code, state and iss exactly once, 303 (never 307), the
// registered query kept, loopback any port, private-use schemes.
func TestAuthorizeSuccessResponse(t *testing.T) {
	h := newHarness(t)
	cases := []struct{ name, uri string }{
		{"loopback registered without port", "http://127.0.0.1:51234/callback"},
		{"loopback exact", "http://127.0.0.1/callback"},
		{"https with registered query", "https://app.example.com/cb?tenant=1"},
		{"private-use scheme", "cursor://anysphere.cursor-mcp/oauth/callback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := h.authzQuery("app", tc.uri)
			w := h.authorize(q, "alice")
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", w.Code)
			}
			loc := w.Header().Get("Location")
			if !strings.HasPrefix(loc, strings.SplitN(tc.uri, "?", 2)[0]+"?") {
				t.Fatalf("Location %q does not start with %q", loc, tc.uri)
			}
			_, p := redirectParams(t, w)
			for _, k := range []string{"code", "state", "iss"} {
				if len(p[k]) != 1 {
					t.Fatalf("%s appears %d times in %q", k, len(p[k]), loc)
				}
			}
			if p.Get("iss") != h.issuer || p.Get("state") != "st-123" || len(p.Get("code")) != 43 {
				t.Fatalf("bad params %v", p)
			}
			if strings.Contains(tc.uri, "tenant=1") && p.Get("tenant") != "1" {
				t.Fatalf("registered query lost: %q", loc)
			}
			for k, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
				if got := w.Header().Get(k); got != want {
					t.Fatalf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
	t.Run("no state: none echoed", func(t *testing.T) {
		q := h.authzQuery("app", "http://127.0.0.1/callback")
		q.Del("state")
		_, p := redirectParams(t, h.authorize(q, "alice"))
		if p.Has("state") || !p.Has("code") {
			t.Fatalf("params %v", p)
		}
	})
	t.Run("registered query carrying our names", func(t *testing.T) {
		h2 := newHarness(t, func(c *Config) {
			c.Clients = append(c.Clients, storage.Client{ID: "weird", RedirectURIs: []string{"https://weird.example.com/cb?state=x&code=y&keep=1"}, SkipConsent: true})
		})
		q := h2.authzQuery("weird", "https://weird.example.com/cb?state=x&code=y&keep=1")
		_, p := redirectParams(t, h2.authorize(q, "alice"))
		if len(p["state"]) != 1 || len(p["code"]) != 1 || p.Get("state") != "st-123" || p.Get("keep") != "1" {
			t.Fatalf("params %v", p)
		}
	})
	t.Run("HEAD and PUT are refused", func(t *testing.T) {
		for _, m := range []string{http.MethodHead, http.MethodPut} {
			r := httptest.NewRequest(m, h.issuer+"/authorize?"+h.authzQuery("app", "http://127.0.0.1/callback").Encode(), nil)
			r.AddCookie(&http.Cookie{Name: "test_user", Value: "alice"})
			if w := h.serve(r); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Location") != "" {
				t.Fatalf("%s: %d", m, w.Code)
			}
		}
	})
}

// Sign-in: not signed in -> Login with the same-origin ReturnTo; prompt=none
// -> login_required; prompt=login and max_age -> ForceLogin.
func TestAuthorizeLoginAndPrompt(t *testing.T) {
	h := newHarness(t)
	t.Run("signed out goes to login", func(t *testing.T) {
		q := h.authzQuery("app", "http://127.0.0.1/callback")
		q.Set("login_hint", "alice@example.com")
		w := h.authorize(q, "")
		if w.Header().Get("X-Test-Page") != "login" || w.Header().Get("X-Test-Force") != "" {
			t.Fatalf("got %d %v", w.Code, w.Header())
		}
		ret := w.Header().Get("X-Test-Return")
		if ret != "/authorize?"+q.Encode() {
			t.Fatalf("ReturnTo %q", ret)
		}
		h.browser.mu.Lock()
		last := h.browser.logins[len(h.browser.logins)-1]
		h.browser.mu.Unlock()
		if last.Client.ID != "app" || last.LoginHint != "alice@example.com" {
			t.Fatalf("login request %+v", last)
		}
	})
	t.Run("prompt none signed out", func(t *testing.T) {
		q := h.authzQuery("app", "http://127.0.0.1/callback")
		q.Set("prompt", "none")
		if _, p := redirectParams(t, h.authorize(q, "")); p.Get("error") != oauth.CodeLoginRequired || p.Get("state") != "st-123" {
			t.Fatalf("%v", p)
		}
	})
	t.Run("prompt none signed in", func(t *testing.T) {
		q := h.authzQuery("app", "http://127.0.0.1/callback")
		q.Set("prompt", "none")
		if _, p := redirectParams(t, h.authorize(q, "alice")); !p.Has("code") {
			t.Fatalf("%v", p)
		}
	})
	t.Run("prompt login forces and drops itself from ReturnTo", func(t *testing.T) {
		q := h.authzQuery("app", "http://127.0.0.1/callback")
		q.Set("prompt", "login")
		w := h.authorize(q, "alice")
		if w.Header().Get("X-Test-Page") != "login" || w.Header().Get("X-Test-Force") != "1" {
			t.Fatalf("got %d %v", w.Code, w.Header())
		}
		ret, _ := url.Parse(w.Header().Get("X-Test-Return"))
		if ret.Query().Has("prompt") || ret.Path != "/authorize" || ret.Query().Get("client_id") != "app" {
			t.Fatalf("ReturnTo %q", ret)
		}
		// Back from the login: a code.
		r := httptest.NewRequest(http.MethodGet, h.issuer+ret.String(), nil)
		r.AddCookie(&http.Cookie{Name: "test_user", Value: "alice"})
		if _, p := redirectParams(t, h.serve(r)); !p.Has("code") {
			t.Fatalf("%v", p)
		}
	})
	t.Run("max_age", func(t *testing.T) {
		h.clock.Advance(10 * time.Minute) // the session's auth time is 10 minutes old
		q := h.authzQuery("app", "http://127.0.0.1/callback")
		q.Set("max_age", "3600")
		if _, p := redirectParams(t, h.authorize(q, "alice")); !p.Has("code") {
			t.Fatalf("fresh enough: %v", p)
		}
		q.Set("max_age", "60")
		w := h.authorize(q, "alice")
		if w.Header().Get("X-Test-Force") != "1" || strings.Contains(w.Header().Get("X-Test-Return"), "max_age") {
			t.Fatalf("too old: %d %v", w.Code, w.Header())
		}
		q.Set("prompt", "none")
		if _, p := redirectParams(t, h.authorize(q, "alice")); p.Get("error") != oauth.CodeLoginRequired {
			t.Fatalf("prompt=none too old: %v", p)
		}
	})
}

// Requirement 13: consent for third-party clients, remembered consents
// bound to scopes, resource and fingerprint; owned clients may skip.
func TestAuthorizeConsent(t *testing.T) {
	h := newHarness(t)
	approve := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}
	t.Run("dcr client sees consent", func(t *testing.T) {
		q := h.authzQuery("dcr-1", "http://localhost:9999/cb")
		w := h.authorize(q, "alice")
		if w.Header().Get("X-Test-Page") != "consent" {
			t.Fatalf("got %d %v", w.Code, w.Header())
		}
		p := h.browser.lastConsent()
		if p.Action != "/authorize?"+q.Encode() || p.Client.ID != "dcr-1" || p.RedirectHost != "localhost:9999" || !p.LoopbackOnly ||
			p.Resource != testResource || strings.Join(p.Scopes, " ") != "read" || p.User.Subject != "alice" {
			t.Fatalf("page %+v", p)
		}
	})
	t.Run("cimd client page names the client_id host", func(t *testing.T) {
		w := h.authorize(h.authzQuery(testCIMDClient, "https://client.example.com/cb"), "alice")
		p := h.browser.lastConsent()
		if w.Header().Get("X-Test-Page") != "consent" || p.ClientIDHost != "client.example.com" || p.LoopbackOnly {
			t.Fatalf("page %+v", p)
		}
	})
	t.Run("owned client without skip sees consent", func(t *testing.T) {
		if w := h.authorize(h.authzQuery("asks", "https://asks.example.com/cb"), "alice"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatalf("got %d", w.Code)
		}
	})
	t.Run("prompt none needing consent", func(t *testing.T) {
		q := h.authzQuery("dcr-1", "http://localhost:9999/cb")
		q.Set("prompt", "none")
		// Requirement 42: not redirected before the user consented.
		if w := h.authorize(q, "alice"); w.Code != 400 || w.Header().Get("X-Test-Error") != oauth.CodeConsentRequired || w.Header().Get("Location") != "" {
			t.Fatalf("got %d error %q Location %q", w.Code, w.Header().Get("X-Test-Error"), w.Header().Get("Location"))
		}
	})
	refusals := []struct {
		name   string
		user   string
		form   url.Values
		status int
		page   string
		err    string
	}{
		{"bad csrf", "alice", url.Values{"csrf": {"csrf-mallory"}, "decision": {"approve"}}, 403, "error", oauth.CodeInvalidRequest},
		{"no csrf", "alice", url.Values{"decision": {"approve"}}, 403, "error", oauth.CodeInvalidRequest},
		{"unknown decision", "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"maybe"}}, 400, "error", oauth.CodeInvalidRequest},
		{"two decisions", "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"approve", "deny"}}, 400, "error", oauth.CodeInvalidRequest},
		{"signed out", "", approve, 200, "login", ""},
	}
	for _, tc := range refusals {
		t.Run("post refused: "+tc.name, func(t *testing.T) {
			w := h.consentPost(h.authzQuery("dcr-1", "http://localhost:9999/cb"), tc.user, tc.form)
			if w.Code != tc.status || w.Header().Get("X-Test-Page") != tc.page || w.Header().Get("X-Test-Error") != tc.err || w.Header().Get("Location") != "" {
				t.Fatalf("got %d page %q error %q", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"))
			}
			if n := len(h.audit("code.issued")); n != 0 {
				t.Fatalf("%d codes issued", n)
			}
		})
	}
	t.Run("post re-validates the request", func(t *testing.T) {
		q := h.authzQuery("dcr-1", "http://localhost:9999/cb")
		q.Set("scope", "admin")
		if w := h.consentPost(q, "alice", approve); w.Code != 400 || w.Header().Get("X-Test-Error") != oauth.CodeInvalidScope || w.Header().Get("Location") != "" {
			t.Fatalf("got %d error %q Location %q", w.Code, w.Header().Get("X-Test-Error"), w.Header().Get("Location"))
		}
		q = h.authzQuery("dcr-1", "https://evil.example.com/cb")
		if w := h.consentPost(q, "alice", approve); w.Header().Get("X-Test-Page") != "error" {
			t.Fatalf("bad redirect on post: %d", w.Code)
		}
	})
	t.Run("deny", func(t *testing.T) {
		w := h.consentPost(h.authzQuery("dcr-1", "http://localhost:9999/cb"), "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"deny"}})
		_, p := redirectParams(t, w)
		if p.Get("error") != oauth.CodeAccessDenied || p.Get("state") != "st-123" || p.Get("iss") != h.issuer || p.Has("code") {
			t.Fatalf("%v", p)
		}
	})
	t.Run("approve without remember asks again", func(t *testing.T) {
		q := h.authzQuery("dcr-1", "http://localhost:9999/cb")
		if _, p := redirectParams(t, h.consentPost(q, "alice", approve)); !p.Has("code") {
			t.Fatalf("%v", p)
		}
		if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatalf("consent not asked again: %d", w.Code)
		}
	})
	t.Run("remembered consent", func(t *testing.T) {
		q := h.authzQuery("dcr-1", "http://localhost:9999/cb")
		q.Set("scope", "read write")
		form := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}, "remember": {"on"}}
		if _, p := redirectParams(t, h.consentPost(q, "alice", form)); !p.Has("code") {
			t.Fatalf("%v", p)
		}
		// Same or fewer scopes: no page.
		for _, sc := range []string{"read write", "read", ""} {
			q.Set("scope", sc)
			if _, p := redirectParams(t, h.authorize(q, "alice")); !p.Has("code") {
				t.Fatalf("scope %q: %v", sc, p)
			}
		}
		// Another user, more scopes, prompt=consent: the page again.
		q.Set("scope", "read")
		if w := h.authorize(q, "bob"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatal("bob skipped consent")
		}
		q.Set("scope", "read write offline_access")
		if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatal("more scopes skipped consent")
		}
		q.Set("scope", "read")
		q.Set("prompt", "consent")
		if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatal("prompt=consent skipped consent")
		}
	})
	t.Run("changed client metadata asks again", func(t *testing.T) {
		c, err := h.store.GetClient(context.Background(), "dcr-1")
		if err != nil {
			t.Fatal(err)
		}
		c.RedirectURIs = append(c.RedirectURIs, "https://new.example.com/cb")
		c.Fingerprint = oauth.Fingerprint(c)
		if err := h.store.PutClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if w := h.authorize(h.authzQuery("dcr-1", "http://localhost:9999/cb"), "alice"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatal("changed fingerprint skipped consent")
		}
	})
	t.Run("another resource asks again", func(t *testing.T) {
		h2 := newHarness(t, func(c *Config) { c.Resources.Known = []string{testResource, testResource2} })
		q := h2.authzQuery("dcr-1", "http://localhost:9999/cb")
		form := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}, "remember": {"on"}}
		if _, p := redirectParams(t, h2.consentPost(q, "alice", form)); !p.Has("code") {
			t.Fatalf("%v", p)
		}
		q.Set("resource", testResource2)
		if w := h2.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
			t.Fatal("another resource skipped consent")
		}
	})
}

// An authorization request too long to come back from the login page is a
// page, not a redirect.
func TestAuthorizeTooLong(t *testing.T) {
	h := newHarness(t)
	q := h.authzQuery("app", appRedirect)
	q.Set("state", strings.Repeat("s", maxAuthorizeURL))
	if w := h.authorize(q, "alice"); w.Code != 400 || w.Header().Get("X-Test-Error") != oauth.CodeInvalidRequest || w.Header().Get("Location") != "" {
		t.Fatalf("got %d %v", w.Code, w.Header())
	}
	q.Set("state", strings.Repeat("s", 2049))
	if _, p := redirectParams(t, h.authorize(q, "alice")); p.Get("error") != oauth.CodeInvalidRequest || p.Has("state") {
		t.Fatalf("long state: %v", p)
	}
}

// TestOfflineAccessIgnoredWithoutRefreshGrant: a client that may not use
// refresh tokens and asks for offline_access is not failed; it gets a code
// whose scopes leave offline_access out, and no refresh token.
func TestOfflineAccessIgnoredWithoutRefreshGrant(t *testing.T) {
	h := newHarness(t)
	code := h.code("norefresh", "https://norefresh.example.com/cb", func(q url.Values) { q.Set("scope", "read offline_access") })
	tok := h.mustToken(h.exchangeForm("norefresh", code, "https://norefresh.example.com/cb", testVerifier))
	if tok.RefreshToken != "" {
		t.Fatalf("refresh token issued to a client without the refresh_token grant")
	}
	if tok.Scope != "read" {
		t.Fatalf("scope = %q, want read", tok.Scope)
	}
}

// A CIMD client that the operator disabled is refused although its own
// metadata document still resolves: the decision lives in the store.
func TestAuthorizeDisabledCIMDClient(t *testing.T) {
	h := newHarness(t)
	q := h.authzQuery(testCIMDClient, "https://client.example.com/cb")
	if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") == "error" {
		t.Fatalf("an enabled CIMD client got an error page: %s", w.Header().Get("X-Test-Error"))
	}
	now := h.clock.Now()
	if err := h.store.PutClient(context.Background(), storage.Client{ID: testCIMDClient, Kind: storage.ClientCIMD, Disabled: true,
		RedirectURIs: []string{"https://client.example.com/cb"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "alice"} {
		w := h.authorize(q, user)
		if w.Code != 400 || w.Header().Get("X-Test-Page") != "error" || w.Header().Get("X-Test-Error") != oauth.CodeInvalidClient {
			t.Fatalf("user %q: got %d page %q error %q, want a 400 invalid_client page", user, w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"))
		}
	}
}

// TestAuthorizeHoldsBackUnverifiedEmail: while the browser says the user
// must verify their email first, no consent page and no code; prompt=none
// gets interaction_required (requirement 36).
func TestAuthorizeHoldsBackUnverifiedEmail(t *testing.T) {
	h := newHarness(t)
	q := h.authzQuery("app", appRedirect)
	w := h.authorize(q, "unverified-1")
	if w.Code != http.StatusOK || w.Header().Get("X-Test-Page") != "verify_email" || !strings.HasPrefix(w.Header().Get("X-Test-Return"), "/authorize?") {
		t.Fatalf("authorize: %d page %q return %q", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Return"))
	}
	asks := h.authzQuery("asks", "https://asks.example.com/cb")
	if w := h.consentPost(asks, "unverified-1", url.Values{"csrf": {"csrf-unverified-1"}, "decision": {"approve"}}); w.Header().Get("X-Test-Page") != "verify_email" {
		t.Fatalf("consent post: %d page %q", w.Code, w.Header().Get("X-Test-Page"))
	}
	q.Set("prompt", "none")
	w = h.authorize(q, "unverified-1")
	u, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || u == nil || u.Query().Get("error") != oauth.CodeInteractionRequired || u.Query().Get("code") != "" {
		t.Fatalf("prompt=none: %d %q", w.Code, w.Header().Get("Location"))
	}
	if evs := h.audit("code.issued"); len(evs) != 0 {
		t.Fatalf("codes issued to an unverified account: %d", len(evs))
	}
	// A verified user goes through.
	if code := h.code("app", appRedirect); code == "" {
		t.Fatal("no code for a verified user")
	}
}
