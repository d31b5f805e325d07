package authserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

const (
	entIssuer   = "https://idp.acme.test"
	entJWKS     = "https://idp.acme.test/oauth2/v1/keys"
	wlIssuer    = "https://token.actions.githubusercontent.test"
	wlJWKS      = "https://token.actions.githubusercontent.test/.well-known/jwks"
	wlSubject   = "repo:acme/agent:ref:refs/heads/main"
	otherIssuer = "https://evil.test"
)

// testAccounts is an in-test account directory for enterprise identities.
type testAccounts struct {
	mu     sync.Mutex
	links  map[string]string // idp|sub -> account
	emails map[string]string // email -> account
	calls  []EnterpriseIdentity
}

func (a *testAccounts) resolve(_ context.Context, id EnterpriseIdentity) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, id)
	if acct, ok := a.links[id.IdP+"|"+id.Subject]; ok {
		return acct, nil
	}
	if acct, ok := a.emails[id.Email]; ok && id.LinkByEmail && id.EmailVerified {
		a.links[id.IdP+"|"+id.Subject] = acct
		return acct, nil
	}
	if !id.Provision {
		return "", ErrAccountNotProvisioned
	}
	acct := "jit-" + id.Subject
	a.links[id.IdP+"|"+id.Subject] = acct
	return acct, nil
}

type entHarness struct {
	*harness
	idp, wl  testSigner
	keyed    testSigner
	fetcher  *fakeJWKSFetcher
	accounts *testAccounts
}

