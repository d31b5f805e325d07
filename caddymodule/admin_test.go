package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/config"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

const (
	testIssuer   = "http://127.0.0.1:8443"
	testResource = "http://127.0.0.1:8443/mcp"
	testEmail    = "alice@example.com"
	testPassword = "correct-horse-battery-staple"
	testSecret   = "confidential-client-secret-value"
)

// newTestApp provisions and starts a real mcp_auth app on a bbolt file in a
// temp dir: an owned public client cli-app, a confidential client svc and
// the account alice@example.com.
func newTestApp(t *testing.T) *App {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	app := &App{App: config.App{
		Issuer:    testIssuer,
		Storage:   StorageConfig{Path: filepath.Join(t.TempDir(), "mcpauth.db")},
		Resources: []string{testResource},
		Scopes:    []string{"todo:read"},
		Clients: []ClientConfig{
			{ID: "cli-app", Name: "CLI App", RedirectURIs: []string{"http://127.0.0.1/callback"}, SkipConsent: true},
			{ID: "svc", RedirectURIs: []string{"https://svc.example/callback"}, Secret: testSecret},
		},
		Login: LoginConfig{Users: []UserConfig{{Email: testEmail, Password: testPassword, Name: "Alice"}}},
	}}
	if err := app.Provision(ctx); err != nil {
		cancel()
		t.Fatalf("provision: %v", err)
	}
	if err := app.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		_ = app.Stop()
		if s, err := app.Server(); err == nil {
			_ = s.Close()
		}
		_ = app.Cleanup()
		cancel()
	})
	return app
}

// adminServer serves the admin routes as Caddy's admin endpoint does
// (errors as {"error": ...} with their status).
func adminServer(t *testing.T, api *AdminAPI) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, adminPrefix) {
			http.NotFound(w, r)
			return
		}
		if err := api.serve(w, r); err != nil {
			var ae caddy.APIError
			if !errors.As(err, &ae) {
				ae = caddy.APIError{HTTPStatus: 500, Err: err}
			}
			if ae.Message == "" && ae.Err != nil {
				ae.Message = ae.Err.Error()
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ae.HTTPStatus)
			_ = json.NewEncoder(w).Encode(ae)
		}
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newAdmin(app *App) *AdminAPI {
	return &AdminAPI{app: app, log: caddy.Log(), now: time.Now}
}

