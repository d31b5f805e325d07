package resourceguard

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestForgedAndWrongTokens drives every refused token through Wrap and
// checks the status, the challenge's error attribute and that the upstream
// was not reached. Accepted variants are in the same table.
func TestForgedAndWrongTokens(t *testing.T) {
	f := newFixture(t, nil)
	now := f.clock.Now()
	loadKeys(t)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&ecKey.PublicKey))})
	claims := func(mut func(c map[string]any)) map[string]any {
		c := goodClaims(now)
		if mut != nil {
			mut(c)
		}
		return c
	}
	hdr := func(kv ...any) map[string]any {
		h := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i].(string)] = kv[i+1]
		}
		return h
	}
	good := sign(t, "ES256", ecKey, ecHeader(), claims(nil))
	goodParts := strings.Split(good, ".")

	type tc struct {
		name    string
		req     func() *http.Request
		status  int
		errAttr string // "" = no error attribute
		reached bool
	}
	withTok := func(tok string) func() *http.Request {
		return func() *http.Request { return bearerReq("POST", testResource, tok) }
	}
	withAuth := func(values ...string) func() *http.Request {
		return func() *http.Request {
			r := httptest_NewRequest("POST", testResource)
			for _, v := range values {
				r.Header.Add("Authorization", v)
			}
			return r
		}
	}
	cases := []tc{
		{"valid ES256", withTok(good), 200, "", true},
		{"valid EdDSA", withTok(sign(t, "EdDSA", edKey, hdr("alg", "EdDSA", "kid", "ed1", "typ", "at+jwt"), claims(nil))), 200, "", true},
		{"valid RS256", withTok(sign(t, "RS256", rsaKey, hdr("alg", "RS256", "kid", "rsa1", "typ", "at+jwt"), claims(nil))), 200, "", true},
		{"valid PS256", withTok(sign(t, "PS256", rsaKey, hdr("alg", "PS256", "kid", "rsaPSS", "typ", "at+jwt"), claims(nil))), 200, "", true},
		{"valid ES384", withTok(sign(t, "ES384", ec384Key, hdr("alg", "ES384", "kid", "ec384", "typ", "at+jwt"), claims(nil))), 200, "", true},
		{"typ application/AT+JWT accepted", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "application/AT+JWT"), claims(nil))), 200, "", true},
		{"lower-case bearer scheme accepted", withAuth("bearer " + good), 200, "", true},
		{"upper-case BEARER and two spaces accepted", withAuth("BEARER  " + good), 200, "", true},
		{"aud array with us accepted", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["aud"] = []string{"https://other.example", testResource} }))), 200, "", true},
		{"expired within leeway accepted", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }))), 200, "", true},
		{"scp array accepted", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"mcp"} }))), 200, "", true},

		{"no Authorization header", withAuth(), 401, "", false},
		{"basic scheme", withAuth("Basic dXNlcjpwYXNz"), 401, "", false},
		{"DPoP scheme", withAuth("DPoP " + good), 401, "", false},
		{"empty bearer token", withAuth("Bearer "), 401, "invalid_token", false},
		{"bearer without space", withAuth("Bearer"), 401, "invalid_token", false},
		{"garbage token", withAuth("Bearer abc"), 401, "invalid_token", false},
		{"token with invalid characters", withAuth("Bearer a.b.c!"), 401, "invalid_token", false},
		{"two tokens in one header", withAuth("Bearer " + good + ", Bearer " + good), 401, "invalid_token", false},
		{"oversized token", withAuth("Bearer " + strings.Repeat("a", maxTokenLen+1)), 401, "invalid_token", false},
		{"four segments", withTok(good + ".AAAA"), 401, "invalid_token", false},
		{"padded base64", withTok(goodParts[0] + "=." + goodParts[1] + "." + goodParts[2]), 401, "invalid_token", false},
		{"duplicate Authorization headers", withAuth("Bearer "+good, "Bearer "+good), 400, "invalid_request", false},
		{"token in query", func() *http.Request { return httptest_NewRequest("POST", testResource+"?access_token="+good) }, 401, "invalid_request", false},
		{"token in query and header", func() *http.Request { return bearerReq("POST", testResource+"?access_token="+good, good) }, 401, "invalid_request", false},
		{"percent-encoded access_token in query", func() *http.Request { return httptest_NewRequest("POST", testResource+"?acc%65ss_token=x") }, 401, "invalid_request", false},

		{"alg none without signature", withTok(signRaw(t, "none", nil, mustJSON(hdr("alg", "none", "kid", "ec1", "typ", "at+jwt")), mustJSON(claims(nil)))), 401, "invalid_token", false},
		{"alg none with copied signature", withTok(b64u(mustJSON(hdr("alg", "none", "kid", "ec1", "typ", "at+jwt"))) + "." + goodParts[1] + "." + goodParts[2]), 401, "invalid_token", false},
		{"alg None mixed case", withTok(signRaw(t, "none", nil, mustJSON(hdr("alg", "None", "kid", "ec1", "typ", "at+jwt")), mustJSON(claims(nil))) + "AAAA"), 401, "invalid_token", false},
		{"HS256 signed with RSA public key PEM", withTok(sign(t, "HS256", rsaPubPEM, hdr("alg", "HS256", "kid", "rsa1", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"HS256 signed with EC public key PEM", withTok(sign(t, "HS256", ecPubPEM, hdr("alg", "HS256", "kid", "ec1", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"RS256 header with EC key id", withTok(sign(t, "RS256", rsaKey, hdr("alg", "RS256", "kid", "ec1", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"ES256 header with RSA key id", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "rsa1", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"RS256 header with PS256 key id", withTok(sign(t, "RS256", rsaKey, hdr("alg", "RS256", "kid", "rsaPSS", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"EdDSA header with EC key id", withTok(sign(t, "EdDSA", edKey, hdr("alg", "EdDSA", "kid", "ec1", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"signed by another EC key", withTok(sign(t, "ES256", ecKey2, ecHeader(), claims(nil))), 401, "invalid_token", false},
		{"tampered payload", withTok(goodParts[0] + "." + b64u(mustJSON(claims(func(c map[string]any) { c["sub"] = "admin" }))) + "." + goodParts[2]), 401, "invalid_token", false},
		{"truncated signature", withTok(goodParts[0] + "." + goodParts[1] + "." + goodParts[2][:20]), 401, "invalid_token", false},
		{"unknown kid", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "nope", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"missing kid", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"kid path traversal", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "../../ec1", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"kid with NUL", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1\x00", "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"kid not a string", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", 1, "typ", "at+jwt"), claims(nil))), 401, "invalid_token", false},
		{"embedded jwk", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "at+jwt", "jwk", ecJWK("ec1", &ecKey.PublicKey)), claims(nil))), 401, "invalid_token", false},
		{"jku header", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "at+jwt", "jku", "https://evil.example/jwks"), claims(nil))), 401, "invalid_token", false},
		{"x5u header", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "at+jwt", "x5u", "https://evil.example/cert"), claims(nil))), 401, "invalid_token", false},
		{"x5c header", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "at+jwt", "x5c", []string{"MIIB"}), claims(nil))), 401, "invalid_token", false},
		{"crit header", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "at+jwt", "crit", []string{"exp"}, "exp", 1), claims(nil))), 401, "invalid_token", false},
		{"duplicate alg member", withTok(signRaw(t, "ES256", ecKey, []byte(`{"alg":"none","alg":"ES256","kid":"ec1","typ":"at+jwt"}`), mustJSON(claims(nil)))), 401, "invalid_token", false},
		{"header not an object", withTok(signRaw(t, "ES256", ecKey, []byte(`["ES256"]`), mustJSON(claims(nil)))), 401, "invalid_token", false},
		{"typ missing", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1"), claims(nil))), 401, "invalid_token", false},
		{"typ JWT", withTok(sign(t, "ES256", ecKey, hdr("alg", "ES256", "kid", "ec1", "typ", "JWT"), claims(nil))), 401, "invalid_token", false},
		{"expired", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }))), 401, "invalid_token", false},
		{"no exp", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { delete(c, "exp") }))), 401, "invalid_token", false},
		{"exp not a number", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["exp"] = "tomorrow" }))), 401, "invalid_token", false},
		{"exp absurdly far", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["exp"] = 1e300 }))), 401, "invalid_token", false},
		{"nbf in the future", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }))), 401, "invalid_token", false},
		{"iat in the future", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }))), 401, "invalid_token", false},
		{"wrong iss", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" }))), 401, "invalid_token", false},
		{"iss with trailing slash", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["iss"] = testIssuer + "/" }))), 401, "invalid_token", false},
		{"no iss", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { delete(c, "iss") }))), 401, "invalid_token", false},
		{"wrong aud", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["aud"] = "https://other.example.com/mcp" }))), 401, "invalid_token", false},
		{"aud prefix of ours", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["aud"] = "https://mcp.example.com" }))), 401, "invalid_token", false},
		{"aud array without us", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["aud"] = []string{"https://a.example", "https://b.example"} }))), 401, "invalid_token", false},
		{"no aud", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { delete(c, "aud") }))), 401, "invalid_token", false},
		{"no sub", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { delete(c, "sub") }))), 401, "invalid_token", false},
		{"sub with newline", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["sub"] = "a\r\nX-Admin: 1" }))), 401, "invalid_token", false},
		{"duplicate iss claim", withTok(signRaw(t, "ES256", ecKey, mustJSON(ecHeader()), []byte(strings.Replace(string(mustJSON(claims(nil))), "{", `{"iss":"https://evil.example",`, 1)))), 401, "invalid_token", false},
		{"claims not JSON", withTok(signRaw(t, "ES256", ecKey, mustJSON(ecHeader()), []byte("not json"))), 401, "invalid_token", false},
		{"insufficient scope", withTok(sign(t, "ES256", ecKey, ecHeader(), claims(func(c map[string]any) { c["scope"] = "todo:read" }))), 403, "insufficient_scope", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.reached.Load()
			w := f.do(c.req())
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, c.status, w.Body)
			}
			reached := f.reached.Load() > before
			if reached != c.reached {
				t.Fatalf("upstream reached = %v, want %v", reached, c.reached)
			}
			if c.status == 200 {
				return
			}
			wa := w.Header().Get("WWW-Authenticate")
			scheme, params, err := parseChallenge(wa)
			if err != nil || scheme != "Bearer" {
				t.Fatalf("WWW-Authenticate %q: scheme %q, %v", wa, scheme, err)
			}
			if got := params["error"]; got != c.errAttr {
				t.Fatalf("error attribute = %q, want %q (header %q)", got, c.errAttr, wa)
			}
			if _, ok := params["error"]; !ok && c.errAttr == "" && strings.Contains(wa, "error") {
				t.Fatalf("no-token challenge carries an error: %q", wa)
			}
			if params["resource_metadata"] != "https://mcp.example.com/.well-known/oauth-protected-resource/mcp" {
				t.Fatalf("resource_metadata = %q", params["resource_metadata"])
			}
			if w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `"error":"`) {
				t.Fatalf("body = %q", w.Body)
			}
			if strings.Contains(w.Body.String(), goodParts[2]) || strings.Contains(wa, goodParts[2]) {
				t.Fatal("refusal echoes the token")
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// httptest_NewRequest builds a request without Authorization.
func httptest_NewRequest(method, target string) *http.Request {
	return bearerReq(method, target, "")
}

func TestPrincipalFromToken(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(nil)
	p, c := f.g.Check(bearerReq("POST", testResource, tok))
	if c != nil {
		t.Fatalf("refused: %+v", c)
	}
	if p.Subject != "user-123" || p.ClientID != "client-abc" || p.Email != "user@example.com" ||
		p.GrantID != "grant-1" || p.TokenID != "tok-1" || strings.Join(p.Scopes, " ") != "mcp todo:read" {
		t.Fatalf("principal = %+v", p)
	}
	if !p.Expiry.Equal(f.clock.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Fatalf("expiry = %v", p.Expiry)
	}
	if p.Claims["iss"] != testIssuer {
		t.Fatalf("claims = %v", p.Claims)
	}
	// azp is the client id when client_id is absent (issuers other than ours).
	tok = f.token(func(h, c map[string]any) { delete(c, "client_id"); c["azp"] = "azp-client" })
	if p, c = f.g.Check(bearerReq("GET", testResource, tok)); c != nil || p.ClientID != "azp-client" {
		t.Fatalf("azp: %+v %+v", p, c)
	}
}

func TestKeySourceFailureIs503NotCached(t *testing.T) {
	f := newFixture(t, nil)
	f.keys.down.Store(true)
	w := f.do(bearerReq("POST", testResource, f.token(nil)))
	if w.Code != http.StatusServiceUnavailable || f.reached.Load() != 0 {
		t.Fatalf("status %d, reached %d", w.Code, f.reached.Load())
	}
	if w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("503 carries a challenge: %q", w.Header().Get("WWW-Authenticate"))
	}
	if f.g.cache.len() != 0 {
		t.Fatal("failure cached")
	}
	f.keys.down.Store(false)
	if w := f.do(bearerReq("POST", testResource, f.token(nil))); w.Code != 200 {
		t.Fatalf("after recovery: %d", w.Code)
	}
}