func discoveryDoc(t testing.TB, iss, jwks string) []byte {
	b, err := json.Marshal(map[string]any{"issuer": iss, "jwks_uri": jwks, "token_endpoint": iss + "/token"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newEntHarness: an enterprise IdP "acme" (keys discovered from its
// OpenID configuration) trusted for the clients conf and keyed; a machine
// client "bot" (secret, client_credentials only); a workload issuer whose
// subject wlSubject is the client "ci".
func newEntHarness(t testing.TB, mod ...func(*Config)) *entHarness {
	return newEntHarnessSync(t, false, mod...)
}

// newEntHarnessSync is newEntHarness with a choice of fsync (benchmarks).
func newEntHarnessSync(t testing.TB, fsync bool, mod ...func(*Config)) *entHarness {
	idp := newSigner(t, "RS256", "acme-1")
	wl := newSigner(t, "ES256", "gh-1")
	keyed := newSigner(t, "ES256", "owned-1")
	f := &fakeJWKSFetcher{sets: map[string][]byte{
		entIssuer + "/.well-known/openid-configuration": discoveryDoc(t, entIssuer, entJWKS),
		entJWKS: jwksOf(t, idp),
		wlIssuer + "/.well-known/openid-configuration": discoveryDoc(t, wlIssuer, wlJWKS),
		wlJWKS: jwksOf(t, wl),
	}, errs: map[string]error{}, count: map[string]int{}}
	acc := &testAccounts{links: map[string]string{"acme|00u-alice": "alice"}, emails: map[string]string{"bob@acme.test": "bob"}}
	hash, err := HashClientSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessSync(t, fsync, func(c *Config) {
		c.Clients = append(c.Clients,
			storage.Client{ID: "keyed", Name: "Keyed", RedirectURIs: []string{"https://keyed.example.com/cb"}, JWKS: jwksOf(t, keyed), SkipConsent: true},
			storage.Client{ID: "bot", Name: "Bot", GrantTypes: []string{oauth.GrantClientCredentials}, SecretHash: hash, Scopes: []string{"read", "write"}, DefaultScopes: []string{"read"}},
			storage.Client{ID: "ci", Name: "CI agent", GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{"read"}},
		)
		c.IssuerClient = f.client()
		c.EnterpriseAccounts = acc.resolve
		c.EnterpriseIdPs = []EnterpriseIdP{{Name: "acme", Issuer: entIssuer, Clients: []string{"conf", "keyed", "app"},
			ScopeMap: map[string][]string{"mcp.read": {"read"}, "mcp.write": {"write"}}}}
		c.WorkloadIssuers = []WorkloadIssuer{{Name: "github", Issuer: wlIssuer, Clients: map[string]string{wlSubject: "ci"}}}
		for _, m := range mod {
			m(c)
		}
	})
	return &entHarness{harness: h, idp: idp, wl: wl, keyed: keyed, fetcher: f, accounts: acc}
}

func (h *entHarness) idjag(mod ...func(claims, hdr map[string]any)) string {
	now := h.clock.Now()
	c := map[string]any{"iss": entIssuer, "sub": "00u-alice", "aud": h.issuer, "resource": testResource, "client_id": "conf",
		"jti": testJTI(h.t), "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": "mcp.read mcp.write",
		"email": "alice@acme.test"}
	hdr := map[string]any{"typ": IDJAGType}
	for _, m := range mod {
		m(c, hdr)
	}
	return h.idp.sign(h.t, c, hdr)
}

func testJTI(t testing.TB) string {
	j, err := randomToken(12)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func bearerForm(assertion string) url.Values {
	return url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {assertion}, "client_id": {"conf"}, "client_secret": {testSecret}}
}

// TestIDJAGExchange: a valid ID-JAG from a trusted IdP, presented by the
// client it was issued to, gives an access token for its resource, for the
// mapped user, with the intersection of scopes and no refresh token; it is
// audited; the grant is recorded (revocable).
func TestIDJAGExchange(t *testing.T) {
	h := newEntHarness(t)
	tok := h.mustToken(bearerForm(h.idjag()))
	if tok.RefreshToken != "" || tok.TokenType != "Bearer" || tok.Scope != "read write" {
		t.Fatalf("token = %+v", tok)
	}
	c := h.claims(tok.AccessToken)
	if c["aud"] != testResource || c["sub"] != "alice" || c["client_id"] != "conf" {
		t.Fatalf("claims = %v", c)
	}
	evs := h.audit("token.issued")
	if len(evs) != 1 || evs[0].Detail["grant_type"] != oauth.GrantJWTBearer || evs[0].Detail["idp"] != "acme" || evs[0].Subject != "alice" {
		t.Fatalf("audit = %+v", evs)
	}
	if ok, err := h.srv.Active(context.Background(), c["sid"].(string), "conf"); err != nil || !ok {
		t.Fatalf("grant not active: %v %v", ok, err)
	}
	if n := h.fetcher.fetches(entIssuer + "/.well-known/openid-configuration"); n != 1 {
		t.Fatalf("discovery fetched %d times", n)
	}

	// Scopes: requested ∩ ID-JAG ∩ client.
	f := bearerForm(h.idjag(func(c, _ map[string]any) { c["scope"] = "mcp.read" }))
	f.Set("scope", "read write")
	if tok := h.mustToken(f); tok.Scope != "read" {
		t.Fatalf("scope = %q, want read", tok.Scope)
	}
	// A private_key_jwt client (no secret) presents its ID-JAG with its assertion.
	f = url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {h.idjag(func(c, _ map[string]any) { c["client_id"] = "keyed" })}}
	f = withAssertion(f, h.assertionFor(h.keyed, "keyed", "k-1"))
	if tok := h.mustToken(f); h.claims(tok.AccessToken)["client_id"] != "keyed" {
		t.Fatal("keyed client")
	}
}

// TestIDJAGRefusals: every check of requirement 24, each refused with its
// code, audited (id_jag.refused), and with no grant or token issued.
func TestIDJAGRefusals(t *testing.T) {
	h := newEntHarness(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := testSigner{kid: "acme-1", alg: "RS256", key: otherKey} // same kid, another key
	replayed := h.idjag()
	h.mustToken(bearerForm(replayed))
	base := len(h.grants())

	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
		reason oauth.Reason
	}{
		{"replayed jti", bearerForm(replayed), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGReplayed},
		{"wrong aud", bearerForm(h.idjag(func(c, _ map[string]any) { c["aud"] = "https://other-as.test" })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"aud is the token endpoint", bearerForm(h.idjag(func(c, _ map[string]any) { c["aud"] = h.issuer + "/token" })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"wrong typ", bearerForm(h.idjag(func(_, hd map[string]any) { hd["typ"] = "JWT" })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"no typ", bearerForm(h.idjag(func(_, hd map[string]any) { delete(hd, "typ") })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"access token typ", bearerForm(h.idjag(func(_, hd map[string]any) { hd["typ"] = "at+jwt" })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"untrusted issuer", bearerForm(h.idjag(func(c, _ map[string]any) { c["iss"] = otherIssuer })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGUntrustedIssuer},
		{"expired", bearerForm(h.idjag(func(c, _ map[string]any) { c["exp"] = h.clock.Now().Add(-time.Minute).Unix() })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"exp too far ahead", bearerForm(h.idjag(func(c, _ map[string]any) { c["exp"] = h.clock.Now().Add(time.Hour).Unix() })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"iat in the future", bearerForm(h.idjag(func(c, _ map[string]any) { c["iat"] = h.clock.Now().Add(time.Minute).Unix() })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"no iat", bearerForm(h.idjag(func(c, _ map[string]any) { delete(c, "iat") })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"no jti", bearerForm(h.idjag(func(c, _ map[string]any) { delete(c, "jti") })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"client_id of another client", bearerForm(h.idjag(func(c, _ map[string]any) { c["client_id"] = "keyed" })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGWrongClient},
		{"no client_id", bearerForm(h.idjag(func(c, _ map[string]any) { delete(c, "client_id") })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"unknown resource", bearerForm(h.idjag(func(c, _ map[string]any) { c["resource"] = "https://elsewhere.test/mcp" })), 400, oauth.CodeInvalidTarget, oauth.ReasonResourceUnknown},
		{"no resource", bearerForm(h.idjag(func(c, _ map[string]any) { delete(c, "resource") })), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"resource parameter differs", func() url.Values {
			f := bearerForm(h.idjag())
			f.Set("resource", testClientAud)
			return f
		}(), 400, oauth.CodeInvalidTarget, oauth.ReasonResourceMismatch},
		{"bad signature", bearerForm(other.sign(t, map[string]any{"iss": entIssuer, "sub": "00u-alice", "aud": h.issuer, "resource": testResource,
			"client_id": "conf", "jti": "x1", "exp": h.clock.Now().Add(time.Minute).Unix(), "iat": h.clock.Now().Unix(), "scope": "mcp.read"},
			map[string]any{"typ": IDJAGType})), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"no common scope", bearerForm(h.idjag(func(c, _ map[string]any) { c["scope"] = "mcp.admin" })), 400, oauth.CodeInvalidScope, oauth.ReasonScopeInvalid},
		{"unknown user, no provisioning", bearerForm(h.idjag(func(c, _ map[string]any) { c["sub"] = "00u-mallory" })), 400, oauth.CodeInvalidGrant, oauth.ReasonAccountUnmapped},
		{"not a JWT", bearerForm("not-a-jwt"), 400, oauth.CodeInvalidGrant, oauth.ReasonIDJAGInvalid},
		{"client not trusted for the IdP", url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {h.idjag(func(c, _ map[string]any) { c["client_id"] = "bot" })},
			"client_id": {"bot"}, "client_secret": {testSecret}}, 400, oauth.CodeUnauthorizedClient, oauth.ReasonGrantTypeNotAllowed},
		{"public client", url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {h.idjag(func(c, _ map[string]any) { c["client_id"] = "app" })},
			"client_id": {"app"}}, 400, oauth.CodeUnauthorizedClient, oauth.ReasonIDJAGWrongClient},
		{"wrong client secret", func() url.Values { f := bearerForm(h.idjag()); f.Set("client_secret", "nope-nope-nope"); return f }(), 401, oauth.CodeInvalidClient, oauth.ReasonClientAuthFailed},
		{"no assertion", url.Values{"grant_type": {oauth.GrantJWTBearer}, "client_id": {"conf"}, "client_secret": {testSecret}}, 400, oauth.CodeInvalidRequest, oauth.ReasonRequestMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.audit("id_jag.refused"))
			w := h.token(tc.form)
			tok := decodeToken(t, w)
			if w.Code != tc.status || tok.Error != tc.code || tok.AccessToken != "" {
				t.Fatalf("got %d %s (%s), want %d %s", w.Code, tok.Error, tok.Description, tc.status, tc.code)
			}
			if n := len(h.grants()); n != base {
				t.Fatalf("grants = %d, want %d", n, base)
			}
			// Every refusal is audited (aggregated), with its reason.
			_ = h.srv.refusals.Flush(context.Background(), true)
			found := false
			for _, ev := range h.audit("token.refused") {
				if ev.Detail["reason"] == string(tc.reason) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no token.refused record with reason %s", tc.reason)
			}
			// Past client authentication, each refusal is also recorded one by one.
			if tc.code != oauth.CodeInvalidClient && tc.code != oauth.CodeInvalidRequest && tc.code != oauth.CodeUnauthorizedClient || tc.reason == oauth.ReasonIDJAGWrongClient {
				if after := len(h.audit("id_jag.refused")); after != before+1 {
					t.Fatalf("id_jag.refused records %d -> %d", before, after)
				}
			}
		})
	}
}

// TestIDJAGAccountMapping: by verified email links a first-time subject to
// the account with that email; provisioning creates one; by_sub never links.
func TestIDJAGAccountMapping(t *testing.T) {
	h := newEntHarness(t, func(c *Config) { c.EnterpriseIdPs[0].Subject = SubjectByVerifiedEmail })
	tok := h.mustToken(bearerForm(h.idjag(func(c, _ map[string]any) { c["sub"] = "00u-bob"; c["email"] = "bob@acme.test" })))
	if sub := h.claims(tok.AccessToken)["sub"]; sub != "bob" {
		t.Fatalf("sub = %v, want bob (linked by email)", sub)
	}
	// An IdP that says the email is not verified does not link.
	w := h.token(bearerForm(h.idjag(func(c, _ map[string]any) {
		c["sub"] = "00u-bob2"
		c["email"] = "bob@acme.test"
		c["email_verified"] = false
	})))
	if oauthError(t, w) != oauth.CodeInvalidGrant {
		t.Fatalf("unverified email linked: %d %s", w.Code, w.Body)
	}

	hs := newEntHarness(t) // by_sub
	w = hs.token(bearerForm(hs.idjag(func(c, _ map[string]any) { c["sub"] = "00u-bob"; c["email"] = "bob@acme.test" })))
	if oauthError(t, w) != oauth.CodeInvalidGrant {
		t.Fatalf("by_sub linked by email: %d %s", w.Code, w.Body)
	}

	hp := newEntHarness(t, func(c *Config) { c.EnterpriseIdPs[0].Provision = true })
	tok = hp.mustToken(bearerForm(hp.idjag(func(c, _ map[string]any) { c["sub"] = "00u-carol" })))
	if sub := hp.claims(tok.AccessToken)["sub"]; sub != "jit-00u-carol" {
		t.Fatalf("sub = %v, want a provisioned account", sub)
	}
}

// TestIDJAGKeysThroughOutage: the IdP's keys stay in use past their
// refresh time while it is down, however long; once it answers again, an
// ID-JAG signed with a new key (a rotation) is accepted after one bounded
// refetch, without a restart.
func TestIDJAGKeysThroughOutage(t *testing.T) {
	h := newEntHarness(t)
	h.mustToken(bearerForm(h.idjag()))
	h.fetcher.fail(entJWKS, tempErr{})
	h.fetcher.fail(entIssuer+"/.well-known/openid-configuration", tempErr{})
	for _, d := range []time.Duration{3 * time.Hour, 8 * 24 * time.Hour} {
		h.clock.Advance(d) // past every refresh time: a background refetch fails
		if tok := h.mustToken(bearerForm(h.idjag())); tok.AccessToken == "" {
			t.Fatal("no token while the IdP is down")
		}
	}
	// The IdP is back and has rotated to a new key.
	rotated := newSigner(t, "RS256", "acme-2")
	h.fetcher.set(entJWKS, jwksOf(t, h.idp, rotated))
	h.fetcher.fail(entJWKS, nil)
	h.fetcher.fail(entIssuer+"/.well-known/openid-configuration", nil)
	h.clock.Advance(2 * time.Minute) // past the refetch interval
	before := h.fetcher.fetches(entJWKS)
	old := h.idp
	h.idp = rotated
	if tok := h.mustToken(bearerForm(h.idjag())); tok.AccessToken == "" {
		t.Fatal("the rotated key was not picked up")
	}
	// Unknown kids refetch at most once a refetch interval.
	for range 3 {
		h.idp = newSigner(t, "RS256", "acme-unknown")
		if w := h.token(bearerForm(h.idjag())); oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("unknown kid: %d %s", w.Code, w.Body)
		}
	}
	if n := h.fetcher.fetches(entJWKS) - before; n != 1 {
		t.Fatalf("%d JWKS fetches for unknown kids, want 1", n)
	}
	h.idp = old
	h.mustToken(bearerForm(h.idjag()))
}

// TestIDJAGKeysSurviveRestart: the IdP's last good keys are persisted in
// the key store (Caddy's storage in production): a server started while
// the IdP is down verifies with them. Without a persisted copy the server
// still starts, refuses with 503 temporarily_unavailable
// (issuer_keys_unavailable) and accepts once the IdP answers.
func TestIDJAGKeysSurviveRestart(t *testing.T) {
	ks := &memKeyStore{}
	first := newEntHarness(t, func(c *Config) { c.IssuerKeyStore = ks })
	first.mustToken(bearerForm(first.idjag()))
	if n := ks.len(); n != 2 { // the IdP and the workload issuer
		t.Fatalf("%d key sets persisted, want 2", n)
	}
	first.srv.Close()
	f := first.fetcher
	down := []string{entJWKS, entIssuer + "/.well-known/openid-configuration", entIssuer + "/.well-known/oauth-authorization-server"}
	for _, u := range down {
		f.fail(u, tempErr{})
	}
	restart := func(store *memKeyStore) *entHarness {
		h := newEntHarness(t, func(c *Config) {
			c.IssuerClient = f.client()
			if store != nil {
				c.IssuerKeyStore = store
			}
		})
		h.idp, h.fetcher = first.idp, f
		return h
	}
	again := restart(ks)
	if tok := again.mustToken(bearerForm(again.idjag())); again.claims(tok.AccessToken)["sub"] != "alice" {
		t.Fatal("the persisted keys did not verify after the restart")
	}

	// No persisted copy: the server starts, the exchange is refused 503.
	cold := restart(nil)
	w := cold.token(bearerForm(cold.idjag()))
	if w.Code != http.StatusServiceUnavailable || oauthError(t, w) != oauth.CodeTemporarilyUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %s %v, want 503 with Retry-After", w.Code, w.Body, w.Header())
	}
	if evs := cold.audit("id_jag.refused"); len(evs) == 0 || evs[len(evs)-1].Detail["reason"] != string(oauth.ReasonIssuerKeysUnavailable) {
		t.Fatalf("audit = %+v", evs)
	}
	// The IdP answers again: the next background fetch brings the keys.
	for _, u := range down {
		f.fail(u, nil)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cold.clock.Advance(3 * time.Minute) // past any back-off
		w = cold.token(bearerForm(cold.idjag()))
		if w.Code == http.StatusOK {
			break
		}
		if w.Code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the IdP came back: %d %s", w.Code, w.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIDJAGMetadata: the grant and its profile are advertised only when an
// IdP is configured, and the grant is unsupported otherwise.
func TestIDJAGMetadata(t *testing.T) {
	h := newEntHarness(t)
	m := h.srv.Metadata()
	if p, _ := m["authorization_grant_profiles_supported"].([]string); len(p) != 1 || p[0] != GrantProfileIDJAG {
		t.Fatalf("profiles = %v", m["authorization_grant_profiles_supported"])
	}
	gts := strings.Join(m["grant_types_supported"].([]string), " ")
	if !strings.Contains(gts, oauth.GrantJWTBearer) || !strings.Contains(gts, oauth.GrantClientCredentials) {
		t.Fatalf("grant types = %s", gts)
	}
	plain := newHarness(t)
	m = plain.srv.Metadata()
	if _, ok := m["authorization_grant_profiles_supported"]; ok {
		t.Fatal("profiles advertised without an IdP")
	}
	if gts := strings.Join(m["grant_types_supported"].([]string), " "); gts != "authorization_code refresh_token" {
		t.Fatalf("grant types = %s", gts)
	}
	w := plain.token(bearerForm("x.y.z"))
	if oauthError(t, w) != oauth.CodeUnsupportedGrantType {
		t.Fatalf("jwt-bearer without IdPs: %s", w.Body)
	}
}

// TestClientCredentials: a confidential client gets a token for itself
// (sub = client id) bound to the resource, without refresh token; public
// clients, unknown resources and scopes outside the client's set are refused.
func TestClientCredentials(t *testing.T) {
	h := newEntHarness(t)
	f := url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {testResource}, "scope": {"read write"}}
	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(id, secret) }
	}
	w := h.token(f, basic("bot", testSecret))
	tok := decodeToken(t, w)
	if w.Code != 200 || tok.RefreshToken != "" || tok.Scope != "read write" {
		t.Fatalf("got %d %+v", w.Code, tok)
	}
	c := h.claims(tok.AccessToken)
	if c["sub"] != "bot" || c["aud"] != testResource || c["client_id"] != "bot" {
		t.Fatalf("claims = %v", c)
	}
	if evs := h.audit("token.issued"); len(evs) != 1 || evs[0].Detail["grant_type"] != oauth.GrantClientCredentials {
		t.Fatalf("audit = %+v", evs)
	}
	// Without resource: the only known resource (requirement 7).
	w = h.token(url.Values{"grant_type": {oauth.GrantClientCredentials}}, basic("bot", testSecret))
	if tok := decodeToken(t, w); w.Code != 200 || tok.Scope != "read" || h.claims(tok.AccessToken)["aud"] != testResource {
		t.Fatalf("default resource: %d %s", w.Code, w.Body)
	}
	base := len(h.grants())
	cases := []struct {
		name   string
		form   url.Values
		mod    func(*http.Request)
		status int
		code   string
	}{
		{"unknown resource", url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {"https://elsewhere.test/"}}, basic("bot", testSecret), 400, oauth.CodeInvalidTarget},
		{"two resources", url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {testResource, testClientAud}}, basic("bot", testSecret), 400, oauth.CodeInvalidTarget},
		{"offline_access", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"offline_access"}}, basic("bot", testSecret), 400, oauth.CodeInvalidScope},
		{"unknown scope", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"admin"}}, basic("bot", testSecret), 400, oauth.CodeInvalidScope},
		{"wrong secret", url.Values{"grant_type": {oauth.GrantClientCredentials}}, basic("bot", "wrong-wrong-wrong"), 401, oauth.CodeInvalidClient},
		{"client without the grant", url.Values{"grant_type": {oauth.GrantClientCredentials}}, basic("conf", testSecret), 400, oauth.CodeUnauthorizedClient},
		{"public client", url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"app"}}, nil, 400, oauth.CodeUnauthorizedClient},
		{"workload client without its token", url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"ci"}}, nil, 401, oauth.CodeInvalidClient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mods []func(*http.Request)
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			w := h.token(tc.form, mods...)
			if tok := decodeToken(t, w); w.Code != tc.status || tok.Error != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", w.Code, tok.Error, tok.Description, tc.status, tc.code)
			}
			if n := len(h.grants()); n != base {
				t.Fatalf("grants %d, want %d", n, base)
			}
		})
	}
	// A private_key_jwt owned client with the grant.
	kh := newEntHarness(t, func(c *Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "keyed" {
				c.Clients[i].GrantTypes = []string{oauth.GrantClientCredentials}
				c.Clients[i].RedirectURIs = nil
			}
		}
	})
	kf := withAssertion(url.Values{"grant_type": {oauth.GrantClientCredentials}}, kh.assertionFor(kh.keyed, "keyed", "kc-1"))
	if tok := kh.mustToken(kf); kh.claims(tok.AccessToken)["sub"] != "keyed" {
		t.Fatal("private_key_jwt client_credentials")
	}
	if w := kh.token(kf); w.Code != 401 {
		t.Fatalf("replayed client assertion: %d", w.Code)
	}
}

