package resourceguard

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	pt, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(pt) - 1) / 2
	x, y := pt[1:1+size], pt[1+size:]
	crv := map[int]string{256: "P-256", 384: "P-384"}[k.Curve.Params().BitSize]
	return map[string]any{"kty": "EC", "crv": crv, "kid": kid, "use": "sig", "x": b64u(x), "y": b64u(y)}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64u(k)}
}

func rsaJWK(kid, alg string, k *rsa.PublicKey) map[string]any {
	m := map[string]any{"kty": "RSA", "kid": kid, "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

// testAS is an authorization server that serves metadata and a JWKS.
type testAS struct {
	srv       *httptest.Server
	mu        sync.Mutex
	keys      []map[string]any
	jwksHits  atomic.Int64
	metaHits  atomic.Int64
	down      atomic.Bool
	oidcOnly  bool
	issuerOut string        // issuer to publish ("" = the server's URL)
	gate      chan struct{} // when set, JWKS requests wait until it is closed
}

func newTestAS(t *testing.T, oidcOnly bool, keys ...map[string]any) *testAS {
	as := &testAS{keys: keys, oidcOnly: oidcOnly}
	mux := http.NewServeMux()
	meta := func(w http.ResponseWriter, r *http.Request) {
		as.metaHits.Add(1)
		if as.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		iss := as.issuerOut
		if iss == "" {
			iss = as.srv.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": as.srv.URL + "/jwks.json"})
	}
	if !oidcOnly {
		mux.HandleFunc("/.well-known/oauth-authorization-server", meta)
	}
	mux.HandleFunc("/.well-known/openid-configuration", meta)
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		as.jwksHits.Add(1)
		as.mu.Lock()
		gate := as.gate
		as.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if as.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		as.mu.Lock()
		defer as.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": as.keys})
	})
	as.srv = httptest.NewTLSServer(mux)
	t.Cleanup(as.srv.Close)
	return as
}

func (as *testAS) setKeys(keys ...map[string]any) {
	as.mu.Lock()
	as.keys = keys
	as.mu.Unlock()
}

func TestRemoteKeySource(t *testing.T) {
	loadKeys(t)
	as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey), map[string]any{"kty": "EC", "kid": "enc", "use": "enc"})
	clock := newClock()
	ctx := context.Background()
	src, err := NewRemoteKeySourceWithOptions(ctx, RemoteOptions{Issuer: as.srv.URL, Client: as.srv.Client(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if src.JWKSURL() != as.srv.URL+"/jwks.json" || as.jwksHits.Load() != 1 {
		t.Fatalf("jwks %q hits %d", src.JWKSURL(), as.jwksHits.Load())
	}
	g, err := New(Config{Resource: testResource, Issuer: as.srv.URL, Keys: src, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tokFor := func(alg, kid string, key any) string {
		c := goodClaims(clock.Now())
		c["iss"] = as.srv.URL
		return sign(t, alg, key, map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}, c)
	}
	check := func(tok string) int {
		_, c := g.Check(bearerReq("POST", testResource, tok))
		waitFetch(t, src) // background fetches started by the request
		if c == nil {
			return 200
		}
		return c.Status
	}

	t.Run("known key", func(t *testing.T) {
		if s := check(tokFor("ES256", "ec1", ecKey)); s != 200 {
			t.Fatalf("status %d", s)
		}
	})
	t.Run("encryption key not usable", func(t *testing.T) {
		if _, _, err := src.PublicKey(ctx, "enc"); err == nil {
			t.Fatal("enc key returned")
		}
	})
	t.Run("unknown kid refetch at most once per minute", func(t *testing.T) {
		hits := as.jwksHits.Load()
		for range 5 {
			if s := check(tokFor("ES256", "nope", ecKey)); s != 401 {
				t.Fatalf("status %d", s)
			}
		}
		if as.jwksHits.Load() != hits {
			t.Fatalf("JWKS fetched %d times within a minute of the last fetch", as.jwksHits.Load()-hits)
		}
		clock.Advance(59 * time.Second)
		check(tokFor("ES256", "nope", ecKey))
		if as.jwksHits.Load() != hits {
			t.Fatal("JWKS fetched before a minute passed")
		}
		clock.Advance(2 * time.Second)
		for range 5 {
			check(tokFor("ES256", "nope", ecKey))
		}
		if n := as.jwksHits.Load() - hits; n != 1 {
			t.Fatalf("JWKS fetched %d times after a minute, want 1", n)
		}
	})
	t.Run("rotation picked up on unknown kid", func(t *testing.T) {
		gen := src.Generation()
		as.setKeys(ecJWK("ec1", &ecKey.PublicKey), ecJWK("ec2", &ecKey2.PublicKey), edJWK("ed1", edKey.Public().(ed25519.PublicKey)))
		clock.Advance(61 * time.Second)
		// The request that meets the new kid waits (briefly) for the refetch
		// it started, so the first token signed with the new key passes.
		if s := check(tokFor("ES256", "ec2", ecKey2)); s != 200 {
			t.Fatalf("status %d", s)
		}
		if s := check(tokFor("ES256", "ec2", ecKey2)); s != 200 {
			t.Fatalf("status %d", s)
		}
		if s := check(tokFor("EdDSA", "ed1", edKey)); s != 200 {
			t.Fatalf("EdDSA status %d", s)
		}
		if src.Generation() == gen {
			t.Fatal("generation unchanged after rotation")
		}
	})
	t.Run("same keys keep the generation", func(t *testing.T) {
		gen := src.Generation()
		clock.Advance(61 * time.Second)
		if !src.Refresh(ctx) || src.Generation() != gen {
			t.Fatalf("refresh changed generation %d -> %d", gen, src.Generation())
		}
	})
	t.Run("stale set refreshed in the background", func(t *testing.T) {
		hits := as.jwksHits.Load()
		clock.Advance(14 * time.Minute)
		check(tokFor("ES256", "ec1", ecKey))
		if as.jwksHits.Load() != hits {
			t.Fatal("fetched before MaxAge")
		}
		clock.Advance(2 * time.Minute)
		if s := check(tokFor("ES256", "ec1", ecKey)); s != 200 {
			t.Fatalf("status %d", s)
		}
		if as.jwksHits.Load() != hits+1 {
			t.Fatalf("stale set: %d fetches, want 1", as.jwksHits.Load()-hits)
		}
	})
	t.Run("last good keys when the issuer is down", func(t *testing.T) {
		as.down.Store(true)
		clock.Advance(time.Hour) // stale: a background refresh is attempted and fails
		if s := check(tokFor("ES256", "ec1", ecKey)); s != 200 {
			t.Fatalf("status %d", s)
		}
		clock.Advance(61 * time.Second)
		if src.Refresh(ctx) {
			t.Fatal("refresh reported success while down")
		}
		if s := check(tokFor("ES256", "ec2", ecKey2)); s != 200 {
			t.Fatalf("status %d", s)
		}
		if s := check(tokFor("ES256", "nope", ecKey)); s != 401 {
			t.Fatalf("unknown kid while down: %d", s)
		}
		as.down.Store(false)
	})
	t.Run("removed key refused after refresh", func(t *testing.T) {
		as.setKeys(ecJWK("ec2", &ecKey2.PublicKey))
		clock.Advance(61 * time.Second)
		if !src.Refresh(ctx) {
			t.Fatal("refresh failed")
		}
		if s := check(tokFor("ES256", "ec1", ecKey)); s != 401 {
			t.Fatalf("removed key accepted: %d", s)
		}
	})
}

func TestRemoteDiscovery(t *testing.T) {
	loadKeys(t)
	ctx := context.Background()
	t.Run("OpenID configuration fallback", func(t *testing.T) {
		as := newTestAS(t, true, ecJWK("ec1", &ecKey.PublicKey))
		src, err := NewRemoteKeySource(ctx, as.srv.URL, as.srv.Client(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, alg, err := src.PublicKey(ctx, "ec1"); err != nil || alg != "ES256" {
			t.Fatalf("%q %v", alg, err)
		}
	})
	t.Run("issuer mismatch refused", func(t *testing.T) {
		as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
		as.issuerOut = "https://evil.example"
		if _, err := NewRemoteKeySource(ctx, as.srv.URL, as.srv.Client(), nil); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("issuer down at startup", func(t *testing.T) {
		as := newTestAS(t, false, ecJWK("ec1", &ecKey.PublicKey))
		as.down.Store(true)
		if _, err := NewRemoteKeySource(ctx, as.srv.URL, as.srv.Client(), nil); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("http jwks_uri refused for an https issuer", func(t *testing.T) {
		if err := checkFetchURL("http://as.example/jwks", "https://as.example"); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("a document of another issuer is skipped", func(t *testing.T) {
		// Moved from authserver's trusted-issuer discovery (one
		// implementation): the RFC 8414 document names another issuer, the
		// OpenID configuration the right one; an http jwks_uri is never used;
		// oversized documents and redirects to http are refused.
		var iss string
		mux := http.NewServeMux()
		mux.HandleFunc("/.well-known/oauth-authorization-server/tenant", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys"})
		})
		mux.HandleFunc("/tenant/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": iss + "/keys"})
		})
		mux.HandleFunc("/tenant/keys", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{ecJWK("ec1", &ecKey.PublicKey)}})
		})
		mux.HandleFunc("/big/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"issuer":"` + strings.Repeat("x", maxMetadataBytes) + `"}`))
		})
		mux.HandleFunc("/plain/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			u := "http://" + r.Host + "/plain/keys"
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://" + r.Host + "/plain", "jwks_uri": u})
		})
		mux.HandleFunc("/downgrade/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+r.Host+"/tenant/.well-known/openid-configuration", http.StatusFound)
		})
		srv := httptest.NewTLSServer(mux)
		defer srv.Close()
		iss = srv.URL + "/tenant"
		c := srv.Client()
		c.CheckRedirect = defaultHTTPClient().CheckRedirect
		jwks, md, err := discover(ctx, c, iss)
		if err != nil || jwks != iss+"/keys" || md["issuer"] != iss {
			t.Fatalf("%q %v %v", jwks, md, err)
		}
		for path, want := range map[string]string{"/big": "larger than", "/plain": "must be https",
			"/downgrade": "redirect from https to http refused", "/missing": "status 404"} {
			if u, _, err := discover(ctx, c, srv.URL+path); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: discovered %q (%v), want an error with %q", path, u, err, want)
			}
		}
	})
	t.Run("metadata URLs", func(t *testing.T) {
		urls, err := metadataURLs("https://as.example/tenant/")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"https://as.example/.well-known/oauth-authorization-server/tenant",
			"https://as.example/tenant/.well-known/openid-configuration",
			"https://as.example/.well-known/openid-configuration/tenant",
		}
		if strings.Join(urls, " ") != strings.Join(want, " ") {
			t.Fatalf("%q", urls)
		}
	})
}