func adminDo(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, srv.URL+path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func auditTypes(t *testing.T, st storage.Audit, typ string) []storage.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), storage.AuditQuery{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// aliceID returns the seeded account's id.
func aliceID(t *testing.T, app *App) string {
	t.Helper()
	a, err := app.store.GetAccountByEmail(context.Background(), testEmail)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// addGrant stores an active grant of clientID for subject.
func addGrant(t *testing.T, app *App, id, clientID, subject string) {
	t.Helper()
	now := time.Now()
	g := storage.Grant{ID: id, ClientID: clientID, Subject: subject, Scopes: []string{"todo:read"}, Resource: testResource,
		AuthTime: now, RefreshHash: testSHA(id), CreatedAt: now,
		RefreshExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(24 * time.Hour)}
	if err := app.store.CreateGrant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

func testSHA(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// secretsIn reports any password or secret material in an answer.
func secretsIn(body string) string {
	for _, s := range []string{"$argon2", "secret_hash", "password_hash", "private_jwk", testPassword, testSecret, `"d":`} {
		if strings.Contains(body, s) {
			return s
		}
	}
	return ""
}

func TestAdminAPIRoutes(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))

	cases := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"list clients", "GET", "/mcp_auth/clients", "", 200, `"id": "cli-app"`},
		{"show client", "GET", "/mcp_auth/clients/cli-app", "", 200, `"active_grants": 0`},
		{"confidential client shows no hash", "GET", "/mcp_auth/clients/svc", "", 200, `"confidential": true`},
		{"unknown client", "GET", "/mcp_auth/clients/nope", "", 404, "client not found"},
		{"escaped CIMD id unknown", "GET", "/mcp_auth/clients/" + "https:%2F%2Fapp.example%2Fclient.json", "", 404, "client not found"},
		{"disable unknown client", "POST", "/mcp_auth/clients/nope/disable", "", 404, "client not found"},
		{"GET on an action", "GET", "/mcp_auth/clients/cli-app/disable", "", 405, "not allowed"},
		{"DELETE clients", "DELETE", "/mcp_auth/clients", "", 405, "not allowed"},
		{"unknown client action", "POST", "/mcp_auth/clients/cli-app/explode", "", 404, "unknown client action"},
		{"too deep", "GET", "/mcp_auth/clients/a/b/c", "", 404, "not found"},
		{"unknown collection", "GET", "/mcp_auth/secrets", "", 404, "not found"},
		{"list users", "GET", "/mcp_auth/users", "", 200, testEmail},
		{"unknown user action", "POST", "/mcp_auth/users/x/explode", "", 404, "unknown user action"},
		{"password of unknown user", "POST", "/mcp_auth/users/nope/password", `{"password":"another-long-passphrase"}`, 404, "user not found"},
		{"create user: malformed JSON", "POST", "/mcp_auth/users", `{"email":`, 400, "malformed JSON"},
		{"create user: unknown field", "POST", "/mcp_auth/users", `{"email":"b@example.com","password":"x","admin":true}`, 400, "unknown field"},
		{"create user: wrong type hides the value", "POST", "/mcp_auth/users", `{"email":"b@example.com","password":12345678901}`, 400, `password\" has the wrong type`},
		{"create user: trailing data", "POST", "/mcp_auth/users", `{"email":"b@example.com","password":"long-enough-passphrase"} {}`, 400, "trailing data"},
		{"create user: missing password", "POST", "/mcp_auth/users", `{"email":"b@example.com"}`, 400, "required"},
		{"create user: weak password", "POST", "/mcp_auth/users", `{"email":"b@example.com","password":"short"}`, 400, "at least 8"},
		{"create user: bad email", "POST", "/mcp_auth/users", `{"email":"not-an-email","password":"long-enough-passphrase"}`, 400, "not an email address"},
		{"create user: taken email", "POST", "/mcp_auth/users", `{"email":"ALICE@example.com","password":"long-enough-passphrase"}`, 409, "already exists"},
		{"create user: form body", "POST", "/mcp_auth/users", "", 400, "empty body"},
		{"audit: bad limit", "GET", "/mcp_auth/audit?limit=abc", "", 400, "limit"},
		{"audit: zero limit", "GET", "/mcp_auth/audit?limit=0", "", 400, "limit"},
		{"audit: huge limit", "GET", "/mcp_auth/audit?limit=100000", "", 400, "limit"},
		{"audit: bad since", "GET", "/mcp_auth/audit?since=yesterday", "", 400, "since"},
		{"audit: POST", "POST", "/mcp_auth/audit", "", 405, "not allowed"},
		{"keys: list", "GET", "/mcp_auth/keys", "", 200, `"alg": "ES256"`},
		{"keys: GET rotate", "GET", "/mcp_auth/keys/rotate", "", 405, "not allowed"},
		{"keys: unknown", "GET", "/mcp_auth/keys/x", "", 404, "not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(auditTypes(t, app.store, ""))
			accounts, _ := app.store.ListAccounts(context.Background())
			st, body := adminDo(t, srv, c.method, c.path, c.body)
			if st != c.status || !strings.Contains(body, c.contains) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", c.method, c.path, st, body, c.status, c.contains)
			}
			if s := secretsIn(body); s != "" {
				t.Fatalf("answer contains %q: %s", s, body)
			}
			if st >= 400 {
				// A refusal changes nothing.
				if after := len(auditTypes(t, app.store, "")); after != before {
					t.Errorf("refusal wrote %d audit events", after-before)
				}
				if now, _ := app.store.ListAccounts(context.Background()); len(now) != len(accounts) {
					t.Errorf("refusal changed the accounts")
				}
			}
		})
	}
	t.Run("create user: headers say json", func(t *testing.T) {
		req, _ := http.NewRequest("POST", srv.URL+"/mcp_auth/users", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 415 {
			t.Fatalf("status %d, want 415", resp.StatusCode)
		}
	})
}

func TestAdminAPINotConfigured(t *testing.T) {
	srv := adminServer(t, &AdminAPI{appErr: caddy.ErrNotConfigured, log: caddy.Log(), now: time.Now})
	st, body := adminDo(t, srv, "GET", "/mcp_auth/clients", "")
	if st != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("%d %s", st, body)
	}
}