func (h *entHarness) workloadToken(mod ...func(map[string]any)) string {
	now := h.clock.Now()
	c := map[string]any{"iss": wlIssuer, "sub": wlSubject, "aud": h.issuer, "exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(),
		"repository": "acme/agent"}
	for _, m := range mod {
		m(c)
	}
	return h.wl.sign(h.t, c, nil)
}

// TestWorkloadIdentity: a workload token of a trusted issuer is the client
// assertion of its mapped client; it may be reused (the platform reuses it)
// unless single use is on; every bad token is invalid_client.
func TestWorkloadIdentity(t *testing.T) {
	h := newEntHarness(t)
	cc := func(a string) url.Values {
		return url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}
	}
	wt := h.workloadToken()
	for range 2 {
		tok := h.mustToken(cc(wt))
		if c := h.claims(tok.AccessToken); c["sub"] != "ci" || c["client_id"] != "ci" || tok.Scope != "read" || tok.RefreshToken != "" {
			t.Fatalf("claims = %v token %+v", c, tok)
		}
	}
	base := len(h.grants())
	cases := []struct {
		name string
		form url.Values
	}{
		{"unmapped subject", cc(h.workloadToken(func(c map[string]any) { c["sub"] = "repo:acme/other:ref:refs/heads/main" }))},
		{"wrong audience", cc(h.workloadToken(func(c map[string]any) { c["aud"] = "https://sts.amazonaws.test" }))},
		{"expired", cc(h.workloadToken(func(c map[string]any) { c["exp"] = h.clock.Now().Add(-time.Minute).Unix() }))},
		{"lives too long", cc(h.workloadToken(func(c map[string]any) { c["exp"] = h.clock.Now().Add(48 * time.Hour).Unix() }))},
		{"signed by the IdP key", cc(h.idp.sign(t, map[string]any{"iss": wlIssuer, "sub": wlSubject, "aud": h.issuer, "exp": h.clock.Now().Add(time.Minute).Unix()}, map[string]any{"kid": "gh-1"}))},
		{"client_id of another client", func() url.Values { f := cc(h.workloadToken()); f.Set("client_id", "bot"); return f }()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := h.token(tc.form)
			if w.Code != 401 || oauthError(t, w) != oauth.CodeInvalidClient {
				t.Fatalf("got %d %s", w.Code, w.Body)
			}
			if n := len(h.grants()); n != base {
				t.Fatalf("grants %d, want %d", n, base)
			}
		})
	}
	// Another subject claim, and single use.
	h2 := newEntHarness(t, func(c *Config) {
		c.WorkloadIssuers[0].SubjectClaim = "repository"
		c.WorkloadIssuers[0].Clients = map[string]string{"acme/agent": "ci"}
		c.WorkloadIssuers[0].SingleUse = true
	})
	wt = h2.workloadToken(func(c map[string]any) { c["jti"] = "j-1" })
	h2.mustToken(cc(wt))
	if w := h2.token(cc(wt)); w.Code != 401 {
		t.Fatalf("single-use workload token reused: %d %s", w.Code, w.Body)
	}
}

