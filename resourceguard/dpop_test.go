package resourceguard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/internal/dpop"
)

type dpopClient struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newDPoPClient(t testing.TB) *dpopClient {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{key: k, jkt: jkt}
}

func (c *dpopClient) proof(t testing.TB, req dpop.ProofRequest) string {
	t.Helper()
	p, err := dpop.Sign(c.key, "ES256", req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// boundToken is a token of the fixture bound to c's key.
func (f *fixture) boundToken(c *dpopClient) string {
	return f.token(func(_, cl map[string]any) { cl["cnf"] = map[string]any{"jkt": c.jkt} })
}

func dpopReq(method, target, tok string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("Authorization", "DPoP "+tok)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// challenges returns the schemes of the WWW-Authenticate fields and their params.
func challenges(t *testing.T, w *httptest.ResponseRecorder) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, v := range w.Header().Values("WWW-Authenticate") {
		scheme, params, err := parseChallenge(v)
		if err != nil {
			t.Fatalf("challenge %q: %v", v, err)
		}
		out[scheme] = params
	}
	return out
}

func TestDPoPGuard(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DPoP = &DPoPConfig{} })
	cl := newDPoPClient(t)
	tok := f.boundToken(cl)
	now := f.clock.Now()
	good := func(mod ...func(*dpop.ProofRequest)) string {
		req := dpop.ProofRequest{Method: "POST", URL: testResource, AccessToken: tok, IssuedAt: now}
		for _, m := range mod {
			m(&req)
		}
		return cl.proof(t, req)
	}
	used := good()
	if w := f.do(dpopReq("POST", testResource, tok, used)); w.Code != 200 {
		t.Fatalf("bound token with a good proof: %d %s %v", w.Code, w.Body, w.Header().Values("WWW-Authenticate"))
	}
	if got := f.seen[len(f.seen)-1]; got.Header.Get("Authorization") != "" || got.Header.Get("X-Auth-Subject") != "user-123" {
		t.Fatal("upstream got the client's credentials or no identity")
	}
	// The proof may carry a query that the htu ignores, and the scheme
	// and host in another case.
	if w := f.do(dpopReq("POST", testResource+"?x=1", tok, good(func(r *dpop.ProofRequest) { r.URL = strings.ToUpper(testResource[:8]) + testResource[8:] }))); w.Code != 200 {
		t.Fatalf("normalized htu: %d %s", w.Code, w.Body)
	}
	other := newDPoPClient(t)
	tests := []struct {
		name  string
		req   *http.Request
		code  string // error on the challenge
		dpopC bool   // the error is on the DPoP challenge
	}{
		{"bound token as bearer", bearerReq("POST", testResource, tok), ErrorInvalidToken, false},
		{"replayed proof", dpopReq("POST", testResource, tok, used), ErrorInvalidDPoPProof, true},
		{"no proof", dpopReq("POST", testResource, tok), ErrorInvalidDPoPProof, true},
		{"two proofs", dpopReq("POST", testResource, tok, good(), good()), ErrorInvalidDPoPProof, true},
		{"proof for another method", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.Method = "GET" })), ErrorInvalidDPoPProof, true},
		{"proof for another URL", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.URL = "https://mcp.example.com/other" })), ErrorInvalidDPoPProof, true},
		{"proof for another host", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.URL = "https://evil.example.com/mcp" })), ErrorInvalidDPoPProof, true},
		{"proof used on another path", dpopReq("POST", "https://mcp.example.com/mcp/x", tok, good()), ErrorInvalidDPoPProof, true},
		{"proof without ath", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.AccessToken = "" })), ErrorInvalidDPoPProof, true},
		{"ath of another token", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.AccessToken = "other" })), ErrorInvalidDPoPProof, true},
		{"proof too old", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.IssuedAt = now.Add(-6 * time.Minute) })), ErrorInvalidDPoPProof, true},
		{"proof from the future", dpopReq("POST", testResource, tok, good(func(r *dpop.ProofRequest) { r.IssuedAt = now.Add(2 * time.Minute) })), ErrorInvalidDPoPProof, true},
		{"proof of another key", dpopReq("POST", testResource, tok, other.proof(t, dpop.ProofRequest{Method: "POST", URL: testResource, AccessToken: tok, IssuedAt: now})), ErrorInvalidDPoPProof, true},
		{"unbound token with DPoP", dpopReq("POST", testResource, f.token(nil), good()), ErrorInvalidToken, true},
		{"bad token with DPoP", dpopReq("POST", testResource, "x.y.z", good()), ErrorInvalidToken, true},
		{"malformed DPoP credentials", dpopReq("POST", testResource, "a b", good()), ErrorInvalidToken, true},
		{"cnf without jkt", bearerReq("POST", testResource, f.token(func(_, c map[string]any) { c["cnf"] = map[string]any{"x5t#S256": "abc"} })), ErrorInvalidToken, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.reached.Load()
			w := f.do(tc.req)
			if w.Code != http.StatusUnauthorized || f.reached.Load() != before {
				t.Fatalf("status %d (upstream reached: %v), want 401", w.Code, f.reached.Load() != before)
			}
			ch := challenges(t, w)
			b, d := ch["Bearer"], ch["DPoP"]
			if b == nil || d == nil || d["algs"] != strings.Join(dpop.Algs, " ") || b["resource_metadata"] == "" {
				t.Fatalf("challenges %v", w.Header().Values("WWW-Authenticate"))
			}
			on, off := b, d
			if tc.dpopC {
				on, off = d, b
			}
			if on["error"] != tc.code || off["error"] != "" {
				t.Fatalf("challenges %v, want %s on the %v challenge", w.Header().Values("WWW-Authenticate"), tc.code, tc.dpopC)
			}
		})
	}
	// An unbound token as Bearer still works while DPoP is optional.
	if w := f.do(bearerReq("POST", testResource, f.token(nil))); w.Code != 200 {
		t.Fatalf("unbound bearer: %d", w.Code)
	}
	// The cache holds the token, never the proof: a fresh proof passes, the
	// same proof again does not, though the token is cached.
	p := good(func(r *dpop.ProofRequest) { r.JTI = "cached-1" })
	if w := f.do(dpopReq("POST", testResource, tok, p)); w.Code != 200 {
		t.Fatalf("fresh proof: %d", w.Code)
	}
	if w := f.do(dpopReq("POST", testResource, tok, p)); w.Code != 401 {
		t.Fatalf("proof replay with a cached token: %d", w.Code)
	}
}

