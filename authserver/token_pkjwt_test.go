package authserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/cimd"
	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

const (
	pkjwtCIMDClient = "https://chatgpt.test/oauth/client.json"
	pkjwtJWKSURI    = "https://chatgpt.test/oauth/jwks.json"
	pkjwtRedirect   = "https://chatgpt.test/connector_platform_oauth_redirect"
)

// fakeJWKSFetcher serves JWK sets by URL and counts fetches.
type fakeJWKSFetcher struct {
	mu    sync.Mutex
	sets  map[string][]byte
	errs  map[string]error
	count map[string]int
}

func (f *fakeJWKSFetcher) FetchJWKS(_ context.Context, u, _ string) ([]byte, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count[u]++
	if err := f.errs[u]; err != nil {
		return nil, 0, err
	}
	b, ok := f.sets[u]
	if !ok {
		return nil, 0, errors.New("status 404")
	}
	return b, time.Hour, nil
}

func (f *fakeJWKSFetcher) fetches(u string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[u]
}

func (f *fakeJWKSFetcher) set(u string, b []byte) {
	f.mu.Lock()
	f.sets[u] = b
	f.mu.Unlock()
}

type tempErr struct{}

func (tempErr) Error() string                     { return "timeout" }
func (tempErr) Temporary() bool                   { return true }
func (tempErr) RetryAfter() time.Duration         { return 7 * time.Second }
func (tempErr) Unwrap() error                     { return nil }
func (f *fakeJWKSFetcher) fail(u string, e error) { f.mu.Lock(); f.errs[u] = e; f.mu.Unlock() }

// pkjwtHarness is a harness with a ChatGPT-shaped CIMD client (declares
// private_key_jwt, jwks_uri), an owned client with an inline jwks, and a
// fake JWK set fetcher.
func pkjwtHarness(t *testing.T) (*harness, *fakeJWKSFetcher, testSigner, testSigner) {
	rs := newSigner(t, "RS256", "chatgpt-1")
	owned := newSigner(t, "ES256", "owned-1")
	fetcher := &fakeJWKSFetcher{sets: map[string][]byte{pkjwtJWKSURI: jwksOf(t, rs)}, errs: map[string]error{}, count: map[string]int{}}
	h := newHarness(t, func(c *Config) {
		res := c.ClientResolver.(*testResolver)
		cl := storage.Client{ID: pkjwtCIMDClient, Kind: storage.ClientCIMD, Name: "ChatGPT", RedirectURIs: []string{pkjwtRedirect},
			GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}, TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT,
			JWKSURI: pkjwtJWKSURI, TokenEndpointAuthSigningAlg: "RS256"}
		cl.Fingerprint = oauth.Fingerprint(cl)
		res.clients[cl.ID] = cl
		c.Clients = append(c.Clients, storage.Client{ID: "keyed", Name: "Keyed", RedirectURIs: []string{"https://keyed.example.com/cb"},
			JWKS: jwksOf(t, owned), SkipConsent: true})
		c.JWKSFetcher = fetcher
	})
	return h, fetcher, rs, owned
}

