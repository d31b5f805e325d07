package authserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// testSigner is a client's private key with its kid.
type testSigner struct {
	kid string
	alg string
	key crypto.Signer
}

var (
	testRSAOnce sync.Once
	testRSAKey  *rsa.PrivateKey
)

func rsaTestKey(t testing.TB) *rsa.PrivateKey {
	testRSAOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testRSAKey = k
	})
	return testRSAKey
}

func newSigner(t testing.TB, alg, kid string) testSigner {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "RS256", "PS256":
		k = rsaTestKey(t)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testSigner{kid: kid, alg: alg, key: k}
}

// jwksOf renders the public JWK set of signers.
func jwksOf(t testing.TB, signers ...testSigner) []byte {
	t.Helper()
	var keys []json.RawMessage
	for _, s := range signers {
		k, err := jwk.FromRaw(s.key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if s.kid != "" {
			_ = k.Set(jwk.KeyIDKey, s.kid)
		}
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, b)
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// sign signs claims as a compact JWS with extra protected headers.
func (s testSigner) sign(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if s.kid != "" {
		_ = h.Set(jws.KeyIDKey, s.kid)
	}
	for k, v := range hdr {
		_ = h.Set(k, v)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(s.alg), s.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// rawJWS builds a compact JWS from a header and claims, signed with HMAC
// when secret is set, else with the given signature bytes.
func rawJWS(hdr, claims map[string]any, secret []byte, sig string) string {
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	if secret != nil {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		sig = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return input + "." + sig
}

const (
	assertClient = "https://client.example/oauth/client.json"
	assertAS     = "https://as.example"
	assertTokenE = "https://as.example/token"
)

func openReplayStore(t testing.TB) *bboltstore.Store {
	t.Helper()
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestVerifyAssertion: every refusal names its reason, matches
// ErrAssertion, and changes nothing (the jti of a refused assertion stays
// usable by a good one).
func TestVerifyAssertion(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	es := newSigner(t, "ES256", "es")
	rs := newSigner(t, "RS256", "rs")
	ps := testSigner{kid: "rs", alg: "PS256", key: rs.key}
	ed := newSigner(t, "EdDSA", "ed")
	es384 := newSigner(t, "ES384", "es384")
	other := newSigner(t, "ES256", "es") // same kid, another key
	keys, err := ParseJWKS(jwksOf(t, es, rs, ed, es384))
	if err != nil {
		t.Fatal(err)
	}
	st := openReplayStore(t)
	policy := func() AssertionPolicy {
		return AssertionPolicy{Issuer: assertClient, Subject: assertClient, Audiences: []string{assertAS, assertTokenE},
			Keys: StaticKeys(keys), Replays: st, Now: func() time.Time { return now }}
	}
	claims := func(jti string) map[string]any {
		return map[string]any{"iss": assertClient, "sub": assertClient, "aud": assertTokenE, "jti": jti,
			"exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
	}
	with := func(jti string, mod func(map[string]any)) map[string]any {
		c := claims(jti)
		mod(c)
		return c
	}

	for _, s := range []testSigner{es, rs, ps, ed, es384} {
		t.Run("accepts "+s.alg, func(t *testing.T) {
			c, err := VerifyAssertion(context.Background(), s.sign(t, claims("ok-"+s.alg), nil), policy())
			if err != nil || c.Issuer != assertClient || c.JTI != "ok-"+s.alg {
				t.Fatalf("%+v, %v", c, err)
			}
		})
	}
	t.Run("accepts the issuer as audience, in an array", func(t *testing.T) {
		a := es.sign(t, with("aud-array", func(c map[string]any) { c["aud"] = []string{"https://other.example", assertAS} }), nil)
		if _, err := VerifyAssertion(context.Background(), a, policy()); err != nil {
			t.Fatal(err)
		}
	})

	replayed := es.sign(t, claims("used-once"), nil)
	if _, err := VerifyAssertion(context.Background(), replayed, policy()); err != nil {
		t.Fatal(err)
	}
	hmacKey := []byte("the-public-key-bytes-as-a-secret")
	tests := []struct {
		name, jti, assertion, reason string
		pol                          func(*AssertionPolicy)
	}{
		{name: "replayed jti", jti: "", assertion: replayed, reason: "assertion replayed"},
		{name: "unknown kid", jti: "kid", assertion: testSigner{kid: "nope", alg: "ES256", key: es.key}.sign(t, claims("kid"), nil), reason: "unknown signing key"},
		{name: "no kid with several keys", jti: "nokid", assertion: testSigner{alg: "ES256", key: es.key}.sign(t, claims("nokid"), nil), reason: "unknown signing key"},
		{name: "wrong aud", jti: "aud", assertion: es.sign(t, with("aud", func(c map[string]any) { c["aud"] = "https://evil.example/token" }), nil), reason: "wrong audience"},
		{name: "no aud", jti: "noaud", assertion: es.sign(t, with("noaud", func(c map[string]any) { delete(c, "aud") }), nil), reason: "wrong audience"},
		{name: "expired", jti: "exp", assertion: es.sign(t, with("exp", func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), nil), reason: "expired"},
		{name: "exp too far ahead", jti: "far", assertion: es.sign(t, with("far", func(c map[string]any) { c["exp"] = now.Add(6 * time.Minute).Unix() }), nil), reason: "exp is too far ahead"},
		{name: "no exp", jti: "noexp", assertion: es.sign(t, with("noexp", func(c map[string]any) { delete(c, "exp") }), nil), reason: "exp is required"},
		{name: "nbf in the future", jti: "nbf", assertion: es.sign(t, with("nbf", func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }), nil), reason: "not valid yet"},
		{name: "iat in the future", jti: "iat", assertion: es.sign(t, with("iat", func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() }), nil), reason: "issued in the future"},
		{name: "no jti", jti: "", assertion: es.sign(t, with("", func(c map[string]any) { delete(c, "jti") }), nil), reason: "jti is required"},
		{name: "iss is not sub", jti: "isssub", assertion: es.sign(t, with("isssub", func(c map[string]any) { c["sub"] = "https://other.example/client.json" }), nil), reason: "wrong subject"},
		{name: "wrong iss", jti: "iss", assertion: es.sign(t, with("iss", func(c map[string]any) { c["iss"] = "https://other.example/client.json" }), nil), reason: "wrong issuer"},
		{name: "HMAC with the public key", jti: "hs", assertion: rawJWS(map[string]any{"alg": "HS256", "kid": "es"}, claims("hs"), hmacKey, ""), reason: "signing algorithm not allowed"},
		{name: "alg none", jti: "none", assertion: rawJWS(map[string]any{"alg": "none", "kid": "es"}, claims("none"), nil, "x"), reason: "signing algorithm not allowed"},
		{name: "alg none unsigned", jti: "none2", assertion: rawJWS(map[string]any{"alg": "none"}, claims("none2"), nil, ""), reason: "not a compact JWS"},
		{name: "bad signature", jti: "sig", assertion: other.sign(t, claims("sig"), nil), reason: "bad signature"},
		{name: "RSA key with an EC alg", jti: "kty", assertion: rawJWS(map[string]any{"alg": "ES256", "kid": "rs"}, claims("kty"), nil, "AAAA"), reason: "the key does not fit the algorithm"},
		{name: "crit header", jti: "crit", assertion: es.sign(t, claims("crit"), map[string]any{"crit": []string{"exp"}}), reason: "critical header parameters are not supported"},
		{name: "access token type", jti: "typ", assertion: es.sign(t, claims("typ"), map[string]any{"typ": "at+jwt"}), reason: "wrong JOSE type"},
		{name: "alg other than declared", jti: "declared", assertion: es.sign(t, claims("declared"), nil), reason: "signing algorithm not allowed",
			pol: func(p *AssertionPolicy) { p.Algs = []string{"RS256"} }},
		{name: "key from the header ignored", jti: "hdrkey", assertion: func() string {
			k, _ := jwk.FromRaw(other.key.Public())
			return testSigner{kid: "attacker", alg: "ES256", key: other.key}.sign(t, claims("hdrkey"), map[string]any{"jwk": k})
		}(), reason: "unknown signing key"},
		{name: "JSON serialization", jti: "json", assertion: `{"payload":"e30","signatures":[]}`, reason: "not a compact JWS"},
		{name: "too large", jti: "big", assertion: strings.Repeat("a", maxAssertionBytes+1), reason: "assertion too large"},
		{name: "duplicate claim", jti: "dup", assertion: func() string {
			a := es.sign(t, claims("dup"), nil)
			parts := strings.Split(a, ".")
			body, _ := base64.RawURLEncoding.DecodeString(parts[1])
			body = append([]byte(`{"iss":"https://other.example",`), body[1:]...)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(body) + "." + parts[2]
		}(), reason: "malformed claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := policy()
			if tc.pol != nil {
				tc.pol(&p)
			}
			_, err := VerifyAssertion(context.Background(), tc.assertion, p)
			var ae *AssertionError
			if !errors.Is(err, ErrAssertion) || !errors.As(err, &ae) || ae.Reason != tc.reason {
				t.Fatalf("error = %v, want reason %q", err, tc.reason)
			}
			if tc.jti != "" {
				// No state change: the jti was not recorded.
				if _, err := VerifyAssertion(context.Background(), es.sign(t, claims(tc.jti), nil), policy()); err != nil {
					t.Fatalf("the refusal used up the jti: %v", err)
				}
			}
		})
	}

	t.Run("jti usable again after expiry", func(t *testing.T) {
		a := es.sign(t, claims("again"), nil)
		if _, err := VerifyAssertion(context.Background(), a, policy()); err != nil {
			t.Fatal(err)
		}
		later := policy()
		later.Now = func() time.Time { return now.Add(2 * time.Minute) }
		c := claims("again")
		c["exp"] = now.Add(3 * time.Minute).Unix()
		if _, err := VerifyAssertion(context.Background(), es.sign(t, c, nil), later); err != nil {
			t.Fatalf("a jti was kept past its assertion's expiry: %v", err)
		}
	})
	t.Run("policy without replay store refused", func(t *testing.T) {
		p := policy()
		p.Replays = nil
		if _, err := VerifyAssertion(context.Background(), es.sign(t, claims("x"), nil), p); err == nil || errors.Is(err, ErrAssertion) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestParseJWKS: public signing keys only.
func TestParseJWKS(t *testing.T) {
	es := newSigner(t, "ES256", "es")
	good := jwksOf(t, es)
	if keys, err := ParseJWKS(good); err != nil || len(keys) != 1 || keys[0].KeyID != "es" {
		t.Fatalf("%v %v", keys, err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, raw := range map[string]string{
		"private key":    `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}`,
		"symmetric key":  `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		"not an object":  `[]`,
		"keys not array": `{"keys":{}}`,
		"no usable key":  `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","use":"enc"}]}`,
		"weak RSA":       string(jwksOf(t, testSigner{kid: "small", alg: "RS256", key: small})),
		"duplicate kid":  `{"keys":[` + strings.TrimSuffix(strings.TrimPrefix(string(good), `{"keys":[`), `]}`) + `,` + strings.TrimSuffix(strings.TrimPrefix(string(good), `{"keys":[`), `]}`) + `]}`,
		"too large":      `{"keys":[],"x":"` + strings.Repeat("a", MaxJWKSBytes) + `"}`,
		"duplicate keys": `{"keys":[],"keys":[]}`,
	} {
		if _, err := ParseJWKS([]byte(raw)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseAssertion(f *testing.F) {
	es := newSigner(f, "ES256", "es")
	now := time.Unix(1_800_000_000, 0)
	f.Add(es.sign(f, map[string]any{"iss": "a", "sub": "a", "aud": "b", "jti": "j", "exp": now.Unix()}, nil))
	f.Add(rawJWS(map[string]any{"alg": "none"}, map[string]any{"iss": "a"}, nil, "x"))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJleHAiOiIxIn0.x")
	keys, err := ParseJWKS(jwksOf(f, es))
	if err != nil {
		f.Fatal(err)
	}
	st := openReplayStore(f)
	f.Fuzz(func(t *testing.T, raw string) {
		hdr, claims, err := ParseAssertion(raw)
		if err != nil {
			if !errors.Is(err, ErrAssertion) {
				t.Fatalf("parse error does not match ErrAssertion: %v", err)
			}
			return
		}
		if len(raw) > maxAssertionBytes || strings.Count(raw, ".") != 2 || claims == nil {
			t.Fatalf("accepted %q (%+v)", raw, hdr)
		}
		// Verification of fuzzed input never succeeds without our key.
		_, err = VerifyAssertion(context.Background(), raw, AssertionPolicy{Issuer: "a", Audiences: []string{"b"},
			Keys: StaticKeys(keys), Replays: st, Now: func() time.Time { return now.Add(-time.Minute) }})
		if err == nil && raw != "" {
			// Only a genuinely signed seed may pass.
			if _, verr := jws.Verify([]byte(raw), jws.WithKey(jwa.ES256, es.key.Public())); verr != nil {
				t.Fatalf("verified an assertion our key did not sign: %q", raw)
			}
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add(jwksOf(f, newSigner(f, "ES256", "a"), newSigner(f, "EdDSA", "b")))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		keys, err := ParseJWKS(raw)
		if err != nil {
			return
		}
		if len(raw) > MaxJWKSBytes || len(keys) == 0 || len(keys) > maxJWKSKeys {
			t.Fatalf("accepted %d keys from %d bytes", len(keys), len(raw))
		}
		for _, k := range keys {
			switch pub := k.Key.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < 2048 { // jwsalg.MinRSABits, written out: the test is its own oracle
					t.Fatal("weak RSA key accepted")
				}
			case *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("key type %T accepted", k.Key)
			}
		}
		for _, m := range secretJWKMembers {
			if strings.Contains(string(raw), `"`+m+`"`) {
				var top struct {
					Keys []map[string]json.RawMessage `json:"keys"`
				}
				if json.Unmarshal(raw, &top) == nil {
					for _, k := range top.Keys {
						if _, ok := k[m]; ok {
							t.Fatalf("a key with %q accepted", m)
						}
					}
				}
			}
		}
	})
}

var _ storage.Replays = (*bboltstore.Store)(nil)
