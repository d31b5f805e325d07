package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const testURL = "https://mcp.example.com/mcp"

var testNow = time.Unix(1_800_000_000, 0)

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawProof signs arbitrary header members and claims (for malformed proofs).
func rawProof(t testing.TB, key crypto.Signer, alg string, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range hdr {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	payload, _ := json.Marshal(claims)
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func pubJWK(t testing.TB, k crypto.Signer) jwk.Key {
	j, err := jwk.FromRaw(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func goodClaims() map[string]any {
	return map[string]any{"jti": "j1", "htm": "POST", "htu": testURL, "iat": testNow.Unix(), "ath": AccessTokenHash("tok")}
}

func policy() Policy {
	return Policy{Method: "POST", URL: testURL, AccessToken: "tok", Now: testNow}
}

func TestVerify(t *testing.T) {
	key := ecKey(t)
	other := ecKey(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	privJWK, _ := jwk.FromRaw(key)
	symJWK, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	hdr := func(mod func(map[string]any)) map[string]any {
		h := map[string]any{"typ": Type, "jwk": pubJWK(t, key)}
		if mod != nil {
			mod(h)
		}
		return h
	}
	claims := func(mod func(map[string]any)) map[string]any {
		c := goodClaims()
		if mod != nil {
			mod(c)
		}
		return c
	}
	good := rawProof(t, key, "ES256", hdr(nil), claims(nil))
	parts := strings.Split(good, ".")
	hmacProof := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"dpop+jwt","jwk":{"kty":"oct","k":"AAAA"}}`))
		p := parts[1]
		m := hmac.New(crypto.SHA256.New, []byte{0, 0, 0})
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	noneProof := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"dpop+jwt"}`)) + "." + parts[1] + "."
	dupHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"dpop+jwt","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	tests := []struct {
		name   string
		proof  string
		pol    func(*Policy)
		reason string // "" accepts
		nonce  bool
	}{
		{"good ES256", good, nil, "", false},
		{"good RS256", rawProof(t, rsaKey, "RS256", map[string]any{"typ": Type, "jwk": pubJWK(t, rsaKey)}, claims(nil)), nil, "", false},
		{"good PS256", rawProof(t, rsaKey, "PS256", map[string]any{"typ": Type, "jwk": pubJWK(t, rsaKey)}, claims(nil)), nil, "", false},
		{"good EdDSA", rawProof(t, edKey, "EdDSA", map[string]any{"typ": Type, "jwk": pubJWK(t, edKey)}, claims(nil)), nil, "", false},
		{"typ application/dpop+jwt", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["typ"] = "application/dpop+jwt" }), claims(nil)), nil, "", false},
		{"no ath check without token", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { delete(c, "ath") })), func(p *Policy) { p.AccessToken = "" }, "", false},
		{"normalized htu", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["htu"] = "HTTPS://MCP.Example.com:443/%6Dcp?x=1#f" })), nil, "", false},
		{"empty", "", nil, "empty proof", false},
		{"too large", strings.Repeat("a", MaxProofBytes+1), nil, "too large", false},
		{"two parts", parts[0] + "." + parts[1], nil, "compact JWS", false},
		{"duplicate header member", dupHeader, nil, "malformed header", false},
		{"wrong typ", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["typ"] = "JWT" }), claims(nil)), nil, "typ", false},
		{"no typ", rawProof(t, key, "ES256", hdr(func(h map[string]any) { delete(h, "typ") }), claims(nil)), nil, "typ", false},
		{"alg none", noneProof, nil, "compact JWS", false},
		{"alg HS256", hmacProof(), nil, "algorithm not allowed", false},
		{"alg outside policy", good, func(p *Policy) { p.Algs = []string{"EdDSA"} }, "algorithm not allowed", false},
		{"no jwk", rawProof(t, key, "ES256", hdr(func(h map[string]any) { delete(h, "jwk") }), claims(nil)), nil, "jwk header is required", false},
		{"private jwk", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["jwk"] = privJWK }), claims(nil)), nil, "private", false},
		{"symmetric jwk", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["jwk"] = symJWK }), claims(nil)), nil, "private or symmetric", false},
		{"kid beside jwk", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["kid"] = "k1" }), claims(nil)), nil, "other than", false},
		{"x5u", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["x5u"] = "https://evil.example/c" }), claims(nil)), nil, "other than", false},
		{"jwk of another key", rawProof(t, key, "ES256", hdr(func(h map[string]any) { h["jwk"] = pubJWK(t, other) }), claims(nil)), nil, "bad signature", false},
		{"small RSA", rawProof(t, smallRSA, "RS256", map[string]any{"typ": Type, "jwk": pubJWK(t, smallRSA)}, claims(nil)), nil, "does not fit", false},
		{"EC key under RS256", rawProof(t, rsaKey, "RS256", hdr(nil), claims(nil)), nil, "does not fit", false},
		{"tampered claims", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"j2","htm":"POST","htu":"`+testURL+`","iat":1800000000}`)) + "." + parts[2], nil, "bad signature", false},
		{"no jti", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { delete(c, "jti") })), nil, "jti is required", false},
		{"long jti", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) })), nil, "jti too long", false},
		{"jti not a string", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["jti"] = 7 })), nil, "malformed claims", false},
		{"no iat", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { delete(c, "iat") })), nil, "iat is required", false},
		{"iat string", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["iat"] = "now" })), nil, "iat is required", false},
		{"wrong method", good, func(p *Policy) { p.Method = "GET" }, "htm", false},
		{"lower-case htm", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["htm"] = "post" })), nil, "htm", false},
		{"other URL", good, func(p *Policy) { p.URL = "https://mcp.example.com/other" }, "htu", false},
		{"other host", good, func(p *Policy) { p.URL = "https://evil.example.com/mcp" }, "htu", false},
		{"other scheme", good, func(p *Policy) { p.URL = "http://mcp.example.com/mcp" }, "htu", false},
		{"other port", good, func(p *Policy) { p.URL = "https://mcp.example.com:8443/mcp" }, "htu", false},
		{"relative htu", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["htu"] = "/mcp" })), nil, "htu", false},
		{"iat in the future", good, func(p *Policy) { p.Now = testNow.Add(-time.Minute) }, "future", false},
		{"iat within skew", good, func(p *Policy) { p.Now = testNow.Add(-20 * time.Second) }, "", false},
		{"too old", good, func(p *Policy) { p.Now = testNow.Add(DefaultMaxAge + time.Second) }, "too old", false},
		{"ath of another token", good, func(p *Policy) { p.AccessToken = "other" }, "ath", false},
		{"ath missing", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { delete(c, "ath") })), nil, "ath", false},
		{"nonce missing", good, func(p *Policy) { p.Nonce = func(string) bool { return true } }, "nonce", true},
		{"nonce refused", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["nonce"] = "stale" })), func(p *Policy) { p.Nonce = func(n string) bool { return n == "fresh" } }, "nonce", true},
		{"nonce accepted", rawProof(t, key, "ES256", hdr(nil), claims(func(c map[string]any) { c["nonce"] = "fresh" })), func(p *Policy) { p.Nonce = func(n string) bool { return n == "fresh" } }, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := policy()
			if tc.pol != nil {
				tc.pol(&p)
			}
			got, err := Verify(tc.proof, p)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got.JTI == "" || got.JKT == "" || !got.Until.After(got.IssuedAt) {
					t.Fatalf("proof %+v", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tc.reason)
			}
			if !errors.Is(err, ErrInvalidProof) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %v, want ErrInvalidProof with %q", err, tc.reason)
			}
			if errors.Is(err, ErrNonce) != tc.nonce {
				t.Fatalf("ErrNonce = %v, want %v", errors.Is(err, ErrNonce), tc.nonce)
			}
		})
	}
}

func TestThumbprintMatchesJKT(t *testing.T) {
	key := ecKey(t)
	proof, err := Sign(key, "ES256", ProofRequest{Method: "GET", URL: testURL, IssuedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Verify(proof, Policy{Method: "GET", URL: testURL, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Thumbprint(key.Public())
	if p.JKT != want {
		t.Fatalf("jkt %s, want %s", p.JKT, want)
	}
	// RFC 7638 §3.1's example key has a known thumbprint.
	var ex = `{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`
	_, pub, err := PublicJWK(json.RawMessage(ex))
	if err != nil {
		t.Fatal(err)
	}
	if tp, _ := Thumbprint(pub); tp != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("RFC 7638 example thumbprint %s", tp)
	}
}

func TestNormalizeHTU(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://A.Example.COM/mcp", "https://a.example.com/mcp"},
		{"https://a.example.com:443/mcp", "https://a.example.com/mcp"},
		{"http://a.example.com:80", "http://a.example.com/"},
		{"https://a.example.com", "https://a.example.com/"},
		{"https://a.example.com/a/./b/../c", "https://a.example.com/a/c"},
		{"https://a.example.com/%7e%2f", "https://a.example.com/~%2F"},
		{"https://a.example.com/mcp?q=1", "https://a.example.com/mcp"},
		{"https://a.example.com:8443/mcp#x", "https://a.example.com:8443/mcp"},
	} {
		got, err := NormalizeHTU(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeHTU(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "/mcp", "ftp://a.example.com/", "https:///x", "https://a.example.com/%zz", "https://a.example.com/%4"} {
		if got, err := NormalizeHTU(in); err == nil {
			t.Errorf("NormalizeHTU(%q) = %q, want an error", in, got)
		}
	}
}

func TestNonces(t *testing.T) {
	n, err := NewNonces(nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewNonces(nil, time.Minute)
	v := n.Issue(testNow)
	switch {
	case !n.Valid(v, testNow), !n.Valid(v, testNow.Add(time.Minute)):
		t.Fatal("fresh nonce refused")
	case n.Valid(v, testNow.Add(2*time.Minute+time.Second)):
		t.Fatal("stale nonce accepted")
	case n.Valid(v, testNow.Add(-2*time.Minute)):
		t.Fatal("nonce from the future accepted")
	case other.Valid(v, testNow):
		t.Fatal("another key's nonce accepted")
	case n.Valid(v[:len(v)-1]+"A", testNow) && !strings.HasSuffix(v, "A"):
		t.Fatal("tampered nonce accepted")
	case n.Valid("", testNow), n.Valid("!!", testNow):
		t.Fatal("garbage accepted")
	}
}

func TestReplayKeyNamespaced(t *testing.T) {
	if string(ReplayKey("a", "bc")) == string(ReplayKey("ab", "c")) {
		t.Fatal("replay keys collide")
	}
}

func FuzzVerify(f *testing.F) {
	key := ecKey(f)
	good, _ := Sign(key, "ES256", ProofRequest{Method: "POST", URL: testURL, AccessToken: "tok", IssuedAt: testNow})
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		h, _, perr := Parse(raw)
		p, err := Verify(raw, policy())
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("refusal not ErrInvalidProof: %v", err)
			}
			return
		}
		if perr != nil || h.Other || p.JKT == "" {
			t.Fatalf("accepted an unparsable proof: %v", perr)
		}
	})
}

func BenchmarkVerifyES256(b *testing.B) {
	key := ecKey(b)
	proof, _ := Sign(key, "ES256", ProofRequest{Method: "POST", URL: testURL, AccessToken: "tok", IssuedAt: testNow})
	p := policy()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(proof, p); err != nil {
			b.Fatal(err)
		}
	}
}