func (h *harness) assertionFor(s testSigner, client, jti string, mod ...func(map[string]any)) string {
	now := h.clock.Now()
	c := map[string]any{"iss": client, "sub": client, "aud": h.issuer + "/token", "jti": jti,
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
	for _, m := range mod {
		m(c)
	}
	return s.sign(h.t, c, nil)
}

func withAssertion(f url.Values, a string) url.Values {
	g := url.Values{}
	for k, v := range f {
		g[k] = v
	}
	g.Set("client_assertion_type", ClientAssertionType)
	g.Set("client_assertion", a)
	return g
}

// cimdCode gets a code for a third-party client through consent.
func (h *harness) cimdCode(clientID, redirect string) string {
	h.t.Helper()
	q := h.authzQuery(clientID, redirect)
	if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
		h.t.Fatalf("authorize: %d page %q error %q", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"))
	}
	return h.codeFrom(h.consentPost(q, "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}))
}

// TestTokenPrivateKeyJWTCIMD: a ChatGPT-shaped CIMD client authenticates at
// /token (code and refresh) and /revoke with client assertions; every bad
// assertion is 401 invalid_client and leaves the code, the refresh token
// and the jti as they were.
func TestTokenPrivateKeyJWTCIMD(t *testing.T) {
	h, fetcher, rs, _ := pkjwtHarness(t)
	code := h.cimdCode(pkjwtCIMDClient, pkjwtRedirect)
	exchange := h.exchangeForm(pkjwtCIMDClient, code, pkjwtRedirect, testVerifier)
	es := newSigner(t, "ES256", "chatgpt-1")
	hmacKey := []byte("public-key-as-hmac-secret")

	refusals := []struct {
		name string
		form url.Values
		desc string
	}{
		{"no assertion (declared private_key_jwt, list names none too)", exchange, "the client must authenticate with private_key_jwt"},
		{"replayed jti", nil, "invalid client assertion: assertion replayed"}, // filled below
		{"unknown kid", withAssertion(exchange, testSigner{kid: "rotated-away", alg: "RS256", key: rs.key}.sign(t,
			map[string]any{"iss": pkjwtCIMDClient, "sub": pkjwtCIMDClient, "aud": h.issuer, "jti": "kid", "exp": h.clock.Now().Add(time.Minute).Unix()}, nil)),
			"invalid client assertion: unknown signing key"},
		{"wrong aud", withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "aud", func(c map[string]any) { c["aud"] = "https://evil.example/token" })),
			"invalid client assertion: wrong audience"},
		{"expired", withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "exp", func(c map[string]any) { c["exp"] = h.clock.Now().Add(-time.Minute).Unix() })),
			"invalid client assertion: expired"},
		{"exp too far ahead", withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "far", func(c map[string]any) { c["exp"] = h.clock.Now().Add(10 * time.Minute).Unix() })),
			"invalid client assertion: exp is too far ahead"},
		{"HMAC", withAssertion(exchange, rawJWS(map[string]any{"alg": "HS256", "kid": "chatgpt-1"},
			map[string]any{"iss": pkjwtCIMDClient, "sub": pkjwtCIMDClient, "aud": h.issuer, "jti": "hs", "exp": h.clock.Now().Add(time.Minute).Unix()}, hmacKey, "")),
			"invalid client assertion: signing algorithm not allowed"},
		{"alg none", withAssertion(exchange, rawJWS(map[string]any{"alg": "none", "kid": "chatgpt-1"},
			map[string]any{"iss": pkjwtCIMDClient, "sub": pkjwtCIMDClient, "aud": h.issuer, "jti": "none", "exp": h.clock.Now().Add(time.Minute).Unix()}, nil, "x")),
			"invalid client assertion: signing algorithm not allowed"},
		{"alg other than the declared RS256", withAssertion(exchange, h.assertionFor(es, pkjwtCIMDClient, "es")),
			"invalid client assertion: signing algorithm not allowed"},
		{"iss is not sub", withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "sub", func(c map[string]any) { c["sub"] = "someone" })),
			"invalid client assertion: wrong subject"},
		{"client_id is not iss", func() url.Values {
			f := withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "cid"))
			f.Set("client_id", testCIMDClient)
			return f
		}(), "client_id does not match the client assertion"},
		{"wrong assertion type", func() url.Values {
			f := withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "type"))
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return f
		}(), "unsupported client_assertion_type"},
		{"malformed assertion", withAssertion(exchange, "not-a-jwt"), "invalid client assertion"},
	}
	// The replayed case: a good assertion used once at /revoke first.
	used := h.assertionFor(rs, pkjwtCIMDClient, "used")
	if w := h.post("/revoke", withAssertion(url.Values{"token": {"unknown-token"}, "client_id": {pkjwtCIMDClient}}, used).Encode()); w.Code != http.StatusOK {
		t.Fatalf("revoke with a good assertion: %d %s", w.Code, w.Body)
	}
	refusals[1].form = withAssertion(exchange, used)

	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			grants := len(h.audit("token.issued"))
			w := h.token(tc.form)
			tj := decodeToken(t, w)
			if w.Code != http.StatusUnauthorized || tj.Error != oauth.CodeInvalidClient || tj.Description != tc.desc {
				t.Fatalf("%d %q %q, want 401 invalid_client %q", w.Code, tj.Error, tj.Description, tc.desc)
			}
			if n := len(h.audit("token.issued")) - grants; n != 0 {
				t.Fatalf("%d tokens issued", n)
			}
		})
	}

	// The code is still redeemable (no refusal burned it); the token
	// endpoint URL is accepted as audience like the issuer.
	w := h.token(withAssertion(exchange, h.assertionFor(rs, pkjwtCIMDClient, "good-code")))
	tj := decodeToken(t, w)
	if w.Code != http.StatusOK || tj.AccessToken == "" || tj.RefreshToken == "" {
		t.Fatalf("code exchange: %d %s", w.Code, w.Body)
	}

	// Refresh: without an assertion refused, the refresh token unharmed.
	refresh := url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {tj.RefreshToken}, "client_id": {pkjwtCIMDClient}}
	if w := h.token(refresh); w.Code != http.StatusUnauthorized || decodeToken(t, w).Error != oauth.CodeInvalidClient {
		t.Fatalf("refresh without assertion: %d %s", w.Code, w.Body)
	}
	w = h.token(withAssertion(refresh, h.assertionFor(rs, pkjwtCIMDClient, "good-refresh", func(c map[string]any) { c["aud"] = h.issuer })))
	tj2 := decodeToken(t, w)
	if w.Code != http.StatusOK || tj2.RefreshToken == "" || tj2.RefreshToken == tj.RefreshToken {
		t.Fatalf("refresh: %d %s", w.Code, w.Body)
	}

	// /revoke: the refresh token, with client_id omitted (RFC 7523 §3).
	rev := url.Values{"token": {tj2.RefreshToken}}
	if w := h.post("/revoke", rev.Encode()); w.Code != http.StatusUnauthorized {
		t.Fatalf("revoke without authentication: %d", w.Code)
	}
	if w := h.post("/revoke", withAssertion(rev, h.assertionFor(rs, pkjwtCIMDClient, "revoke")).Encode()); w.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	w = h.token(withAssertion(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {tj2.RefreshToken}}, h.assertionFor(rs, pkjwtCIMDClient, "after-revoke")))
	if w.Code != http.StatusBadRequest || decodeToken(t, w).Error != oauth.CodeInvalidGrant {
		t.Fatalf("refresh after revoke: %d %s", w.Code, w.Body)
	}

	// One fetch served all of the above: the unknown kid came within a
	// minute of it, so it did not refetch.
	if n := fetcher.fetches(pkjwtJWKSURI); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
}

