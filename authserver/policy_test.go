package authserver

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

// Per-client-class policy for CIMD clients (requirement 34).

const (
	testCIMDOther = "https://client.example.com/oauth/other.json"
	testCIMDSub   = "https://eu.tools.example.net/client.json"
)

// policyHarness serves three CIMD clients (two on client.example.com, one
// on eu.tools.example.net) with the policies given.
func policyHarness(t *testing.T, p CIMDPolicy) *harness {
	t.Helper()
	h := newHarness(t, func(c *Config) {
		c.CIMDPolicy = p
	})
	for _, id := range []string{testCIMDOther, testCIMDSub} {
		c := storage.Client{ID: id, Kind: storage.ClientCIMD, Name: "Client " + id, RedirectURIs: []string{"https://client.example.com/cb"},
			TokenEndpointAuthMethod: oauth.AuthMethodNone, GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}}
		c.Fingerprint = oauth.Fingerprint(c)
		h.resolver.clients[id] = c
	}
	c := h.resolver.clients[testCIMDClient]
	c.GrantTypes = []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	h.resolver.clients[testCIMDClient] = c
	return h
}

// cimdCode runs /authorize for a CIMD client as alice, approving consent
// (remembered or not), and returns the response of the final step.
func (h *harness) cimdAuthorize(clientID, scope string, remember bool) (*httpResult, url.Values) {
	h.t.Helper()
	q := h.authzQuery(clientID, "https://client.example.com/cb")
	if scope != "" {
		q.Set("scope", scope)
	}
	w := h.authorize(q, "alice")
	res := &httpResult{status: w.Code, page: w.Header().Get("X-Test-Page"), location: w.Header().Get("Location")}
	if res.page == "consent" {
		form := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}
		if remember {
			form.Set("remember", "on")
		}
		w = h.consentPost(q, "alice", form)
		res.consented = true
		res.status, res.location = w.Code, w.Header().Get("Location")
	}
	u, _ := url.Parse(res.location)
	if u == nil {
		return res, url.Values{}
	}
	return res, u.Query()
}

type httpResult struct {
	status    int
	page      string
	location  string
	consented bool
}

func TestCIMDPolicyPrecedence(t *testing.T) {
	p := CIMDPolicy{
		Hosts: map[string]ClientPolicy{
			"*.example.net":       {AccessTokenTTL: 2 * time.Hour, RefreshTokenTTL: 48 * time.Hour},
			"*.tools.example.net": {AccessTokenTTL: 3 * time.Hour},
			"client.example.com":  {AccessTokenTTL: 4 * time.Hour, RefreshTokenTTL: 72 * time.Hour},
		},
		Clients: map[string]ClientPolicy{
			testCIMDClient: {AccessTokenTTL: 24 * time.Hour},
		},
	}
	cases := []struct {
		name          string
		clientID      string
		access, fresh time.Duration
	}{
		// exact URL over host; an unset knob falls through to the host block.
		{"exact url over host", testCIMDClient, 24 * time.Hour, 72 * time.Hour},
		{"exact host", testCIMDOther, 4 * time.Hour, 72 * time.Hour},
		// the longest wildcard suffix wins knob by knob.
		{"longest wildcard, then shorter", testCIMDSub, 3 * time.Hour, 48 * time.Hour},
	}
	h := policyHarness(t, p)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := h.srv.cimdPolicy(c.clientID)
			if got.AccessTokenTTL != c.access || got.RefreshTokenTTL != c.fresh {
				t.Fatalf("policy for %s = %+v, want access %s refresh %s", c.clientID, got, c.access, c.fresh)
			}
		})
	}
	t.Run("no match is the global policy", func(t *testing.T) {
		if got := h.srv.cimdPolicy("https://elsewhere.example.org/c.json"); got.AccessTokenTTL != 0 || got.RefreshTokenTTL != 0 || got.Scopes != nil {
			t.Fatalf("unmatched client got %+v", got)
		}
		// a wildcard matches subdomains only, never the bare name.
		if got := h.srv.cimdPolicy("https://example.net/c.json"); got.AccessTokenTTL != 0 {
			t.Fatalf("*.example.net matched example.net: %+v", got)
		}
	})
}