func TestParseJWKS(t *testing.T) {
	loadKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384 := ec384Key
	offCurve := ecJWK("off", &ecKey.PublicKey)
	offCurve["y"] = offCurve["x"]
	cases := []struct {
		name    string
		key     map[string]any
		wantAlg string // "" = skipped
	}{
		{"EC P-256", ecJWK("k", &ecKey.PublicKey), "ES256"},
		{"EC P-384", ecJWK("k", &p384.PublicKey), "ES384"},
		{"Ed25519", edJWK("k", edKey.Public().(ed25519.PublicKey)), "EdDSA"},
		{"RSA default RS256", rsaJWK("k", "", &rsaKey.PublicKey), "RS256"},
		{"RSA PS256", rsaJWK("k", "PS256", &rsaKey.PublicKey), "PS256"},
		{"RSA with EC alg", rsaJWK("k", "ES256", &rsaKey.PublicKey), ""},
		{"RSA with HS256 alg", rsaJWK("k", "HS256", &rsaKey.PublicKey), ""},
		{"RSA 1024 bits", rsaJWK("k", "", &small.PublicKey), ""},
		{"EC off curve", offCurve, ""},
		{"no kid", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64u(edKey.Public().(ed25519.PublicKey))}, ""},
		{"encryption key", func() map[string]any { m := ecJWK("k", &ecKey.PublicKey); m["use"] = "enc"; return m }(), ""},
		{"private key published", func() map[string]any { m := ecJWK("k", &ecKey.PublicKey); m["d"] = "AAAA"; return m }(), ""},
		{"symmetric key", map[string]any{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}, ""},
		{"EC with P-384 alg on P-256", func() map[string]any { m := ecJWK("k", &ecKey.PublicKey); m["alg"] = "ES384"; return m }(), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, _, err := parseJWKS(mustJSON(map[string]any{"keys": []any{c.key}}), discardLogger())
			if c.wantAlg == "" {
				if err == nil {
					t.Fatalf("key accepted: %+v", keys)
				}
				return
			}
			if err != nil || keys["k"].alg != c.wantAlg {
				t.Fatalf("keys %+v err %v", keys, err)
			}
		})
	}
	t.Run("duplicate kid dropped", func(t *testing.T) {
		keys, _, err := parseJWKS(mustJSON(map[string]any{"keys": []any{
			ecJWK("dup", &ecKey.PublicKey), ecJWK("dup", &ecKey2.PublicKey), ecJWK("ok", &ecKey.PublicKey)}}), discardLogger())
		if err != nil || len(keys) != 1 || keys["ok"].key == nil {
			t.Fatalf("keys %+v err %v", keys, err)
		}
	})
}