// An unknown kid refetches the set at most once a minute; a rotated key
// is found by that refetch.
func TestPrivateKeyJWTKeyRotation(t *testing.T) {
	h, fetcher, rs, _ := pkjwtHarness(t)
	form := url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"unknown"}}
	post := func(s testSigner, jti string) tokenJSON {
		return decodeToken(t, h.token(withAssertion(form, h.assertionFor(s, pkjwtCIMDClient, jti))))
	}
	// Authenticated, then invalid_grant: the set was fetched once.
	if tj := post(rs, "j1"); tj.Error != oauth.CodeInvalidGrant {
		t.Fatalf("good assertion: %+v", tj)
	}
	rotatedKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rotated := testSigner{kid: "chatgpt-2", alg: "RS256", key: rotatedKey}
	for i := range 3 {
		if tj := post(rotated, "u"+string(rune('0'+i))); tj.Error != oauth.CodeInvalidClient || tj.Description != "invalid client assertion: unknown signing key" {
			t.Fatalf("unknown kid %d: %+v", i, tj)
		}
	}
	if n := fetcher.fetches(pkjwtJWKSURI); n != 1 {
		t.Fatalf("%d fetches after three unknown kids within the minute of the first fetch, want 1", n)
	}
	// The client publishes the new key; a minute later it is found.
	fetcher.set(pkjwtJWKSURI, jwksOf(t, rs, rotated))
	if tj := post(rotated, "u9"); tj.Error != oauth.CodeInvalidClient {
		t.Fatalf("before the refetch interval: %+v", tj)
	}
	h.clock.Advance(61 * time.Second)
	if tj := post(rotated, "r1"); tj.Error != oauth.CodeInvalidGrant {
		t.Fatalf("rotated key after a minute: %+v", tj)
	}
	if n := fetcher.fetches(pkjwtJWKSURI); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Known kids do not refetch, however many requests.
	for i := range 3 {
		if tj := post(rs, "k"+string(rune('0'+i))); tj.Error != oauth.CodeInvalidGrant {
			t.Fatalf("known kid: %+v", tj)
		}
	}
	if n := fetcher.fetches(pkjwtJWKSURI); n != 2 {
		t.Fatalf("%d fetches after known kids, want 2", n)
	}
}