func TestAdminAPIClientLifecycle(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))
	ctx := context.Background()
	as, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	sub := aliceID(t, app)
	addGrant(t, app, "g1", "cli-app", sub)
	addGrant(t, app, "g2", "cli-app", sub)
	addGrant(t, app, "g-svc", "svc", sub)

	if ok, _ := as.Active(ctx, "g1", "cli-app"); !ok {
		t.Fatal("grant not active before disable")
	}
	st, body := adminDo(t, srv, "POST", "/mcp_auth/clients/cli-app/disable", "")
	if st != 200 || !strings.Contains(body, `"disabled": true`) {
		t.Fatalf("disable: %d %s", st, body)
	}
	if ok, _ := as.Active(ctx, "g1", "cli-app"); ok {
		t.Fatal("grant of a disabled client still active")
	}
	if evs := auditTypes(t, app.store, "client.disabled"); len(evs) != 1 || evs[0].ClientID != "cli-app" || evs[0].Detail["by"] != "admin_api" {
		t.Fatalf("audit: %+v", evs)
	}
	st, body = adminDo(t, srv, "POST", "/mcp_auth/clients/cli-app/enable", "")
	if st != 200 || !strings.Contains(body, `"disabled": false`) {
		t.Fatalf("enable: %d %s", st, body)
	}
	if ok, _ := as.Active(ctx, "g1", "cli-app"); !ok {
		t.Fatal("grant not active after enable")
	}
	if st, body = adminDo(t, srv, "GET", "/mcp_auth/clients/cli-app", ""); !strings.Contains(body, `"active_grants": 2`) {
		t.Fatalf("show: %d %s", st, body)
	}

	st, body = adminDo(t, srv, "POST", "/mcp_auth/clients/cli-app/revoke", "")
	if st != 200 || !strings.Contains(body, `"grants_revoked": 2`) {
		t.Fatalf("revoke: %d %s", st, body)
	}
	for _, id := range []string{"g1", "g2"} {
		if ok, _ := as.Active(ctx, id, "cli-app"); ok {
			t.Fatalf("%s still active after revoke", id)
		}
	}
	if ok, _ := as.Active(ctx, "g-svc", "svc"); !ok {
		t.Fatal("revoking cli-app ended another client's grant")
	}
	// The authorization server writes client.revoked asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for len(auditTypes(t, app.store, "client.revoked")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no client.revoked audit event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminAPIUsers(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))
	ctx := context.Background()
	as, _ := app.Server()

	st, body := adminDo(t, srv, "POST", "/mcp_auth/users", `{"email":"Bob@Example.com","name":"Bob","password":"a-long-enough-passphrase"}`)
	if st != 201 || !strings.Contains(body, `"email": "bob@example.com"`) || !strings.Contains(body, `"has_password": true`) {
		t.Fatalf("create: %d %s", st, body)
	}
	if s := secretsIn(body); s != "" || strings.Contains(body, "a-long-enough-passphrase") {
		t.Fatalf("create answer leaks %q", s)
	}
	var created userView
	_ = json.Unmarshal([]byte(body), &created)
	if evs := auditTypes(t, app.store, "account.created"); len(evs) != 1 || evs[0].Subject != created.ID {
		t.Fatalf("audit: %+v", evs)
	}

	// Set password: sessions and grants end.
	addGrant(t, app, "gb", "cli-app", created.ID)
	if err := app.store.CreateSession(ctx, storage.Session{Hash: []byte("session-hash-of-bob-32-bytes-xxx"), AccountID: created.ID, CreatedAt: time.Now(), LastSeenAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before, _ := app.store.GetAccount(ctx, created.ID)
	st, body = adminDo(t, srv, "POST", "/mcp_auth/users/"+created.ID+"/password", `{"password":"short"}`)
	if st != 400 {
		t.Fatalf("weak password: %d %s", st, body)
	}
	if ok, _ := as.Active(ctx, "gb", "cli-app"); !ok {
		t.Fatal("a refused password change revoked grants")
	}
	st, body = adminDo(t, srv, "POST", "/mcp_auth/users/"+created.ID+"/password", `{"password":"another-long-passphrase"}`)
	if st != 200 || !strings.Contains(body, `"grants_revoked": 1`) {
		t.Fatalf("set password: %d %s", st, body)
	}
	after, _ := app.store.GetAccount(ctx, created.ID)
	if after.PasswordHash == before.PasswordHash {
		t.Fatal("password hash unchanged")
	}
	if ok, _ := as.Active(ctx, "gb", "cli-app"); ok {
		t.Fatal("grant survived a password change")
	}
	if _, err := app.store.GetSession(ctx, []byte("session-hash-of-bob-32-bytes-xxx")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("session survived a password change: %v", err)
	}
	if evs := auditTypes(t, app.store, "account.password_changed"); len(evs) != 1 {
		t.Fatalf("audit: %+v", evs)
	}

	// Disable, enable.
	addGrant(t, app, "gb2", "cli-app", created.ID)
	st, body = adminDo(t, srv, "POST", "/mcp_auth/users/"+created.ID+"/disable", "")
	if st != 200 || !strings.Contains(body, `"grants_revoked": 1`) {
		t.Fatalf("disable: %d %s", st, body)
	}
	if a, _ := app.store.GetAccount(ctx, created.ID); !a.Disabled {
		t.Fatal("not disabled")
	}
	if st, body = adminDo(t, srv, "POST", "/mcp_auth/users/"+created.ID+"/enable", ""); st != 200 {
		t.Fatalf("enable: %d %s", st, body)
	}
	if a, _ := app.store.GetAccount(ctx, created.ID); a.Disabled {
		t.Fatal("still disabled")
	}

	// Revoke sessions (and grants).
	addGrant(t, app, "gb3", "cli-app", created.ID)
	st, body = adminDo(t, srv, "POST", "/mcp_auth/users/"+created.ID+"/revoke-sessions", "")
	if st != 200 || !strings.Contains(body, `"grants_revoked": 1`) || !strings.Contains(body, `"sessions_revoked": 0`) {
		t.Fatalf("revoke-sessions: %d %s", st, body)
	}

	st, body = adminDo(t, srv, "GET", "/mcp_auth/users", "")
	if st != 200 || !strings.Contains(body, "bob@example.com") || secretsIn(body) != "" {
		t.Fatalf("list: %d %s", st, body)
	}
}

func TestAdminAPIAuditAndKeys(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	if err := app.store.AppendAudit(ctx,
		storage.AuditEvent{Time: old, Type: "login.failure", Outcome: "failure"},
		storage.AuditEvent{Time: time.Now(), Type: "token.issued", Outcome: "success", ClientID: "cli-app"},
		storage.AuditEvent{Time: time.Now(), Type: "token.refused", Outcome: "invalid_grant", ClientID: "other"},
	); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, query string
		want        []string
	}{
		{"type prefix", "?type=token.", []string{"token.refused", "token.issued"}},
		{"exact type", "?type=login.failure", []string{"login.failure"}},
		{"client", "?client_id=cli-app", []string{"token.issued"}},
		{"since duration", "?since=24h&type=token.", []string{"token.refused", "token.issued"}},
		{"since excludes old", "?since=24h&type=login.", nil},
		{"limit", "?limit=1&type=token.", []string{"token.refused"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body := adminDo(t, srv, "GET", "/mcp_auth/audit"+c.query, "")
			if st != 200 {
				t.Fatalf("%d %s", st, body)
			}
			var evs []storage.AuditEvent
			if err := json.Unmarshal([]byte(body), &evs); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.Type)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}

	t.Run("rotate", func(t *testing.T) {
		st, body := adminDo(t, srv, "GET", "/mcp_auth/keys", "")
		var before []keyView
		if err := json.Unmarshal([]byte(body), &before); err != nil || st != 200 || len(before) != 1 || !before[0].Active {
			t.Fatalf("keys before: %d %s", st, body)
		}
		st, body = adminDo(t, srv, "POST", "/mcp_auth/keys/rotate", "")
		if st != 200 || secretsIn(body) != "" {
			t.Fatalf("rotate: %d %s", st, body)
		}
		var after []keyView
		if err := json.Unmarshal([]byte(body), &after); err != nil || len(after) != 2 {
			t.Fatalf("keys after: %s", body)
		}
		// Pre-published: the new key is listed (and in the JWKS) but the
		// old one signs until the new one's activation.
		if after[0].Active || after[0].ID == before[0].ID || !after[0].ActivatesAt.After(time.Now()) ||
			after[1].ID != before[0].ID || !after[1].Active ||
			!after[1].RetiredAt.Equal(after[0].ActivatesAt) || !after[1].PublishUntil.After(after[0].ActivatesAt) {
			t.Fatalf("rotation result: %+v", after)
		}
		var jwks struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(app.keys.JWKSJSON(), &jwks); err != nil || len(jwks.Keys) != 2 {
			t.Fatalf("JWKS after rotation: %s", app.keys.JWKSJSON())
		}
		evs := auditTypes(t, app.store, "keys.rotated")
		if len(evs) != 1 || evs[0].Detail["kid"] != after[0].ID || evs[0].Detail["previous_kid"] != before[0].ID || evs[0].Detail["activates_at"] == "" {
			t.Fatalf("audit: %+v", evs)
		}

		// ?now=true: the new key signs at once.
		st, body = adminDo(t, srv, "POST", "/mcp_auth/keys/rotate?now=true", "")
		var now []keyView
		if err := json.Unmarshal([]byte(body), &now); err != nil || st != 200 || len(now) != 3 {
			t.Fatalf("rotate now: %d %s", st, body)
		}
		if !now[0].Active || !now[0].ActivatesAt.IsZero() || now[1].Active || now[2].Active {
			t.Fatalf("rotate now result: %+v", now)
		}
	})
}

func TestParseAdminRoute(t *testing.T) {
	cases := []struct {
		in   string
		want adminRoute
		err  bool
	}{
		{"/mcp_auth/clients", adminRoute{collection: "clients"}, false},
		{"/mcp_auth/clients/", adminRoute{collection: "clients"}, false},
		{"/mcp_auth/clients/a%2Fb/revoke", adminRoute{collection: "clients", id: "a/b", action: "revoke"}, false},
		{"/mcp_auth/clients//revoke", adminRoute{}, true},
		{"/mcp_auth/clients/%zz", adminRoute{}, true},
		{"/mcp_auth/a/b/c/d", adminRoute{}, true},
		{"/other", adminRoute{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseAdminRoute(c.in)
			if (err != nil) != c.err || got != c.want {
				t.Fatalf("parseAdminRoute(%q) = %+v, %v", c.in, got, err)
			}
		})
	}
}

func FuzzParseAdminRoute(f *testing.F) {
	for _, s := range []string{"/mcp_auth/clients/x/revoke", "/mcp_auth/", "/mcp_auth/users/%41/password", "/mcp_auth////"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt, err := parseAdminRoute(p)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, adminPrefix) {
			t.Fatalf("accepted %q outside the prefix", p)
		}
		if rt.action != "" && rt.id == "" {
			t.Fatalf("action without id: %+v", rt)
		}
	})
}

