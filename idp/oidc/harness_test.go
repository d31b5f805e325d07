package oidc_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/internal/testop"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"golang.org/x/oauth2"
)

const (
	appClient   = "app"
	appRedirect = "http://127.0.0.1/callback"
	resourceURL = "https://mcp.example.com/mcp"
)

type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *clock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d = d
}

// env is the whole stack on loopback: a real OpenID Provider (fosite), and
// our server (hosted login + authorization server) behind a TLS listener
// with a real bbolt store.
type env struct {
	t     *testing.T
	store *bboltstore.Store
	srv   *httptest.Server
	op    *testop.OP
	login *idp.Login
	as    *authserver.Server
	prov  *oidc.Provider
	rpClk *clock // the relying party's clock (id token expiry)

	mu     sync.Mutex
	events []storage.AuditEvent
}

func newEnv(t *testing.T, mutate func(*oidc.Config)) *env {
	t.Helper()
	return newEnvOP(t, nil, mutate)
}

// newEnvOP is newEnv with a change to the provider before our side
// discovers it.
func newEnvOP(t *testing.T, opMut func(*testop.OP), mutate func(*oidc.Config)) *env {
	t.Helper()
	e := &env{t: t, rpClk: &clock{}}
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case e.login.Handles(r):
			e.login.ServeHTTP(w, r)
		case e.as.Handles(r):
			e.as.ServeHTTP(w, r)
		case r.URL.Path == "/whoami":
			id, ok := e.login.Identify(r)
			if !ok {
				http.Error(w, "nobody", http.StatusUnauthorized)
				return
			}
			_ = json.NewEncoder(w).Encode(id)
		default:
			http.NotFound(w, r)
		}
	})
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	redirect := idp.ProviderBaseURL(e.srv.URL, "", "corp") + "/callback"
	e.op = testop.New(t, redirect)
	if opMut != nil {
		e.op.Set(opMut)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := oidc.Config{
		UpstreamConfig: idp.UpstreamConfig{Name: "corp", DisplayName: "Corp SSO"},
		Issuer:         e.op.Issuer,
		ClientID:       testop.ClientID,
		ClientSecret:   testop.ClientSecret,
		RedirectURL:    redirect,
		Store:          st,
		Now:            e.rpClk.Now,
		Logger:         logger,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e.prov, err = oidc.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.login, err = idp.New(context.Background(), idp.Config{
		PublicURL: e.srv.URL,
		Store:     st,
		Providers: []idp.Provider{e.prov},
		Logger:    logger,
		OnEvent: func(ev storage.AuditEvent) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.as, err = authserver.New(context.Background(), authserver.Config{
		Issuer:    e.srv.URL,
		Store:     st,
		Browser:   e.login,
		Scopes:    []string{"mcp:tools"},
		Resources: authserver.ResourcePolicy{Enabled: true, Known: []string{resourceURL}},
		Clients: []storage.Client{{ID: appClient, Name: "App", RedirectURIs: []string{appRedirect}, SkipConsent: true,
			TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"}}},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.as.Close() })
	return e
}

// failures returns the reasons of login.failure audit events so far.
func (e *env) failures() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		if ev.Type == "login.failure" {
			out = append(out, ev.Detail["reason"])
		}
	}
	return out
}

func (e *env) successes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.events {
		if ev.Type == "login.success" {
			n++
		}
	}
	return n
}

// browser keeps cookies, trusts our test TLS server and does not follow
// redirects (the tests follow them, to tamper on the way).
type browser struct {
	t *testing.T
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := new(http.Client)
	*c = *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: e.t, c: c}
}

type resp struct {
	status   int
	body     string
	location string
	cookies  []*http.Cookie
}

func (b *browser) do(method, u string, form url.Values) resp {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	loc := res.Header.Get("Location")
	if loc != "" {
		if lu, err := req.URL.Parse(loc); err == nil {
			loc = lu.String()
		}
	}
	return resp{status: res.StatusCode, body: string(data), location: loc, cookies: res.Cookies()}
}

func (b *browser) get(u string) resp { return b.do(http.MethodGet, u, nil) }

var (
	csrfRE     = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	returnToRE = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
)

// authorizeURL is a client's authorization request to our server.
func (e *env) authorizeURL(verifier string) string {
	return e.srv.URL + "/authorize?" + url.Values{
		"response_type":         {"code"},
		"client_id":             {appClient},
		"redirect_uri":          {appRedirect},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
		"state":                 {"client-state-123"},
		"scope":                 {"mcp:tools"},
		"resource":              {resourceURL},
	}.Encode()
}

// startUpstream opens the client's authorization request, clicks the
// provider button and returns the redirect to the provider.
func (e *env) startUpstream(b *browser, verifier string) string {
	e.t.Helper()
	page := b.get(e.authorizeURL(verifier))
	if page.status != http.StatusOK {
		e.t.Fatalf("authorize = %d\n%s", page.status, page.body)
	}
	csrf := csrfRE.FindStringSubmatch(page.body)
	rt := returnToRE.FindStringSubmatch(page.body)
	if csrf == nil || rt == nil || !strings.Contains(page.body, `action="/login/corp"`) {
		e.t.Fatalf("login page without the provider button:\n%s", page.body)
	}
	start := b.do(http.MethodPost, e.srv.URL+"/login/corp", url.Values{"csrf_token": {csrf[1]}, "return_to": {html.UnescapeString(rt[1])}})
	if start.status != http.StatusSeeOther || !strings.HasPrefix(start.location, e.op.Issuer+"/auth?") {
		e.t.Fatalf("provider start = %d %q\n%s", start.status, start.location, start.body)
	}
	return start.location
}

// atProvider follows the provider's authorization endpoint to the redirect
// back to our callback.
func (e *env) atProvider(b *browser, authURL string) string {
	e.t.Helper()
	r := b.get(authURL)
	if r.status/100 != 3 || !strings.HasPrefix(r.location, e.srv.URL+"/login/corp/callback?") {
		e.t.Fatalf("provider authorize = %d %q\n%s", r.status, r.location, r.body)
	}
	return r.location
}

// finish follows our redirects from the callback to the client's redirect
// URI, exchanges the code and returns the access token's claims.
func (e *env) finish(b *browser, callback, verifier string) *resourceguard.Principal {
	e.t.Helper()
	r := b.get(callback)
	for i := 0; i < 5 && r.status/100 == 3 && !strings.HasPrefix(r.location, appRedirect); i++ {
		r = b.get(r.location)
	}
	if !strings.HasPrefix(r.location, appRedirect+"?") {
		e.t.Fatalf("did not reach the client: %d %q\n%s", r.status, r.location, r.body)
	}
	cu, _ := url.Parse(r.location)
	if cu.Query().Get("state") != "client-state-123" || cu.Query().Get("code") == "" {
		e.t.Fatalf("client redirect %q", r.location)
	}
	tok := b.do(http.MethodPost, e.srv.URL+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {cu.Query().Get("code")}, "redirect_uri": {appRedirect},
		"client_id": {appClient}, "code_verifier": {verifier}, "resource": {resourceURL},
	})
	if tok.status != http.StatusOK {
		e.t.Fatalf("token = %d %s", tok.status, tok.body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(tok.body), &tr); err != nil || tr.AccessToken == "" {
		e.t.Fatalf("token response %s", tok.body)
	}
	// The token opens a guarded MCP server (the real resource guard).
	g, err := resourceguard.New(resourceguard.Config{Resource: resourceURL, Issuer: e.srv.URL, Keys: e.as.Keys(), RequireTyp: true, Scopes: []string{"mcp:tools"}})
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, resourceURL, nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	p, ch := g.Check(req)
	if ch != nil {
		e.t.Fatalf("guard refused the access token: %+v", ch)
	}
	return p
}

func (b *browser) whoami(e *env) (authserver.Identity, bool) {
	r := b.get(e.srv.URL + "/whoami")
	if r.status != http.StatusOK {
		return authserver.Identity{}, false
	}
	var id authserver.Identity
	if err := json.Unmarshal([]byte(r.body), &id); err != nil {
		e.t.Fatal(err)
	}
	return id, true
}

func hasSessionCookie(cs []*http.Cookie) bool {
	for _, c := range cs {
		if c.Name == idp.SessionCookie && c.MaxAge >= 0 && c.Value != "" {
			return true
		}
	}
	return false
}