// Key set failures: a transient one is 503 with Retry-After (the client
// must not forget its credentials); a permanent one (refused address, too
// large, invalid set) is 401 invalid_client.
func TestPrivateKeyJWTKeySetFailures(t *testing.T) {
	h, fetcher, rs, _ := pkjwtHarness(t)
	form := url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"unknown"}}
	fetcher.fail(pkjwtJWKSURI, tempErr{})
	w := h.token(withAssertion(form, h.assertionFor(rs, pkjwtCIMDClient, "t1")))
	if tj := decodeToken(t, w); w.Code != http.StatusServiceUnavailable || tj.Error != oauth.CodeTemporarilyUnavailable {
		t.Fatalf("transient: %d %+v", w.Code, tj)
	}
	checkRetryAfter(t, w.Header())
	// The refused assertion's jti is still usable once the keys are back.
	fetcher.fail(pkjwtJWKSURI, nil)
	h.clock.Advance(11 * time.Second) // past the failure memory
	if tj := decodeToken(t, h.token(withAssertion(form, h.assertionFor(rs, pkjwtCIMDClient, "t1")))); tj.Error != oauth.CodeInvalidGrant {
		t.Fatalf("after recovery: %+v", tj)
	}

	// Permanent: a set over 5 KiB, or one with private key material, is
	// refused (a fetcher that let it through still gets it refused here).
	for name, body := range map[string]string{
		"over 5 KiB":  `{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSBytes) + `"}`,
		"private key": `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c","kid":"chatgpt-1"}]}`,
	} {
		h, fetcher, rs, _ := pkjwtHarness(t)
		fetcher.set(pkjwtJWKSURI, []byte(body))
		w := h.token(withAssertion(form, h.assertionFor(rs, pkjwtCIMDClient, "p1")))
		if tj := decodeToken(t, w); w.Code != http.StatusUnauthorized || tj.Error != oauth.CodeInvalidClient ||
			tj.Description != "the client's keys are not usable: the JWK set is invalid" {
			t.Fatalf("%s: %d %+v", name, w.Code, tj)
		}
	}
}

