package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
)

func newDPoPKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (h *harness) proof(key *ecdsa.PrivateKey, mod ...func(*dpop.ProofRequest)) string {
	h.t.Helper()
	req := dpop.ProofRequest{Method: http.MethodPost, URL: h.issuer + "/token", IssuedAt: h.clock.Now()}
	for _, m := range mod {
		m(&req)
	}
	p, err := dpop.Sign(key, "ES256", req)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func withProof(p ...string) func(*http.Request) {
	return func(r *http.Request) {
		for _, v := range p {
			r.Header.Add("DPoP", v)
		}
	}
}

func dpopHarness(t *testing.T, nonce bool) *harness {
	return newHarness(t, func(c *Config) { c.DPoP = &DPoPConfig{Nonce: nonce} })
}

func jktOf(t testing.TB, k *ecdsa.PrivateKey) string {
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return jkt
}

func cnfJKT(claims map[string]any) string {
	cnf, _ := claims["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

// Requirement 25: a proof at /token binds the access token (cnf.jkt,
// token_type DPoP) and, for a public client, the refresh token.
func TestDPoPTokenBinding(t *testing.T) {
	h := dpopHarness(t, false)
	key := newDPoPKey(t)
	code := h.code("app", "http://127.0.0.1/callback")
	w := h.token(h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier), withProof(h.proof(key)))
	tok := decodeToken(t, w)
	if w.Code != 200 || tok.TokenType != TokenTypeDPoP {
		t.Fatalf("exchange: %d %+v", w.Code, tok)
	}
	if got := cnfJKT(h.claims(tok.AccessToken)); got != jktOf(t, key) {
		t.Fatalf("cnf.jkt %q, want the proof key's thumbprint", got)
	}
	gs := h.grants()
	if len(gs) != 1 || gs[0].DPoPJKT != jktOf(t, key) {
		t.Fatalf("grant binding %+v", gs)
	}

	// The refresh needs a proof of the same key; without one, or with
	// another key, it is refused and the refresh token stays good.
	rf := refreshForm("app", tok.RefreshToken)
	for name, mod := range map[string]func(*http.Request){
		"no proof":    func(*http.Request) {},
		"another key": withProof(h.proof(newDPoPKey(t))),
	} {
		w := h.token(rf, mod)
		if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("%s: %d %s, want invalid_grant", name, w.Code, w.Body)
		}
	}
	w = h.token(rf, withProof(h.proof(key)))
	next := decodeToken(t, w)
	if w.Code != 200 || next.TokenType != TokenTypeDPoP || cnfJKT(h.claims(next.AccessToken)) != jktOf(t, key) {
		t.Fatalf("bound refresh: %d %s", w.Code, w.Body)
	}
	if g := h.grants()[0]; g.DPoPJKT != jktOf(t, key) {
		t.Fatal("the binding did not survive rotation")
	}
	if _, ok := refusalRecord(t, h, "token.refused", oauth.ReasonDPoPKeyMismatch); !ok {
		t.Fatal("key mismatch not audited")
	}
}

// A confidential client's refresh token is not bound (its authentication
// binds it); its access tokens are.
func TestDPoPConfidentialRefreshUnbound(t *testing.T) {
	h := dpopHarness(t, false)
	key := newDPoPKey(t)
	code := h.code("conf", "https://conf.example.com/cb")
	f := h.exchangeForm("conf", code, "https://conf.example.com/cb", testVerifier)
	f.Set("client_secret", testSecret)
	tok := decodeToken(t, h.token(f, withProof(h.proof(key))))
	if tok.TokenType != TokenTypeDPoP || h.grants()[0].DPoPJKT != "" {
		t.Fatalf("token %+v, grant %+v", tok, h.grants()[0])
	}
	rf := refreshForm("conf", tok.RefreshToken)
	rf.Set("client_secret", testSecret)
	w := h.token(rf)
	if next := decodeToken(t, w); w.Code != 200 || next.TokenType != "Bearer" {
		t.Fatalf("refresh without proof: %d %s", w.Code, w.Body)
	}
}

// Without a proof the token is a bearer token, and with DPoP off a proof
// is ignored; metadata advertises DPoP only when on.
func TestDPoPOptional(t *testing.T) {
	on := dpopHarness(t, false)
	code := on.code("app", "http://127.0.0.1/callback")
	tok := on.mustToken(on.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier))
	if tok.TokenType != "Bearer" || cnfJKT(on.claims(tok.AccessToken)) != "" || on.grants()[0].DPoPJKT != "" {
		t.Fatalf("unbound exchange: %+v", tok)
	}
	if algs, _ := on.srv.metadata["dpop_signing_alg_values_supported"].([]string); !slices.Equal(algs, dpop.Algs) {
		t.Fatalf("metadata algs %v", on.srv.metadata["dpop_signing_alg_values_supported"])
	}

	off := newHarness(t)
	if _, ok := off.srv.metadata["dpop_signing_alg_values_supported"]; ok {
		t.Fatal("DPoP advertised while off")
	}
	code = off.code("app", "http://127.0.0.1/callback")
	w := off.token(off.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier), withProof(off.proof(newDPoPKey(t))))
	if tok := decodeToken(t, w); w.Code != 200 || tok.TokenType != "Bearer" {
		t.Fatalf("DPoP off: %d %s", w.Code, w.Body)
	}
}

