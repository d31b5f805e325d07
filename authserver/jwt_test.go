package authserver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

func TestMintAccessToken(t *testing.T) {
	ctx := context.Background()
	clock := newKeysTestClock()
	ks := newTestKeySet(t, openKeysTestStore(t), AlgES256, clock)
	iat := clock.Now()
	base := AccessToken{
		Issuer: "https://as.example", Subject: "acct-1", Audience: "https://mcp.example/mcp",
		ClientID: "client-1", GrantID: "grant-1", JTI: "jti-1", Email: "a@example.com",
		Scopes: []string{"mcp:read", "mcp:write"}, IssuedAt: iat, ExpiresAt: iat.Add(time.Hour), AuthTime: iat.Add(-time.Minute),
	}
	tok, err := ks.MintAccessToken(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	hdr, claims, _, _ := jwsParts(t, tok)
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" || hdr["kid"] == nil {
		t.Fatalf("header %v", hdr)
	}
	want := map[string]any{
		"iss": "https://as.example", "sub": "acct-1", "aud": "https://mcp.example/mcp",
		"exp": float64(iat.Add(time.Hour).Unix()), "iat": float64(iat.Unix()), "nbf": float64(iat.Unix()),
		"jti": "jti-1", "client_id": "client-1", "scope": "mcp:read mcp:write", "sid": "grant-1",
		"auth_time": float64(iat.Add(-time.Minute).Unix()), "email": "a@example.com", "email_verified": true,
	}
	if len(claims) != len(want) {
		t.Fatalf("claims %v, want %v", claims, want)
	}
	for k, v := range want {
		if claims[k] != v {
			t.Fatalf("claim %s = %v (%T), want %v", k, claims[k], claims[k], v)
		}
	}
	pub, alg, err := ks.PublicKey(ctx, hdr["kid"].(string))
	if err != nil || !verifyStdlib(t, tok, pub, alg) {
		t.Fatalf("does not verify: %v", err)
	}

	t.Run("optional claims omitted and jti generated", func(t *testing.T) {
		min := AccessToken{Issuer: base.Issuer, Subject: "s", Audience: base.Audience, ClientID: "c", IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}
		a, err := ks.MintAccessToken(ctx, min)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ks.MintAccessToken(ctx, min)
		_, ca, _, _ := jwsParts(t, a)
		_, cb, _, _ := jwsParts(t, b)
		for _, k := range []string{"scope", "sid", "auth_time", "email", "email_verified"} {
			if _, ok := ca[k]; ok {
				t.Fatalf("claim %s present", k)
			}
		}
		ja, _ := ca["jti"].(string)
		if len(ja) < 22 || ja == cb["jti"] {
			t.Fatalf("generated jti %q / %v", ja, cb["jti"])
		}
	})

	refused := map[string]func(*AccessToken){
		"no issuer":         func(a *AccessToken) { a.Issuer = "" },
		"no subject":        func(a *AccessToken) { a.Subject = "" },
		"no audience":       func(a *AccessToken) { a.Audience = "" },
		"no client":         func(a *AccessToken) { a.ClientID = "" },
		"no iat":            func(a *AccessToken) { a.IssuedAt = time.Time{} },
		"exp before iat":    func(a *AccessToken) { a.ExpiresAt = a.IssuedAt.Add(-time.Second) },
		"scope with space":  func(a *AccessToken) { a.Scopes = []string{"a b"} },
		"empty scope token": func(a *AccessToken) { a.Scopes = []string{""} },
	}
	for name, mutate := range refused {
		t.Run(name, func(t *testing.T) {
			a := base
			mutate(&a)
			if tok, err := ks.MintAccessToken(ctx, a); err == nil || tok != "" {
				t.Fatalf("minted %q", tok)
			}
		})
	}
}

func BenchmarkMintAccessToken(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			clock := newKeysTestClock()
			store, err := bboltstore.Open(filepath.Join(b.TempDir(), "bench.db"), bboltstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			ks, err := NewKeySet(context.Background(), store, KeyConfig{Algorithm: alg, Now: clock.Now, Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			iat := clock.Now()
			at := AccessToken{Issuer: "https://as.example", Subject: "s", Audience: "https://mcp.example/mcp", ClientID: "c",
				GrantID: "g", Scopes: []string{"mcp"}, IssuedAt: iat, ExpiresAt: iat.Add(time.Hour)}
			b.ResetTimer()
			for b.Loop() {
				if _, err := ks.MintAccessToken(context.Background(), at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