// TestAdminAPIProvisionWithoutApp: a config without mcp_auth still loads;
// the routes answer 404.
func TestAdminAPIProvisionWithoutApp(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := new(AdminAPI)
	if err := a.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if a.app != nil || !errors.Is(a.appErr, caddy.ErrNotConfigured) {
		t.Fatalf("app %v err %v", a.app, a.appErr)
	}
	if rs := a.Routes(); len(rs) != 1 || rs[0].Pattern != adminPrefix {
		t.Fatalf("routes: %+v", rs)
	}
	srv := adminServer(t, a)
	if st, body := adminDo(t, srv, "GET", "/mcp_auth/users", ""); st != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("%d %s", st, body)
	}
}

// TestAdminAPICIMDClient: a CIMD client (not in the store) can be disabled
// (its grants end at the guard), enabled and revoked by its URL.
func TestAdminAPICIMDClient(t *testing.T) {
	app := newTestApp(t)
	srv := adminServer(t, newAdmin(app))
	ctx := context.Background()
	as, _ := app.Server()
	const id = "https://app.example/oauth/client.json"
	esc := "https:%2F%2Fapp.example%2Foauth%2Fclient.json"
	addGrant(t, app, "gcimd", id, aliceID(t, app))
	if ok, _ := as.Active(ctx, "gcimd", id); !ok {
		t.Fatal("CIMD grant not active")
	}
	if st, body := adminDo(t, srv, "POST", "/mcp_auth/clients/"+esc+"/enable", ""); st != 404 {
		t.Fatalf("enable of an unknown CIMD client: %d %s", st, body)
	}
	if st, body := adminDo(t, srv, "POST", "/mcp_auth/clients/https:%2F%2F/disable", ""); st != 404 {
		t.Fatalf("disable of a malformed URL id: %d %s", st, body)
	}
	st, body := adminDo(t, srv, "POST", "/mcp_auth/clients/"+esc+"/disable", "")
	if st != 200 || !strings.Contains(body, `"kind": "cimd"`) || !strings.Contains(body, `"disabled": true`) {
		t.Fatalf("disable: %d %s", st, body)
	}
	if ok, _ := as.Active(ctx, "gcimd", id); ok {
		t.Fatal("grant of a disabled CIMD client still active")
	}
	if st, _ := adminDo(t, srv, "POST", "/mcp_auth/clients/"+esc+"/disable", ""); st != 200 {
		t.Fatalf("second disable: %d", st)
	}
	if st, _ := adminDo(t, srv, "POST", "/mcp_auth/clients/"+esc+"/enable", ""); st != 200 {
		t.Fatalf("enable: %d", st)
	}
	if ok, _ := as.Active(ctx, "gcimd", id); !ok {
		t.Fatal("grant not active after enable")
	}
	st, body = adminDo(t, srv, "POST", "/mcp_auth/clients/"+esc+"/revoke", "")
	if st != 200 || !strings.Contains(body, `"grants_revoked": 1`) {
		t.Fatalf("revoke: %d %s", st, body)
	}
}