// Every bad proof is refused with invalid_dpop_proof, and the code stays
// redeemable (no state change on refusal).
func TestDPoPTokenRefusals(t *testing.T) {
	h := dpopHarness(t, false)
	key := newDPoPKey(t)
	replayed := h.proof(key)
	code0 := h.code("app", "http://127.0.0.1/callback")
	if w := h.token(h.exchangeForm("app", code0, "http://127.0.0.1/callback", testVerifier), withProof(replayed)); w.Code != 200 {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	tests := []struct {
		name   string
		proofs []string
	}{
		{"replayed jti", []string{replayed}},
		{"two headers", []string{h.proof(key), h.proof(key)}},
		{"garbage", []string{"not.a.proof"}},
		{"wrong method", []string{h.proof(key, func(r *dpop.ProofRequest) { r.Method = http.MethodGet })}},
		{"another URL", []string{h.proof(key, func(r *dpop.ProofRequest) { r.URL = h.issuer + "/revoke" })}},
		{"another host", []string{h.proof(key, func(r *dpop.ProofRequest) { r.URL = "https://evil.example/token" })}},
		{"too old", []string{h.proof(key, func(r *dpop.ProofRequest) { r.IssuedAt = h.clock.Now().Add(-10 * time.Minute) })}},
		{"from the future", []string{h.proof(key, func(r *dpop.ProofRequest) { r.IssuedAt = h.clock.Now().Add(5 * time.Minute) })}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code := h.code("app", "http://127.0.0.1/callback")
			f := h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier)
			w := h.token(f, withProof(tc.proofs...))
			if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidDPoPProof {
				t.Fatalf("%d %s, want 400 invalid_dpop_proof", w.Code, w.Body)
			}
			if w := h.token(f, withProof(h.proof(key))); w.Code != 200 {
				t.Fatalf("the code did not survive the refusal: %d %s", w.Code, w.Body)
			}
		})
	}
	if _, ok := refusalRecord(t, h, "token.refused", oauth.ReasonDPoPProofInvalid); !ok {
		t.Fatal("no refusal audited")
	}
}

// Server nonces (RFC 9449 §8): a proof without the nonce gets
// use_dpop_nonce and a DPoP-Nonce to retry with.
func TestDPoPNonce(t *testing.T) {
	h := dpopHarness(t, true)
	key := newDPoPKey(t)
	code := h.code("app", "http://127.0.0.1/callback")
	f := h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier)
	w := h.token(f, withProof(h.proof(key)))
	nonce := w.Header().Get("DPoP-Nonce")
	if w.Code != 400 || oauthError(t, w) != oauth.CodeUseDPoPNonce || nonce == "" {
		t.Fatalf("no nonce: %d %s nonce %q", w.Code, w.Body, nonce)
	}
	w = h.token(f, withProof(h.proof(key, func(r *dpop.ProofRequest) { r.Nonce = "made-up" })))
	if w.Code != 400 || oauthError(t, w) != oauth.CodeUseDPoPNonce {
		t.Fatalf("forged nonce: %d %s", w.Code, w.Body)
	}
	w = h.token(f, withProof(h.proof(key, func(r *dpop.ProofRequest) { r.Nonce = nonce })))
	if tok := decodeToken(t, w); w.Code != 200 || tok.TokenType != TokenTypeDPoP || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("with nonce: %d %s", w.Code, w.Body)
	}
	// A nonce goes stale.
	h.clock.Advance(5 * time.Minute)
	code = h.code("app", "http://127.0.0.1/callback")
	f = h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier)
	w = h.token(f, withProof(h.proof(key, func(r *dpop.ProofRequest) { r.Nonce = nonce })))
	if w.Code != 400 || oauthError(t, w) != oauth.CodeUseDPoPNonce {
		t.Fatalf("stale nonce: %d %s", w.Code, w.Body)
	}
}

func TestDPoPConfigRefusesSymmetric(t *testing.T) {
	st := newHarness(t).store
	_, err := New(t.Context(), Config{Issuer: "https://as.example.com", Store: st, Browser: &testBrowser{},
		DPoP: &DPoPConfig{Algorithms: []string{"HS256"}}})
	if err == nil {
		t.Fatal("HS256 accepted for DPoP")
	}
}