// An owned client with an inline jwks authenticates with private_key_jwt;
// a public client sending an assertion is refused, as is a private_key_jwt
// client sending a secret or nothing.
func TestPrivateKeyJWTOwnedAndPublic(t *testing.T) {
	h, _, rs, owned := pkjwtHarness(t)
	code := h.code("keyed", "https://keyed.example.com/cb")
	ex := h.exchangeForm("keyed", code, "https://keyed.example.com/cb", testVerifier)
	if w := h.token(ex); w.Code != http.StatusUnauthorized || decodeToken(t, w).Description != "the client must authenticate with private_key_jwt" {
		t.Fatalf("owned client without assertion: %d %s", w.Code, w.Body)
	}
	secret := url.Values{}
	for k, v := range ex {
		secret[k] = v
	}
	secret.Set("client_secret", testSecret)
	if w := h.token(secret); w.Code != http.StatusUnauthorized || decodeToken(t, w).Error != oauth.CodeInvalidClient {
		t.Fatalf("owned client with a secret: %d %s", w.Code, w.Body)
	}
	if w := h.token(withAssertion(secret, h.assertionFor(owned, "keyed", "both"))); w.Code != http.StatusBadRequest || decodeToken(t, w).Error != oauth.CodeInvalidRequest {
		t.Fatalf("assertion and secret: %d %s", w.Code, w.Body)
	}
	if w := h.token(withAssertion(ex, h.assertionFor(owned, "keyed", "owned-ok"))); w.Code != http.StatusOK {
		t.Fatalf("owned client with assertion: %d %s", w.Code, w.Body)
	}

	// A public client (CIMD none, owned none) sending an assertion.
	for _, id := range []string{testCIMDClient, "app"} {
		form := url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}}
		w := h.token(withAssertion(form, h.assertionFor(rs, id, "pub-"+id)))
		if tj := decodeToken(t, w); w.Code != http.StatusUnauthorized || tj.Error != oauth.CodeInvalidClient {
			t.Fatalf("public %s with assertion: %d %+v", id, w.Code, tj)
		}
	}
}

// Owned client configuration: keys only for private_key_jwt, never with a
// secret, an inline set of public keys.
func TestValidateOwnedClientKeys(t *testing.T) {
	h, _, _, owned := pkjwtHarness(t)
	hash, _ := HashClientSecret(testSecret)
	good := string(jwksOf(t, owned))
	for name, c := range map[string]storage.Client{
		"secret and jwks":     {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, SecretHash: hash, JWKS: []byte(good)},
		"secret and jwks_uri": {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, SecretHash: hash, JWKSURI: "https://x.example/jwks"},
		"both key sources":    {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKS: []byte(good), JWKSURI: "https://x.example/jwks"},
		"http jwks_uri":       {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKSURI: "http://x.example/jwks"},
		"private jwk":         {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKS: []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}`)},
		"pkjwt without keys":  {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT},
		"keys on public":      {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, TokenEndpointAuthMethod: oauth.AuthMethodNone, JWKS: []byte(good)},
		"HMAC signing alg":    {ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKS: []byte(good), TokenEndpointAuthSigningAlg: "HS256"},
	} {
		if err := h.srv.validateOwnedClient(&c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := storage.Client{ID: "x", RedirectURIs: []string{"https://x.example/cb"}, JWKSURI: "https://x.example/jwks"}
	if err := h.srv.validateOwnedClient(&c); err != nil || c.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT {
		t.Errorf("jwks_uri client: %v %q", err, c.TokenEndpointAuthMethod)
	}
}

// With the real CIMD fetcher, a jwks_uri on a loopback or special-use
// address is never fetched: the client's assertions are 401
// invalid_client.
func TestPrivateKeyJWTJWKSURISpecialUse(t *testing.T) {
	rs := newSigner(t, "RS256", "k")
	for _, uri := range []string{"https://127.0.0.1/jwks.json", "https://loopback.test/jwks.json", "https://metadata.test/latest/jwks"} {
		t.Run(uri, func(t *testing.T) {
			f, err := cimd.NewFetcher(cimd.FetcherConfig{LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
				if host == "loopback.test" {
					return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
				}
				return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, func(c *Config) {
				cl := storage.Client{ID: pkjwtCIMDClient, Kind: storage.ClientCIMD, Name: "X", RedirectURIs: []string{pkjwtRedirect},
					TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT, JWKSURI: uri}
				c.ClientResolver.(*testResolver).clients[cl.ID] = cl
				c.JWKSFetcher = f
			})
			form := url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"x"}}
			w := h.token(withAssertion(form, h.assertionFor(rs, pkjwtCIMDClient, "j")))
			tj := decodeToken(t, w)
			if w.Code != http.StatusUnauthorized || tj.Error != oauth.CodeInvalidClient || !strings.HasPrefix(tj.Description, "the client's keys are not usable") {
				t.Fatalf("%d %+v", w.Code, tj)
			}
			if w.Header().Get("Retry-After") != "" {
				t.Fatal("Retry-After on a permanent refusal")
			}
		})
	}
}