func TestCIMDPolicyAccessTokenLifetime(t *testing.T) {
	h := policyHarness(t, CIMDPolicy{Clients: map[string]ClientPolicy{testCIMDClient: {AccessTokenTTL: 24 * time.Hour, RefreshTokenTTL: 7 * 24 * time.Hour}}})
	for _, c := range []struct {
		clientID string
		want     int64
	}{
		{testCIMDClient, 86400},
		{testCIMDOther, int64(DefaultAccessTokenTTL / time.Second)},
	} {
		t.Run(c.clientID, func(t *testing.T) {
			_, q := h.cimdAuthorize(c.clientID, "read offline_access", false)
			tok := h.mustToken(h.exchangeForm(c.clientID, q.Get("code"), "https://client.example.com/cb", testVerifier))
			if tok.ExpiresIn != c.want {
				t.Fatalf("expires_in = %d, want %d", tok.ExpiresIn, c.want)
			}
			if exp, iat := h.claims(tok.AccessToken)["exp"].(float64), h.claims(tok.AccessToken)["iat"].(float64); int64(exp-iat) != c.want {
				t.Fatalf("token exp-iat = %v, want %d", exp-iat, c.want)
			}
			// On refresh too.
			w := h.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {tok.RefreshToken}, "client_id": {c.clientID}})
			rt := decodeToken(t, w)
			if w.Code != http.StatusOK || rt.ExpiresIn != c.want {
				t.Fatalf("refresh: %d %+v, want expires_in %d", w.Code, rt, c.want)
			}
		})
	}
	t.Run("refresh token lifetime", func(t *testing.T) {
		var refreshExp time.Time
		for _, g := range h.grants() {
			if g.ClientID == testCIMDClient && !g.Revoked() {
				refreshExp = g.RefreshExpiresAt
			}
		}
		if want := h.clock.Now().Add(7 * 24 * time.Hour); !refreshExp.Equal(want) {
			t.Fatalf("refresh token expires %s, want %s", refreshExp, want)
		}
	})
}

func TestCIMDPolicyScopes(t *testing.T) {
	h := policyHarness(t, CIMDPolicy{Hosts: map[string]ClientPolicy{"client.example.com": {Scopes: []string{"read"}}}})
	cases := []struct {
		name, scope string
		wantErr     string
		wantScope   string
	}{
		{"allowed scope", "read", "", "read"},
		{"scope outside the allowed set", "read write", oauth.CodeInvalidScope, ""},
		{"only an outside scope", "write", oauth.CodeInvalidScope, ""},
		{"no scope: defaults within the allowed set", "", "", "read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, q := h.cimdAuthorize(testCIMDClient, c.scope, false)
			if c.wantErr != "" {
				// Before any consent, a third-party client's refusal is a page, never a redirect.
				if res.status != http.StatusBadRequest || res.page != "error" {
					t.Fatalf("got %d page %q location %q, want the %s error page", res.status, res.page, res.location, c.wantErr)
				}
				if got := h.browser.errorsSeen[len(h.browser.errorsSeen)-1]; got != c.wantErr {
					t.Fatalf("error %q, want %q", got, c.wantErr)
				}
				return
			}
			tok := h.mustToken(h.exchangeForm(testCIMDClient, q.Get("code"), "https://client.example.com/cb", testVerifier))
			if tok.Scope != c.wantScope {
				t.Fatalf("scope %q, want %q", tok.Scope, c.wantScope)
			}
		})
	}
	t.Run("another host is not restricted", func(t *testing.T) {
		_, q := h.cimdAuthorize(testCIMDSub, "read write", false)
		tok := h.mustToken(h.exchangeForm(testCIMDSub, q.Get("code"), "https://client.example.com/cb", testVerifier))
		if tok.Scope != "read write" {
			t.Fatalf("scope %q", tok.Scope)
		}
	})
}