// TestTrustedIssuerConfig: the configuration rules of enterprise IdPs and
// workload issuers.
func TestTrustedIssuerConfig(t *testing.T) {
	base := func(c *Config) {
		c.IssuerClient = (&fakeJWKSFetcher{sets: map[string][]byte{}, errs: map[string]error{}, count: map[string]int{}}).client()
		c.EnterpriseAccounts = (&testAccounts{}).resolve
		c.Clients = append(c.Clients, storage.Client{ID: "ci", Name: "CI", GrantTypes: []string{oauth.GrantClientCredentials}})
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"idp without clients", func(c *Config) { c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: entIssuer}} }, "clients"},
		{"idp with http issuer", func(c *Config) {
			c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: "http://idp.test", Clients: []string{"conf"}}}
		}, "https"},
		{"idp with unknown client", func(c *Config) {
			c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: entIssuer, Clients: []string{"nobody"}}}
		}, "not a configured client"},
		{"idp scope map to unoffered scope", func(c *Config) {
			c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: entIssuer, Clients: []string{"conf"}, ScopeMap: map[string][]string{"x": {"admin"}}}}
		}, "not offered"},
		{"idp bad subject mode", func(c *Config) {
			c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: entIssuer, Clients: []string{"conf"}, Subject: "by_name"}}
		}, "subject"},
		{"idp without account mapper", func(c *Config) {
			c.EnterpriseAccounts = nil
			c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: entIssuer, Clients: []string{"conf"}}}
		}, "account mapper"},
		{"issuer trusted twice", func(c *Config) {
			c.EnterpriseIdPs = []EnterpriseIdP{{Name: "a", Issuer: entIssuer, Clients: []string{"conf"}}}
			c.WorkloadIssuers = []WorkloadIssuer{{Name: "w", Issuer: entIssuer, Clients: map[string]string{"s": "ci"}}}
		}, "twice"},
		{"workload client with a secret", func(c *Config) {
			c.WorkloadIssuers = []WorkloadIssuer{{Name: "w", Issuer: wlIssuer, Clients: map[string]string{"s": "conf"}}}
		}, "secret or keys"},
		{"workload client unknown", func(c *Config) {
			c.WorkloadIssuers = []WorkloadIssuer{{Name: "w", Issuer: wlIssuer, Clients: map[string]string{"s": "nobody"}}}
		}, "not a configured client"},
		{"workload without clients", func(c *Config) { c.WorkloadIssuers = []WorkloadIssuer{{Name: "w", Issuer: wlIssuer}} }, "maps no subject"},
		{"workload lifetime too long", func(c *Config) {
			c.WorkloadIssuers = []WorkloadIssuer{{Name: "w", Issuer: wlIssuer, Clients: map[string]string{"s": "ci"}, MaxLifetime: 48 * time.Hour}}
		}, "max lifetime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newHarness(t).store // a store to build against
			cfg := Config{Issuer: "https://as.example.com", Store: st, Browser: &testBrowser{}, Scopes: []string{"read"}, Clients: testClients(t)}
			base(&cfg)
			tc.mod(&cfg)
			s, err := New(context.Background(), cfg)
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// FuzzIDJAGGrant runs fuzzed assertions through the whole JWT bearer grant
// (parse, issuer choice, verification, claims, scopes, resource): never a
// 5xx other than a key outage, and a token only for an ID-JAG the IdP's key
// signed with the ID-JAG type.
func FuzzIDJAGGrant(f *testing.F) {
	h := newEntHarness(f)
	f.Add(h.idjag())
	f.Add(h.idjag(func(c, _ map[string]any) { c["scope"] = []string{"mcp.read"} }))
	f.Add(h.idjag(func(c, _ map[string]any) { c["resource"] = 7 }))
	f.Add(h.idjag(func(_, hd map[string]any) { hd["typ"] = "JWT" }))
	f.Add(rawJWS(map[string]any{"alg": "none", "typ": IDJAGType}, map[string]any{"iss": entIssuer}, nil, ""))
	f.Add("a.b.c")
	// The grant itself, past client authentication (an argon2id
	// verification per request would leave the fuzzer nothing to run).
	client, err := h.store.GetClient(context.Background(), "conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodPost, h.issuer+"/token", nil)
		_, e := h.srv.jwtBearer(r, client, oauth.AuthMethodClientSecretPost, bearerForm(raw))
		code := 200
		if e != nil {
			code = e.Status
		}
		switch code {
		case 200:
			hdr, _, err := ParseAssertion(raw)
			if err != nil || !typeMatches(hdr.Typ, IDJAGType) {
				t.Fatalf("token for a non-ID-JAG %q", raw)
			}
			if _, err := jws.Verify([]byte(raw), jws.WithKey(jwa.RS256, h.idp.key.Public())); err != nil {
				t.Fatalf("token for an ID-JAG the IdP did not sign: %q", raw)
			}
		case 400, 401:
		default:
			t.Fatalf("status %d for %q: %v", code, raw, e)
		}
	})
}

