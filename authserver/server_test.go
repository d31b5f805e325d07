package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// Requirement 1: metadata at the RFC 8414 location, issuer exact, only what
// is served; no openid-configuration.
func TestMetadataAndRouting(t *testing.T) {
	h := newHarness(t)
	get := func(path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, h.issuer+path, nil)
		r.Header.Set("Origin", "http://localhost:6274")
		return h.serve(r)
	}
	w := get("/.well-known/oauth-authorization-server")
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("metadata: %d %v", w.Code, w.Header())
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer":                 h.issuer,
		"authorization_endpoint": h.issuer + "/authorize",
		"token_endpoint":         h.issuer + "/token",
		"revocation_endpoint":    h.issuer + "/revoke",
		"jwks_uri":               h.issuer + "/jwks.json",
	}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("%s = %v, want %s", k, m[k], v)
		}
	}
	if _, ok := m["registration_endpoint"]; ok {
		t.Fatal("registration_endpoint advertised while DCR is off")
	}
	if m["client_id_metadata_document_supported"] != true || m["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("metadata %v", m)
	}
	if sc, _ := json.Marshal(m["scopes_supported"]); string(sc) != `["read","write","offline_access"]` {
		t.Fatalf("scopes_supported %s", sc)
	}
	if !h.srv.Handles(httptest.NewRequest(http.MethodGet, "/token", nil)) || h.srv.Handles(httptest.NewRequest(http.MethodGet, "/mcp", nil)) {
		t.Fatal("Handles")
	}
	for _, p := range []string{"/.well-known/openid-configuration", "/mcp", "/authorize/x"} {
		if w := get(p); w.Code != 404 || oauthError(t, w) != "not_found" {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	// DCR is off: /register says so (TestRegisterWhenDCROff).
	if w := get("/register"); w.Code != 403 || oauthError(t, w) != oauth.CodeAccessDenied {
		t.Fatalf("/register with DCR off: %d %s", w.Code, w.Body)
	}
	if w := get("/jwks.json"); w.Code != 200 || !strings.Contains(w.Body.String(), `"keys"`) || strings.Contains(w.Body.String(), `"d"`) {
		t.Fatalf("jwks: %d %s", w.Code, w.Body)
	}
	if w := h.serve(httptest.NewRequest(http.MethodPost, h.issuer+"/.well-known/oauth-authorization-server", nil)); w.Code != 405 {
		t.Fatalf("POST metadata: %d", w.Code)
	}
	if h.srv.Metadata()["issuer"] != h.issuer {
		t.Fatal("Metadata()")
	}
}

func TestMetadataPathPrefixAndIssuerPath(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Issuer += "/tenant"
		c.PathPrefix = "/oauth/"
		c.Registration = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	})
	for _, p := range []string{"/.well-known/oauth-authorization-server/tenant", "/tenant/.well-known/oauth-authorization-server"} {
		w := h.serve(httptest.NewRequest(http.MethodGet, h.issuer+p, nil))
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		if w.Code != 200 || m["issuer"] != h.issuer+"/tenant" || m["token_endpoint"] != h.issuer+"/oauth/token" ||
			m["registration_endpoint"] != h.issuer+"/oauth/register" {
			t.Fatalf("%s: %d %v", p, w.Code, m)
		}
	}
	if w := h.serve(httptest.NewRequest(http.MethodGet, h.issuer+"/.well-known/oauth-authorization-server", nil)); w.Code != 404 {
		t.Fatalf("root metadata for an issuer with a path: %d", w.Code)
	}
	if w := h.post("/oauth/register", "{}"); w.Code != http.StatusCreated {
		t.Fatalf("register: %d", w.Code)
	}
	if w := h.post("/token", ""); w.Code != 404 {
		t.Fatalf("unprefixed token: %d", w.Code)
	}
	// Login and consent come back to the prefixed endpoint.
	q := h.authzQuery("dcr-1", "http://localhost:7777/cb")
	r := httptest.NewRequest(http.MethodGet, h.issuer+"/oauth/authorize?"+q.Encode(), nil)
	if w := h.serve(r); w.Header().Get("X-Test-Return") != "/oauth/authorize?"+q.Encode() {
		t.Fatalf("ReturnTo %q", w.Header().Get("X-Test-Return"))
	}
	r.AddCookie(&http.Cookie{Name: "test_user", Value: "alice"})
	if w := h.serve(r); w.Header().Get("X-Test-Action") != "/oauth/authorize?"+q.Encode() {
		t.Fatalf("Action %q", w.Header().Get("X-Test-Action"))
	}
	_, p := redirectParams(t, h.serve(func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, h.issuer+"/oauth/authorize?"+q.Encode(), strings.NewReader("csrf=csrf-alice&decision=approve"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(&http.Cookie{Name: "test_user", Value: "alice"})
		return r
	}()))
	if p.Get("iss") != h.issuer+"/tenant" || !p.Has("code") {
		t.Fatalf("callback %v", p)
	}
	f := h.exchangeForm("dcr-1", p.Get("code"), "http://localhost:7777/cb", testVerifier)
	if w := h.post("/oauth/token", f.Encode()); w.Code != 200 || h.claims(decodeToken(t, w).AccessToken)["iss"] != h.issuer+"/tenant" {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := func() Config {
		return Config{Issuer: "https://as.example.com", Store: st, Browser: &testBrowser{}, Scopes: []string{"read"}}
	}
	cases := []struct {
		name string
		mod  func(c *Config)
	}{
		{"no store", func(c *Config) { c.Store = nil }},
		{"no browser", func(c *Config) { c.Browser = nil }},
		{"http issuer", func(c *Config) { c.Issuer = "http://as.example.com" }},
		{"issuer with query", func(c *Config) { c.Issuer = "https://as.example.com?x=1" }},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://as.example.com#x" }},
		{"issuer with trailing slash", func(c *Config) { c.Issuer = "https://as.example.com/" }},
		{"relative issuer", func(c *Config) { c.Issuer = "/as" }},
		{"code ttl too long", func(c *Config) { c.CodeTTL = 11 * 60e9 }},
		{"bad prefix", func(c *Config) { c.PathPrefix = "oauth" }},
		{"default scope not offered", func(c *Config) { c.DefaultScopes = []string{"write"} }},
		{"client with bad redirect", func(c *Config) {
			c.Clients = []storage.Client{{ID: "x", RedirectURIs: []string{"http://evil.example.com/cb"}}}
		}},
		{"client with javascript redirect", func(c *Config) {
			c.Clients = []storage.Client{{ID: "x", RedirectURIs: []string{"javascript:alert(1)"}}}
		}},
		{"client with https id", func(c *Config) {
			c.Clients = []storage.Client{{ID: "https://x.example.com/m", RedirectURIs: []string{"https://x.example.com/cb"}}}
		}},
		{"client without redirect", func(c *Config) { c.Clients = []storage.Client{{ID: "x"}} }},
		{"client twice", func(c *Config) {
			c.Clients = []storage.Client{{ID: "x", RedirectURIs: []string{"https://x.example.com/cb"}}, {ID: "x", RedirectURIs: []string{"https://x.example.com/cb"}}}
		}},
		{"client scope not offered", func(c *Config) {
			c.Clients = []storage.Client{{ID: "x", RedirectURIs: []string{"https://x.example.com/cb"}, Scopes: []string{"admin"}}}
		}},
		{"confidential client with a bad hash", func(c *Config) {
			c.Clients = []storage.Client{{ID: "x", RedirectURIs: []string{"https://x.example.com/cb"}, TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic, SecretHash: "plain"}}
		}},
		{"client with unknown grant", func(c *Config) {
			c.Clients = []storage.Client{{ID: "x", RedirectURIs: []string{"https://x.example.com/cb"}, GrantTypes: []string{"implicit"}}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			if s, err := New(context.Background(), c); err == nil {
				s.Close()
				t.Fatal("accepted")
			} else if !strings.HasPrefix(err.Error(), "authserver: ") {
				t.Fatalf("error %q without package prefix", err)
			}
		})
	}
	t.Run("loopback http issuer and seeding", func(t *testing.T) {
		c := base()
		c.Issuer = "http://localhost:8080"
		c.Clients = []storage.Client{{ID: "seeded", RedirectURIs: []string{"http://localhost/cb", "vscode://x.y/cb"}}}
		s, err := New(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := st.GetClient(context.Background(), "seeded")
		if err != nil || got.Kind != storage.ClientOwned || got.TokenEndpointAuthMethod != oauth.AuthMethodNone || got.Fingerprint == "" || len(got.GrantTypes) != 2 {
			t.Fatalf("seeded %+v %v", got, err)
		}
		// An operator's disable survives a restart that seeds again.
		if err := st.SetClientDisabled(context.Background(), "seeded", true, got.CreatedAt); err != nil {
			t.Fatal(err)
		}
		s2, err := New(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if again, _ := st.GetClient(context.Background(), "seeded"); !again.Disabled || !again.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("reseeded %+v", again)
		}
	})
}

// Active and RevokeClient (the guard's revocation check, operator action).
func TestActiveAndRevokeClient(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	code := h.code("app", appRedirect)
	tok := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	sid := h.claims(tok.AccessToken)["sid"].(string)
	if ok, err := h.srv.Active(ctx, sid, "app"); !ok || err != nil {
		t.Fatalf("fresh grant inactive: %v", err)
	}
	if ok, _ := h.srv.Active(ctx, sid, "app2"); ok {
		t.Fatal("grant active for another client")
	}
	if ok, _ := h.srv.Active(ctx, "nope", "app"); ok {
		t.Fatal("unknown grant active")
	}
	if err := h.store.SetClientDisabled(ctx, "app", true, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.srv.Active(ctx, sid, "app"); ok {
		t.Fatal("grant of a disabled client active")
	}
	if w := h.token(refreshForm("app", tok.RefreshToken)); w.Code != 401 || oauthError(t, w) != oauth.CodeInvalidClient {
		t.Fatalf("disabled client refreshed: %d %s", w.Code, w.Body)
	}
	if err := h.store.SetClientDisabled(ctx, "app", false, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Revoke the client: every grant ends, remembered consents go.
	if err := h.store.PutConsent(ctx, storage.Consent{Subject: "alice", ClientID: "app", Scopes: []string{"read"}, Resource: testResource}); err != nil {
		t.Fatal(err)
	}
	n, err := h.srv.RevokeClient(ctx, "app")
	if err != nil || n != 1 {
		t.Fatalf("RevokeClient = %d, %v", n, err)
	}
	if ok, _ := h.srv.Active(ctx, sid, "app"); ok {
		t.Fatal("grant active after RevokeClient")
	}
	if _, err := h.store.GetConsent(ctx, "alice", "app"); err == nil {
		t.Fatal("consent kept after RevokeClient")
	}
	if w := h.token(refreshForm("app", tok.RefreshToken)); w.Code != 400 {
		t.Fatalf("refresh after RevokeClient: %d", w.Code)
	}
}

// RevokeSubject (password change): every grant of the user ends, others stay.
func TestRevokeSubject(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	alice := h.mustToken(h.exchangeForm("app", h.code("app", appRedirect), appRedirect, testVerifier))
	q := h.authzQuery("app", appRedirect)
	bob := h.mustToken(h.exchangeForm("app", h.codeFrom(h.authorize(q, "bob")), appRedirect, testVerifier))
	n, err := h.srv.RevokeSubject(ctx, "alice", "password_changed")
	if err != nil || n != 1 {
		t.Fatalf("RevokeSubject = %d, %v", n, err)
	}
	if w := h.token(refreshForm("app", alice.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
		t.Fatalf("alice refreshed: %d", w.Code)
	}
	h.mustToken(refreshForm("app", bob.RefreshToken))
	if _, err := h.srv.RevokeSubject(ctx, "", "x"); err == nil {
		t.Fatal("empty subject accepted")
	}
}

// Client secrets: argon2id PHC, constant-time comparison.
func TestClientSecretHash(t *testing.T) {
	hash, err := HashClientSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", hash)
	}
	if !verifyClientSecret(hash, testSecret) || verifyClientSecret(hash, testSecret+"x") || verifyClientSecret(hash, "") {
		t.Fatal("verify")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=1,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "$2a$10$abc", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		if verifyClientSecret(bad, testSecret) {
			t.Fatalf("accepted %q", bad)
		}
	}
	if _, err := HashClientSecret("short"); err == nil {
		t.Fatal("short secret accepted")
	}
}

// Audit: OnEvent sees every event; Close flushes the batch writer; an event
// after Close is still written (synchronously).
func TestAuditHookAndFlushOnClose(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, func(c *Config) {
		c.OnEvent = func(ev storage.AuditEvent) { mu.Lock(); seen = append(seen, ev.Type); mu.Unlock() }
		c.ClientIP = func(*http.Request) string { return "203.0.113.7" }
	})
	code := h.code("app", appRedirect)
	h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	evs, err := h.store.ListAudit(context.Background(), storage.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// token.issued is written with the grant, code.issued by the batch
	// writer at Close: with the test's frozen clock, append order decides.
	if len(evs) != 2 || evs[0].Type != "code.issued" || evs[1].Type != "token.issued" || evs[0].IP != "203.0.113.7" || evs[1].IP != "203.0.113.7" {
		t.Fatalf("events after Close: %+v", evs)
	}
	mu.Lock()
	if strings.Join(seen, ",") != "code.issued,token.issued" {
		t.Fatalf("OnEvent saw %v", seen)
	}
	mu.Unlock()
	if _, err := h.srv.RevokeClient(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if evs, _ := h.store.ListAudit(context.Background(), storage.AuditQuery{Type: "client.revoked"}); len(evs) != 1 {
		t.Fatalf("event after Close not written: %+v", evs)
	}
}

// Server.Active answers from a cache tied to the store's revocation
// generation: every revocation or client change written to the store, even
// directly (admin API, reuse detection inside the store), is seen at once.
func TestActiveCacheSeesEveryRevocation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tok := h.mustToken(h.exchangeForm("app", h.code("app", "http://127.0.0.1/callback"), "http://127.0.0.1/callback", testVerifier))
	sid, _ := h.claims(tok.AccessToken)["sid"].(string)
	active := func() bool {
		t.Helper()
		ok, err := h.srv.Active(ctx, sid, "app")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := 0; i < 3; i++ { // cached after the first call
		if !active() {
			t.Fatal("fresh grant not active")
		}
	}
	if err := h.store.SetClientDisabled(ctx, "app", true, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if active() {
		t.Fatal("still active after the client was disabled in the store")
	}
	if err := h.store.SetClientDisabled(ctx, "app", false, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if !active() {
		t.Fatal("not active after the client was enabled again")
	}
	if ok, _ := h.srv.Active(ctx, sid, "app2"); ok {
		t.Fatal("active for another client id")
	}
	if err := h.store.RevokeGrant(ctx, sid, "test", h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if active() {
		t.Fatal("still active after the grant was revoked in the store")
	}
}