func TestBareOriginAudience(t *testing.T) {
	for _, res := range []string{"https://mcp.example.com", "https://mcp.example.com/"} {
		t.Run(res, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Resource = res })
			for _, aud := range []string{"https://mcp.example.com", "https://mcp.example.com/"} {
				tok := f.token(func(h, c map[string]any) { c["aud"] = aud })
				if w := f.do(bearerReq("POST", "https://mcp.example.com/", tok)); w.Code != 200 {
					t.Fatalf("aud %q: status %d", aud, w.Code)
				}
			}
			tok := f.token(func(h, c map[string]any) { c["aud"] = "https://mcp.example.com/mcp" })
			if w := f.do(bearerReq("POST", "https://mcp.example.com/", tok)); w.Code != 401 {
				t.Fatalf("path aud accepted for a bare origin: %d", w.Code)
			}
		})
	}
}

func TestRequireTypOff(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RequireTyp = false })
	for _, typ := range []any{nil, "JWT", "at+jwt"} {
		tok := f.token(func(h, c map[string]any) {
			if typ == nil {
				delete(h, "typ")
			} else {
				h["typ"] = typ
			}
		})
		if w := f.do(bearerReq("POST", testResource, tok)); w.Code != 200 {
			t.Fatalf("typ %v: %d", typ, w.Code)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	keys := newMemKeys(t)
	base := func() Config { return Config{Resource: testResource, Issuer: testIssuer, Keys: keys} }
	cases := []struct {
		name string
		mut  func(*Config)
	}{
		{"no resource", func(c *Config) { c.Resource = "" }},
		{"no issuer", func(c *Config) { c.Issuer = "" }},
		{"no keys", func(c *Config) { c.Keys = nil }},
		{"relative resource", func(c *Config) { c.Resource = "/mcp" }},
		{"resource with fragment", func(c *Config) { c.Resource = testResource + "#x" }},
		{"resource with query", func(c *Config) { c.Resource = testResource + "?a=b" }},
		{"resource with quote", func(c *Config) { c.Resource = `https://mcp.example.com/"` }},
		{"resource with dot segment", func(c *Config) { c.Resource = "https://mcp.example.com/a/../mcp" }},
		{"alg none", func(c *Config) { c.Algorithms = []string{"none"} }},
		{"alg HS256", func(c *Config) { c.Algorithms = []string{"ES256", "HS256"} }},
		{"leeway too large", func(c *Config) { c.Leeway = 5 * time.Minute }},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }},
		{"bad scope", func(c *Config) { c.Scopes = []string{"a b"} }},
		{"bad method scope", func(c *Config) { c.MethodScopes = map[string][]string{"tools/call": {`x"`}} }},
		{"bad origin", func(c *Config) { c.AllowedOrigins = []string{"https://a.example/path"} }},
		{"null origin", func(c *Config) { c.AllowedOrigins = []string{"null"} }},
		{"bad authorization server", func(c *Config) { c.AuthorizationServers = []string{"ftp://x"} }},
		{"identity header with space", func(c *Config) { c.Identity.Subject = "X User" }},
		{"identity header Authorization", func(c *Config) { c.Identity.Email = "authorization" }},
		{"identity header Host", func(c *Config) { c.Identity.ClientID = "Host" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.mut(&cfg)
			if g, err := New(cfg); err == nil {
				t.Fatalf("New accepted %+v", g)
			}
		})
	}
	if _, err := New(base()); err != nil {
		t.Fatalf("base config refused: %v", err)
	}
}

