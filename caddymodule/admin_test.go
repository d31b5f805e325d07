package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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

// newAdmin is the AdminAPI that Provision builds for app.
func newAdmin(app *App) *AdminAPI {
	h, err := newAdminHandler(app, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err) // only missing dependencies fail, and the app has them all
	}
	return &AdminAPI{h: h}
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

func TestAdminAPINotConfigured(t *testing.T) {
	srv := adminServer(t, &AdminAPI{appErr: caddy.ErrNotConfigured})
	st, body := adminDo(t, srv, "GET", "/mcp_auth/clients", "")
	if st != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("%d %s", st, body)
	}
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
	if a.h != nil || !errors.Is(a.appErr, caddy.ErrNotConfigured) {
		t.Fatalf("handler %v err %v", a.h, a.appErr)
	}
	if rs := a.Routes(); len(rs) != 1 || rs[0].Pattern != adminPrefix {
		t.Fatalf("routes: %+v", rs)
	}
	srv := adminServer(t, a)
	if st, body := adminDo(t, srv, "GET", "/mcp_auth/users", ""); st != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("%d %s", st, body)
	}
}

// TestAdminAPIAdapter: the route that Routes returns reaches the admin API
// of the app (its store, authorization server, login and keys), and a
// refusal reaches Caddy as a caddy.APIError value with the status and
// message of the admin API's error (the operator routes themselves are
// tested in internal/adminapi).
func TestAdminAPIAdapter(t *testing.T) {
	app := newTestApp(t)
	rs := newAdmin(app).Routes()
	if len(rs) != 1 || rs[0].Pattern != "/mcp_auth/" {
		t.Fatalf("routes: %+v", rs)
	}
	do := func(method, path, body string) (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		return w, rs[0].Handler.ServeHTTP(w, r)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"GET", "/mcp_auth/clients/nope", "", 404, "mcp_auth: client not found"},
		{"DELETE", "/mcp_auth/clients", "", 405, "mcp_auth: method DELETE not allowed (use GET)"},
		{"PUT", "/mcp_auth/users", "", 405, "mcp_auth: method PUT not allowed (use GET or POST)"},
		{"POST", "/mcp_auth/users", `{"email":`, 400, "mcp_auth: malformed JSON body: invalid JSON"},
		{"POST", "/mcp_auth/users", `{"email":"alice@example.com","password":"long-enough-passphrase"}`, 409, "mcp_auth: an account with that email already exists"},
		{"POST", "/mcp_auth/clients//revoke", "", 400, "mcp_auth: malformed path"},
		{"GET", "/mcp_auth/secrets", "", 404, "mcp_auth: not found"},
	} {
		w, err := do(c.method, c.path, c.body)
		// Caddy's admin endpoint asserts the value type, not errors.As.
		ae, ok := err.(caddy.APIError)
		if !ok || ae.HTTPStatus != c.status || ae.Err == nil || ae.Err.Error() != c.msg || ae.Message != "" {
			t.Errorf("%s %s: %#v, want caddy.APIError %d %q", c.method, c.path, err, c.status, c.msg)
		}
		if w.Body.Len() != 0 {
			t.Errorf("%s %s: a refusal wrote %q", c.method, c.path, w.Body.String())
		}
	}

	// Answers come from the app's own objects.
	addGrant(t, app, "g1", "cli-app", aliceID(t, app))
	if w, err := do("GET", "/mcp_auth/clients/cli-app", ""); err != nil || w.Code != 200 || !strings.Contains(w.Body.String(), `"active_grants": 1`) {
		t.Fatalf("show client: %v %d %s", err, w.Code, w.Body)
	}
	if w, err := do("GET", "/mcp_auth/users", ""); err != nil || !strings.Contains(w.Body.String(), testEmail) {
		t.Fatalf("users: %v %s", err, w.Body)
	}
	if w, err := do("POST", "/mcp_auth/keys/rotate", ""); err != nil || w.Code != 200 {
		t.Fatalf("rotate: %v %d %s", err, w.Code, w.Body)
	}
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(app.keys.JWKSJSON(), &jwks); err != nil || len(jwks.Keys) != 2 {
		t.Fatalf("the app's key set did not rotate: %s", app.keys.JWKSJSON())
	}
	if evs := auditTypes(t, app.store, "keys.rotated"); len(evs) != 1 || evs[0].Detail["by"] != "admin_api" {
		t.Fatalf("audit in the app's store: %+v", evs)
	}
}
