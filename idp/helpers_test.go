package idp

import (
	"context"
	"crypto/sha256"
	"errors"
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
	"github.com/mcpauth/caddy-mcpauth/internal/abuse"
	"github.com/mcpauth/caddy-mcpauth/storage"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
)

// clock is an injectable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	aliceEmail = "alice@example.com"
	alicePW    = "wonderland rabbit hole"
	bobEmail   = "bob@example.com"
	bobPW      = "builder of many things"
)

// env is one hosted login behind a real TLS server, with a stand-in for the
// authorization server at /authorize (it calls the Browser methods exactly
// as authserver does) and a real bbolt store.
type env struct {
	t      *testing.T
	login  *Login
	store  *bboltstore.Store
	srv    *httptest.Server
	clock  *clock
	consen authserver.ConsentPage
	// refusals aggregates the login's unauthenticated refusals.
	refusals *abuse.Aggregator
	// clientCallback, when set, is where the stand-in authorization server
	// sends the browser (303) after consent or, with skip=1, right after
	// sign-in (an owned client that skips consent).
	clientCallback string
}

func openStore(t *testing.T) *bboltstore.Store {
	t.Helper()
	st, err := bboltstore.Open(filepath.Join(t.TempDir(), "db"), bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: openStore(t), clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}}
	e.consen = authserver.ConsentPage{
		Client:       storage.Client{ID: "https://app.example.net/client.json", Name: "Test App"},
		ClientIDHost: "app.example.net",
		RedirectHost: "127.0.0.1",
		Scopes:       []string{"openid", "mcp:tools", "offline_access", "custom:thing"},
		Resource:     "https://mcp.example.com/mcp",
		LoopbackOnly: true,
		Action:       "/authorize?client_id=x&state=s",
	}
	mux := http.NewServeMux()
	var login *Login
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		id, ok := login.Identify(r)
		if r.Method == http.MethodPost {
			if err := login.VerifyCSRF(r); err != nil {
				login.Error(w, r, http.StatusForbidden, "access_denied", "csrf")
				return
			}
			if !ok {
				login.Error(w, r, http.StatusUnauthorized, "login_required", "no session")
				return
			}
			if e.clientCallback != "" {
				http.Redirect(w, r, e.clientCallback+"?code=c0de&decision="+r.PostFormValue("decision"), http.StatusSeeOther)
				return
			}
			io.WriteString(w, "decision="+r.PostFormValue("decision")+" remember="+r.PostFormValue("remember")+" sub="+id.Subject)
			return
		}
		if !ok || r.URL.Query().Get("prompt") == "login" && !id.AuthTime.After(e.clock.Now().Add(-time.Second)) {
			login.Login(w, r, authserver.LoginRequest{ReturnTo: r.URL.RequestURI(), Client: storage.Client{Name: "Test App"},
				LoginHint: r.URL.Query().Get("login_hint"), ForceLogin: r.URL.Query().Get("prompt") == "login"})
			return
		}
		if id.MustVerifyEmail {
			login.VerifyEmail(w, r, authserver.LoginRequest{ReturnTo: r.URL.RequestURI(), Client: storage.Client{Name: "Test App"}})
			return
		}
		if r.URL.Query().Get("skip") == "1" && e.clientCallback != "" {
			http.Redirect(w, r, e.clientCallback+"?code=c0de&decision=skipped", http.StatusSeeOther)
			return
		}
		if r.URL.Query().Get("consent") == "1" {
			p := e.consen
			p.User = id
			login.Consent(w, r, p)
			return
		}
		io.WriteString(w, "hello "+id.Subject+" "+id.Email+" "+id.Method)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if login.Handles(r) {
			login.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	e.refusals = abuse.NewAggregator(abuse.AggregatorConfig{Store: e.store, Now: e.clock.Now})
	cfg := Config{
		Refusals:      e.refusals,
		PublicURL:     e.srv.URL,
		Store:         e.store,
		PasswordLogin: true,
		Branding:      Branding{ProductName: "Acme MCP", AccentColor: "#6d28d9", SupportURL: "https://support.example.com/"},
		SeedAccounts: []SeedAccount{
			{Email: aliceEmail, Name: "Alice", Password: alicePW},
			{Email: bobEmail, Name: "Bob", Password: bobPW},
		},
		Now:      e.clock.Now,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClientIP: func(r *http.Request) string { return cmpOr(r.Header.Get("X-Test-IP"), remoteIP(r)) },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	var err error
	login, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.login = login
	return e
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	e   *env
	c   *http.Client
	ip  string
	hdr http.Header
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := new(http.Client)
	*c = *e.srv.Client() // a copy: srv.Client() is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, c: c, hdr: http.Header{}}
}

type resp struct {
	status  int
	body    string
	header  http.Header
	cookies []*http.Cookie
}

func (b *browser) do(method, path string, form url.Values) resp {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.ip != "" {
		req.Header.Set("X-Test-IP", b.ip)
	}
	for k, v := range b.hdr {
		req.Header[k] = v
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(data), header: res.Header, cookies: res.Cookies()}
}

func (b *browser) get(path string) resp { return b.do(http.MethodGet, path, nil) }

func (b *browser) post(path string, form url.Values) resp { return b.do(http.MethodPost, path, form) }

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token in page:\n%s", body)
	}
	return m[1]
}

// login signs b in with the password form and returns the final response.
func (b *browser) login(email, pw, returnTo string) resp {
	b.e.t.Helper()
	page := b.get("/login?prompt=login")
	return b.post("/login", url.Values{"csrf_token": {csrfOf(b.e.t, page.body)}, "email": {email}, "password": {pw}, "return_to": {returnTo}, "step": {"password"}})
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func findCookie(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func sessionHashOf(t *testing.T, value string) []byte {
	t.Helper()
	id, err := b64url.DecodeString(value)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(id)
	return h[:]
}

func (e *env) auditTypes(typ string) []storage.AuditEvent {
	e.t.Helper()
	if err := e.refusals.Flush(context.Background(), true); err != nil {
		e.t.Fatal(err)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditQuery{Type: typ, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) account(email string) storage.Account {
	e.t.Helper()
	a, err := e.store.GetAccountByEmail(context.Background(), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