// TestAudienceNormalized: the guard compares aud with its resource in the
// authorization server's canonical form (internal/resourceuri), so a
// configured default port or upper-case host does not refuse the tokens the
// server issues, while any other difference still refuses.
func TestAudienceNormalized(t *testing.T) {
	tests := []struct {
		resource, aud string
		ok            bool
	}{
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp", true},
		{"https://mcp.example.com/mcp", "https://mcp.example.com:443/mcp", true},
		{"https://MCP.Example.com/mcp", "https://mcp.example.com/mcp", true},
		{"https://mcp.example.com/mcp", "HTTPS://MCP.EXAMPLE.COM:443/mcp", true},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com:443/mcp", true},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp2", false},
		{"https://mcp.example.com:443/mcp", "http://mcp.example.com/mcp", false},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com:8443/mcp", false},
		{"https://mcp.example.com:443/mcp", "https://other.example.com/mcp", false},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/MCP", false},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp/", false},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp#x", false},
		{"https://mcp.example.com:443/mcp", "https://u@mcp.example.com/mcp", false},
		{"https://mcp.example.com:443/mcp", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.resource+" aud "+tt.aud, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Resource = tt.resource })
			for _, aud := range []any{tt.aud, []string{"https://unrelated.example", tt.aud}} {
				tok := f.token(func(h, c map[string]any) { c["aud"] = aud })
				w := f.do(bearerReq("POST", "https://mcp.example.com/mcp", tok))
				if got := w.Code == 200; got != tt.ok {
					t.Fatalf("aud %v: status %d, want ok=%v", aud, w.Code, tt.ok)
				}
			}
		})
	}
}