func TestCIMDPolicyRememberConsent(t *testing.T) {
	h := policyHarness(t, CIMDPolicy{
		Clients: map[string]ClientPolicy{testCIMDOther: {RememberConsent: ConsentNotRemembered}},
		Hosts:   map[string]ClientPolicy{"client.example.com": {RememberConsent: time.Hour}},
	})
	t.Run("a duration bounds the remembered consent", func(t *testing.T) {
		res, _ := h.cimdAuthorize(testCIMDClient, "read", true)
		if !res.consented {
			t.Fatal("no consent page the first time")
		}
		c, err := h.store.GetConsent(context.Background(), "alice", testCIMDClient)
		if err != nil || !c.ExpiresAt.Equal(h.clock.Now().Add(time.Hour)) {
			t.Fatalf("remembered consent %+v (%v), want it to expire in 1h", c, err)
		}
		if res, _ := h.cimdAuthorize(testCIMDClient, "read", true); res.consented {
			t.Fatal("consent asked again within the hour")
		}
		h.clock.Advance(time.Hour)
		if res, _ := h.cimdAuthorize(testCIMDClient, "read", false); !res.consented {
			t.Fatal("consent not asked again after the hour")
		}
	})
	t.Run("a stored consent longer than the policy is cut to it", func(t *testing.T) {
		now := h.clock.Now()
		if err := h.store.PutConsent(context.Background(), storage.Consent{Subject: "alice", ClientID: testCIMDClient, Scopes: []string{"read"},
			Resource: testResource, Fingerprint: fingerprintOf(h.resolver.clients[testCIMDClient]), GrantedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(80 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if res, _ := h.cimdAuthorize(testCIMDClient, "read", false); !res.consented {
			t.Fatal("a consent given 2h ago was reused under a 1h policy")
		}
	})
	t.Run("off never remembers", func(t *testing.T) {
		res, _ := h.cimdAuthorize(testCIMDOther, "read", true)
		if !res.consented {
			t.Fatal("no consent page")
		}
		if page := h.browser.lastConsent(); !page.NoRemember {
			t.Fatal("the consent page offers to remember under remember_consent off")
		}
		if _, err := h.store.GetConsent(context.Background(), "alice", testCIMDOther); err == nil {
			t.Fatal("a consent was stored under remember_consent off")
		}
		// A consent stored before the policy changed is not used either.
		now := h.clock.Now()
		if err := h.store.PutConsent(context.Background(), storage.Consent{Subject: "alice", ClientID: testCIMDOther, Scopes: []string{"read"},
			Resource: testResource, Fingerprint: fingerprintOf(h.resolver.clients[testCIMDOther]), GrantedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if res, _ := h.cimdAuthorize(testCIMDOther, "read", false); !res.consented {
			t.Fatal("a stored consent was used under remember_consent off")
		}
	})
}

func TestCIMDPolicyValidation(t *testing.T) {
	base := func() Config {
		return Config{Issuer: "https://as.example.com", Store: nil, Scopes: []string{"read"}}
	}
	cases := []struct {
		name string
		p    CIMDPolicy
		want string
	}{
		{"access token over 24h", CIMDPolicy{Clients: map[string]ClientPolicy{testCIMDClient: {AccessTokenTTL: 24*time.Hour + time.Second}}}, "at most 24h"},
		{"negative access token", CIMDPolicy{Hosts: map[string]ClientPolicy{"claude.ai": {AccessTokenTTL: -time.Second}}}, "negative"},
		{"negative refresh token", CIMDPolicy{Hosts: map[string]ClientPolicy{"claude.ai": {RefreshTokenTTL: -time.Second}}}, "negative"},
		{"unknown scope", CIMDPolicy{Hosts: map[string]ClientPolicy{"claude.ai": {Scopes: []string{"admin"}}}}, "not offered"},
		{"client id not an https url", CIMDPolicy{Clients: map[string]ClientPolicy{"claude.ai": {}}}, "https"},
		{"host with a path", CIMDPolicy{Hosts: map[string]ClientPolicy{"claude.ai/x": {}}}, "host"},
		{"inner wildcard", CIMDPolicy{Hosts: map[string]ClientPolicy{"a.*.claude.ai": {}}}, "host"},
		{"upper case host", CIMDPolicy{Hosts: map[string]ClientPolicy{"Claude.AI": {}}}, "host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			cfg.CIMDPolicy = c.p
			err := cfg.CIMDPolicy.Validate(append(cfg.Scopes, ScopeOfflineAccess))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validate = %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	ok := CIMDPolicy{
		Clients: map[string]ClientPolicy{"https://claude.ai/oauth/mcp-oauth-client-metadata": {AccessTokenTTL: 24 * time.Hour, RememberConsent: ConsentNotRemembered}},
		Hosts:   map[string]ClientPolicy{"claude.ai": {Scopes: []string{"read", ScopeOfflineAccess}}, "*.claude.ai": {RememberConsent: time.Hour}},
	}
	if err := ok.Validate([]string{"read", ScopeOfflineAccess}); err != nil {
		t.Fatalf("a valid policy was refused: %v", err)
	}
}