// TestClientCredentialsCIMDMachineUse: a CIMD client whose document
// declares client_credentials and private_key_jwt gets the grant only from
// a host the operator marks for machine use.
func TestClientCredentialsCIMDMachineUse(t *testing.T) {
	const agentID = "https://agents.example.com/client.json"
	for _, machine := range []bool{false, true} {
		key := newSigner(t, "ES256", "agent-1")
		h := newEntHarness(t, func(c *Config) {
			res := c.ClientResolver.(*testResolver)
			cl := storage.Client{ID: agentID, Kind: storage.ClientCIMD, Name: "Agent", RedirectURIs: []string{"https://agents.example.com/cb"},
				GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantClientCredentials}, TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT, JWKS: jwksOf(t, key)}
			res.clients[agentID] = cl
			c.CIMDPolicy = CIMDPolicy{Hosts: map[string]ClientPolicy{"agents.example.com": {MachineUse: machine}}}
		})
		f := withAssertion(url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {testResource}}, h.assertionFor(key, agentID, "m-1"))
		w := h.token(f)
		switch {
		case machine && w.Code != 200:
			t.Fatalf("machine_use host refused: %d %s", w.Code, w.Body)
		case machine:
			if c := h.claims(decodeToken(t, w).AccessToken); c["sub"] != agentID {
				t.Fatalf("claims = %v", c)
			}
		case !machine && oauthError(t, w) != oauth.CodeUnauthorizedClient:
			t.Fatalf("host without machine_use: %d %s", w.Code, w.Body)
		}
	}
}