// Without DPoP configured, a bound token is still refused as a bearer
// token, and the DPoP scheme is another scheme (no challenge for it).
func TestDPoPBoundTokenRefusedWhenOff(t *testing.T) {
	f := newFixture(t, nil)
	cl := newDPoPClient(t)
	w := f.do(bearerReq("POST", testResource, f.boundToken(cl)))
	if w.Code != 401 || len(w.Header().Values("WWW-Authenticate")) != 1 || challenges(t, w)["Bearer"]["error"] != ErrorInvalidToken {
		t.Fatalf("%d %v", w.Code, w.Header().Values("WWW-Authenticate"))
	}
	var md map[string]any
	f.do(httptest.NewRequest("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", nil)).Body.WriteTo(&jsonSink{&md})
	if _, ok := md["dpop_signing_alg_values_supported"]; ok {
		t.Fatal("DPoP advertised while off")
	}
}

type jsonSink struct{ v *map[string]any }

func (s *jsonSink) Write(b []byte) (int, error) { return len(b), json.Unmarshal(b, s.v) }

func TestDPoPRequired(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DPoP = &DPoPConfig{Required: true, Algorithms: []string{"ES256"}} })
	w := f.do(bearerReq("POST", testResource, f.token(nil)))
	ch := challenges(t, w)
	if w.Code != 401 || ch["DPoP"]["error"] != ErrorInvalidToken || ch["DPoP"]["algs"] != "ES256" {
		t.Fatalf("unbound bearer under require_dpop: %d %v", w.Code, w.Header().Values("WWW-Authenticate"))
	}
	w = f.do(bearerReq("POST", testResource, ""))
	if ch := challenges(t, w); w.Code != 401 || ch["DPoP"] == nil || ch["Bearer"] == nil || ch["DPoP"]["error"] != "" {
		t.Fatalf("no token: %v", w.Header().Values("WWW-Authenticate"))
	}
	var md map[string]any
	f.do(httptest.NewRequest("GET", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", nil)).Body.WriteTo(&jsonSink{&md})
	if md["dpop_bound_access_tokens_required"] != true || len(md["dpop_signing_alg_values_supported"].([]any)) != 1 {
		t.Fatalf("PRM %v", md)
	}
	cl := newDPoPClient(t)
	tok := f.boundToken(cl)
	if w := f.do(dpopReq("GET", testResource, tok, cl.proof(t, dpop.ProofRequest{Method: "GET", URL: testResource, AccessToken: tok, IssuedAt: f.clock.Now()}))); w.Code != 200 {
		t.Fatalf("bound token: %d %s", w.Code, w.Body)
	}
}

func TestDPoPReplayStoreFailure(t *testing.T) {
	fail := ProofReplaysFunc(func(context.Context, []byte, time.Time, time.Time) (bool, error) { return false, errors.New("down") })
	f := newFixture(t, func(c *Config) { c.DPoP = &DPoPConfig{Replays: fail} })
	cl := newDPoPClient(t)
	tok := f.boundToken(cl)
	w := f.do(dpopReq("POST", testResource, tok, cl.proof(t, dpop.ProofRequest{Method: "POST", URL: testResource, AccessToken: tok, IssuedAt: f.clock.Now()})))
	if w.Code != http.StatusServiceUnavailable || f.reached.Load() != 0 {
		t.Fatalf("%d", w.Code)
	}
}

func TestMemoryReplays(t *testing.T) {
	m := NewMemoryReplays(3)
	now := time.Unix(1000, 0)
	ctx := context.Background()
	use := func(k string, until time.Time) bool {
		ok, err := m.FirstUse(ctx, []byte(k), until, now)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !use("a", now.Add(time.Minute)) || use("a", now.Add(time.Minute)) {
		t.Fatal("replay not detected")
	}
	use("b", now.Add(time.Minute))
	use("c", now.Add(time.Second))
	if _, err := m.FirstUse(ctx, []byte("d"), now.Add(time.Minute), now); err == nil {
		t.Fatal("full record accepted a new key")
	}
	now = now.Add(2 * time.Second) // c expired: room again
	if !use("d", now.Add(time.Minute)) {
		t.Fatal("expired entries not swept")
	}
}

func TestDPoPConfigRefusesSymmetric(t *testing.T) {
	if _, err := New(Config{Resource: testResource, Issuer: testIssuer, Keys: newMemKeys(t), DPoP: &DPoPConfig{Algorithms: []string{"HS256"}}}); err == nil {
		t.Fatal("HS256 accepted")
	}
}

// BenchmarkCheckDPoP is a cached DPoP-bound token with a proof per request
// (the replay record always answers "fresh", so one proof serves every
// iteration): the proof's signature check is the guard's cost.
func BenchmarkCheckDPoP(b *testing.B) {
	fresh := ProofReplaysFunc(func(context.Context, []byte, time.Time, time.Time) (bool, error) { return true, nil })
	f := newFixture(b, func(c *Config) { c.DPoP = &DPoPConfig{Replays: fresh} })
	cl := newDPoPClient(b)
	tok := f.boundToken(cl)
	r := dpopReq("POST", testResource, tok, cl.proof(b, dpop.ProofRequest{Method: "POST", URL: testResource, AccessToken: tok, IssuedAt: f.clock.Now()}))
	if _, c := f.g.Check(r); c != nil {
		b.Fatal(c)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, c := f.g.Check(r); c != nil {
			b.Fatal(c)
		}
	}
}