// TestScopeSetShared: tokens with the same scope claim share one expanded
// scope set (the hot path reads it on every request); another claim gets
// its own, and past maxScopeSets tokens still get a correct set.
func TestScopeSetShared(t *testing.T) {
	f := newFixture(t, nil)
	verify := func(scope, jti string) *verifiedToken {
		t.Helper()
		v, _, c := f.g.verifyToken(context.Background(), f.token(func(_, cl map[string]any) { cl["scope"] = scope; cl["jti"] = jti }))
		if c != nil {
			t.Fatalf("verify: %+v", c)
		}
		return v
	}
	// Two spaces: the claim's separator is any white space.
	a := verify("todo:read  todo:write", "a")
	runtime.GC() // the sharing outlives a collection while a token holds it
	b := verify("todo:read todo:write", "b")
	if a.scopes != b.scopes {
		t.Fatal("two tokens with the same scope claim have two scope sets")
	}
	if a.scopes.line != "todo:read todo:write" {
		t.Fatalf("scope line = %q, want the scopes joined by one space", a.scopes.line)
	}
	if a.p.Subject != b.p.Subject || unsafe.StringData(a.p.Subject) != unsafe.StringData(b.p.Subject) {
		t.Fatal("the subject is not shared")
	}
	c := verify("todo:read", "c")
	if a.scopes == c.scopes || len(c.scopes.set) != 1 || len(a.scopes.set) != 2 || c.scopes.line != "todo:read" {
		t.Fatalf("scope sets: %+v and %+v", a.scopes, c.scopes)
	}
	f.g.scopeSetCount.Store(maxScopeSets) // the table is full
	d := verify("todo:write", "d")
	if _, ok := d.scopes.set["todo:write"]; !ok || len(d.scopes.set) != 1 || d.scopes.line != "todo:write" {
		t.Fatalf("scope set past the bound: %+v", d.scopes)
	}
	if _, ok := f.g.scopeSets.Load("todo:write"); ok {
		t.Fatal("a scope set was stored past the bound")
	}
}
