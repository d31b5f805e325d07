package idp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

func TestCSRFOnEveryPost(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Signup.Mode = SignupOpen
		c.Providers = []Provider{&testProvider{name: "corp"}}
	})
	other := e.browser()
	otherTok := csrfOf(t, other.get("/login").body) // a valid token of another browser

	type post struct {
		name string
		path string
		form url.Values
		// signedIn runs the POST from a signed-in browser.
		signedIn bool
	}
	posts := []post{
		{"login", "/login", url.Values{"email": {aliceEmail}, "password": {alicePW}}, false},
		{"signup", "/signup", url.Values{"email": {"new@example.com"}, "password": {"a fine passphrase"}}, false},
		{"provider start", "/login/corp", url.Values{}, false},
		{"logout", "/logout", url.Values{}, true},
		{"consent", "/authorize?consent=1", url.Values{"decision": {"approve"}}, true},
	}
	tokens := []struct {
		name   string
		tok    func(b *browser) string
		origin string
	}{
		{"missing", func(*browser) string { return "" }, ""},
		{"wrong", func(*browser) string { return "p.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, ""},
		{"garbage", func(*browser) string { return "x" }, ""},
		{"session kind without session", func(*browser) string { return "s.AAAA" }, ""},
		{"other browser's token", func(*browser) string { return otherTok }, ""},
		{"cross origin", func(b *browser) string { return csrfOf(t, b.get("/login?prompt=login").body) }, "https://evil.example"},
	}
	for _, p := range posts {
		for _, tk := range tokens {
			t.Run(p.name+"/"+tk.name, func(t *testing.T) {
				b := e.browser()
				if p.signedIn {
					b.login(bobEmail, bobPW, "/")
				} else {
					b.get("/login") // gets a pre-session cookie of its own
				}
				accountsBefore, _ := e.store.ListAccounts(context.Background())
				form := url.Values{}
				for k, v := range p.form {
					form[k] = v
				}
				if tok := tk.tok(b); tok != "" {
					form.Set("csrf_token", tok)
				}
				if tk.origin != "" {
					b.hdr.Set("Origin", tk.origin)
				}
				res := b.post(p.path, form)
				if res.status != http.StatusForbidden {
					t.Fatalf("status %d, want 403\n%s", res.status, res.body)
				}
				if findCookie(res.cookies, SessionCookie) != nil {
					t.Fatal("a refused POST touched the session cookie")
				}
				accountsAfter, _ := e.store.ListAccounts(context.Background())
				if len(accountsAfter) != len(accountsBefore) {
					t.Fatal("a refused POST created an account")
				}
				if p.signedIn {
					b.hdr.Del("Origin")
					if !strings.HasPrefix(b.get("/authorize").body, "hello ") {
						t.Fatal("a refused POST ended the session")
					}
				}
			})
		}
	}
	// The right token passes (same-origin Origin header included).
	b := e.browser()
	b.login(bobEmail, bobPW, "/")
	page := b.get("/authorize?consent=1")
	b.hdr.Set("Origin", e.srv.URL)
	res := b.post("/authorize?consent=1", url.Values{"csrf_token": {csrfOf(t, page.body)}, "decision": {"approve"}, "remember": {"on"}})
	if res.status != http.StatusOK || !strings.HasPrefix(res.body, "decision=approve remember=on") {
		t.Fatalf("valid consent POST = %d %q", res.status, res.body)
	}
	if evs := e.auditTypes("csrf.failure"); len(evs) == 0 {
		t.Fatal("CSRF failures are not audited")
	}
}

func TestVerifyCSRFRefusesGET(t *testing.T) {
	e := newEnv(t, nil)
	r, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/authorize?csrf_token=x", nil)
	if err := e.login.VerifyCSRF(r); err == nil {
		t.Fatal("VerifyCSRF accepted a GET")
	}
}

func TestSignupModes(t *testing.T) {
	const pw = "a perfectly fine passphrase"
	tests := []struct {
		name    string
		mode    string
		domains []string
		email   string
		pw      string
		status  int
		created bool
		msg     string
	}{
		{"off", SignupOff, nil, "new@example.com", pw, http.StatusNotFound, false, "not available"},
		{"open", SignupOpen, nil, "New@Example.org", pw, http.StatusOK, true, "Sign in to continue"},
		{"domains allowed", SignupDomains, []string{"corp.example"}, "new@corp.example", pw, http.StatusOK, true, "Sign in to continue"},
		{"domains refused", SignupDomains, []string{"corp.example"}, "new@corp.example.evil.com", pw, http.StatusForbidden, false, "allowed domain"},
		{"subdomain refused", SignupDomains, []string{"corp.example"}, "new@sub.corp.example", pw, http.StatusForbidden, false, "allowed domain"},
		{"short password", SignupOpen, nil, "new@example.org", "short", http.StatusBadRequest, false, "at least 8"},
		{"common password", SignupOpen, nil, "new@example.org", "password123", http.StatusBadRequest, false, "too common"},
		{"password is email", SignupOpen, nil, "new@example.org", "new@example.org", http.StatusBadRequest, false, "too common"},
		{"bad email", SignupOpen, nil, "new@", pw, http.StatusBadRequest, false, "valid email"},
		{"existing: same answer as a new address", SignupOpen, nil, aliceEmail, pw, http.StatusOK, false, "Sign in to continue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Signup = SignupPolicy{Mode: tc.mode, Domains: tc.domains} })
			b := e.browser()
			page := b.get("/signup?return_to=/authorize%3Fa%3D1")
			if tc.mode == SignupOff {
				if page.status != http.StatusNotFound {
					t.Fatalf("GET /signup with signup off = %d", page.status)
				}
				if strings.Contains(b.get("/login").body, "/signup") {
					t.Fatal("login page links to signup while it is off")
				}
				page = b.get("/login")
			} else if !strings.Contains(b.get("/login").body, `href="/signup"`) {
				t.Fatal("login page does not link to signup")
			}
			before, _ := e.store.ListAccounts(context.Background())
			res := b.post("/signup", url.Values{"csrf_token": {csrfOf(t, page.body)}, "email": {tc.email}, "name": {"New\x00 User"}, "password": {tc.pw}, "return_to": {"/authorize?a=1"}})
			if res.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", res.status, tc.status, res.body)
			}
			if tc.msg != "" && !strings.Contains(res.body, tc.msg) {
				t.Fatalf("body lacks %q:\n%s", tc.msg, res.body)
			}
			after, _ := e.store.ListAccounts(context.Background())
			if (len(after) == len(before)+1) != tc.created || (!tc.created && len(after) != len(before)) {
				t.Fatalf("accounts %d -> %d, created=%v", len(before), len(after), tc.created)
			}
			if findCookie(res.cookies, SessionCookie) != nil {
				t.Fatal("signup started a session (it would tell a new address from a taken one)")
			}
			if tc.created {
				if !strings.Contains(res.body, `/login?return_to=%2Fauthorize%3Fa%3D1&amp;login_hint=`) {
					t.Fatalf("signup answer does not lead to sign-in:\n%s", res.body)
				}
				a := e.account(strings.ToLower(tc.email))
				if a.Name != "New User" || a.EmailVerified || !strings.HasPrefix(a.PasswordHash, "$argon2id$") {
					t.Fatalf("account %+v", a)
				}
				if evs := e.auditTypes("signup"); len(evs) != 1 || evs[0].Outcome != "success" {
					t.Fatalf("signup audit %+v", evs)
				}
			}
		})
	}
}

func TestSignupThrottledPerIP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Signup.Mode = SignupOpen; c.Throttle.SignupsPerIP = 2 })
	for i := range 3 {
		b := e.browser()
		page := b.get("/signup")
		res := b.post("/signup", url.Values{"csrf_token": {csrfOf(t, page.body)}, "email": {"u" + string(rune('a'+i)) + "@example.org"}, "password": {"a perfectly fine passphrase"}})
		want := http.StatusOK
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if res.status != want {
			t.Fatalf("signup %d = %d, want %d", i, res.status, want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Signup.Mode = SignupOpen })
	b := e.browser()
	b.login(aliceEmail, alicePW, "/")
	anon := e.browser()
	pages := []struct {
		name       string
		b          *browser
		path       string
		formAction bool
	}{
		{"login", anon, "/login", false},
		{"authorize login", anon, "/authorize", false},
		{"signup", anon, "/signup", false},
		{"consent", b, "/authorize?consent=1", false},
		{"logout", b, "/logout", true},
		{"not found", anon, "/login/nope", true},
		{"redirect", b, "/login", true},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			res := p.b.get(p.path)
			h := res.header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "style-src 'nonce-", "img-src 'self' https: data:", "frame-ancestors 'none'", "base-uri 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if got := strings.Contains(csp, "form-action 'self' "+e.srv.URL); got != p.formAction {
				t.Errorf("form-action present=%v, want %v (CSP %q)", got, p.formAction, csp)
			}
			if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP allows scripts or inline: %q", csp)
			}
			for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if res.status == http.StatusOK {
				nonce := strings.TrimSuffix(strings.SplitN(strings.SplitN(csp, "'nonce-", 2)[1], "'", 2)[0], "'")
				if !strings.Contains(res.body, `<style nonce="`+nonce+`">`) {
					t.Error("style block does not carry the CSP nonce")
				}
				if strings.Count(res.body, "<style") != 1 || strings.Contains(res.body, "<script") || strings.Contains(res.body, " style=") {
					t.Error("page must have exactly one style block, no scripts and no inline style attributes")
				}
				if !strings.Contains(res.body, `<html lang="en">`) {
					t.Error("no lang attribute")
				}
			}
		})
	}
}

func TestConsentPage(t *testing.T) {
	for _, loopback := range []bool{true, false} {
		t.Run(map[bool]string{true: "loopback", false: "web"}[loopback], func(t *testing.T) {
			e := newEnv(t, nil)
			e.consen.LoopbackOnly = loopback
			if !loopback {
				e.consen.RedirectHost = "app.example.net"
			}
			b := e.browser()
			b.login(aliceEmail, alicePW, "/")
			res := b.get("/authorize?consent=1")
			for _, want := range []string{
				"<strong>Test App</strong> wants to access your account",
				"Published by</span><span class=\"v\">app.example.net",
				"Returns you to</span><span class=\"v\">" + e.consen.RedirectHost,
				"Access to</span><span class=\"v\">https://mcp.example.com/mcp",
				"Confirm who you are", "<code>openid</code>",
				"Use the tools of the connected MCP servers", "<code>mcp:tools</code>",
				"Stay connected when you are not using it",
				"Permission requested by the app", "<code>custom:thing</code>",
				`action="/authorize?client_id=x&amp;state=s"`,
				`name="decision" value="approve"`, `name="decision" value="deny"`,
				`name="remember" value="on"`,
				"Signed in as <strong>" + aliceEmail,
			} {
				if !strings.Contains(res.body, want) {
					t.Errorf("consent page lacks %q", want)
				}
			}
			if got := strings.Contains(res.body, "Check this app."); got != loopback {
				t.Errorf("loopback warning shown=%v, want %v", got, loopback)
			}
			if !strings.Contains(res.body, `name="csrf_token" value="s.`) {
				t.Error("consent form does not carry a session-bound CSRF token")
			}
		})
	}
}

// TestConsentPageNoRemember: under remember_consent off the page offers no
// "remember this decision" box.
func TestConsentPageNoRemember(t *testing.T) {
	e := newEnv(t, nil)
	e.consen.NoRemember = true
	b := e.browser()
	b.login(aliceEmail, alicePW, "/")
	res := b.get("/authorize?consent=1")
	if !strings.Contains(res.body, `name="decision" value="approve"`) || strings.Contains(res.body, `name="remember"`) {
		t.Fatalf("consent page under NoRemember:\n%s", res.body)
	}
}

func TestConsentEscapesClientMetadata(t *testing.T) {
	e := newEnv(t, nil)
	e.consen.Client.Name = `<img src=x onerror=alert(1)>"evil`
	b := e.browser()
	b.login(aliceEmail, alicePW, "/")
	res := b.get("/authorize?consent=1")
	if strings.Contains(res.body, "<img src=x") || !strings.Contains(res.body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Fatal("client name not escaped")
	}
}

func TestErrorPage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Branding.SupportEmail = "help@example.com" })
	rec := newRecorder()
	r, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/authorize", nil)
	e.login.Error(rec, r, http.StatusBadRequest, "invalid_request", "The redirect_uri is not registered for this client.")
	body := rec.Body.String()
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d", rec.Code)
	}
	for _, want := range []string{"invalid_request", "The redirect_uri is not registered", "Error 400", `href="https://support.example.com/"`, "help@example.com"} {
		if !strings.Contains(body, want) {
			t.Errorf("error page lacks %q", want)
		}
	}
}

func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	custom := `{{define "title"}}Custom{{end}}{{define "content"}}<p>OPERATOR LOGIN {{.Brand.ProductName}}</p><form method="post" action="{{.Login.Action}}"><input type="hidden" name="csrf_token" value="{{.CSRF}}"></form>{{end}}`
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte(custom), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.TemplatesDir = dir })
	res := e.browser().get("/login")
	if !strings.Contains(res.body, "OPERATOR LOGIN Acme MCP") || !strings.Contains(res.body, "<title>Custom · Acme MCP</title>") {
		t.Fatalf("override not used:\n%s", res.body)
	}
	// Other pages keep the embedded template.
	if !strings.Contains(e.browser().get("/logout").body, "not signed in") {
		t.Fatal("embedded logout page lost")
	}

	bad := map[string]string{
		"parse error":   `{{define "title"}}x{{end}}{{define "content"}}{{.Login.Action{{end}}`,
		"no content":    `{{define "title"}}x{{end}}`,
		"unknown field": `{{define "title"}}x{{end}}{{define "content"}}{{.Login.Nope}}{{end}}`,
		"unknown func":  `{{define "title"}}x{{end}}{{define "content"}}{{nope}}{{end}}`,
	}
	for name, text := range bad {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			os.WriteFile(filepath.Join(d, "login.html"), []byte(text), 0o600)
			cfg := e.login.cfg
			cfg.TemplatesDir = d
			cfg.SeedAccounts = nil
			if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "login.html") {
				t.Fatalf("New = %v, want a template error naming login.html", err)
			}
		})
	}
	cfg := e.login.cfg
	cfg.TemplatesDir = filepath.Join(dir, "missing")
	if _, err := New(context.Background(), cfg); err == nil {
		t.Fatal("a missing templates directory was accepted")
	}
}

func TestConfigValidation(t *testing.T) {
	st := openStore(t)
	base := func() Config {
		return Config{PublicURL: "https://auth.example.com", Store: st, PasswordLogin: true}
	}
	bad := map[string]func(*Config){
		"no store":            func(c *Config) { c.Store = nil },
		"http public url":     func(c *Config) { c.PublicURL = "http://auth.example.com" },
		"relative public url": func(c *Config) { c.PublicURL = "/auth" },
		"bad accent":          func(c *Config) { c.Branding.AccentColor = "red;}body{display:none" },
		"javascript logo":     func(c *Config) { c.Branding.LogoURL = "javascript:alert(1)" },
		"http support":        func(c *Config) { c.Branding.SupportURL = "http://help.example.com" },
		"bad signup mode":     func(c *Config) { c.Signup.Mode = "maybe" },
		"domains w/o list":    func(c *Config) { c.Signup.Mode = SignupDomains },
		"bad domain":          func(c *Config) { c.Signup = SignupPolicy{Mode: SignupDomains, Domains: []string{"exa mple.com"}} },
		"signup w/o password": func(c *Config) {
			c.Signup.Mode = SignupOpen
			c.PasswordLogin = false
			c.Providers = []Provider{&testProvider{name: "x"}}
		},
		"no login method":    func(c *Config) { c.PasswordLogin = false },
		"bad prefix":         func(c *Config) { c.PathPrefix = "auth/" },
		"bad provider name":  func(c *Config) { c.Providers = []Provider{&testProvider{name: "Bad Name"}} },
		"duplicate provider": func(c *Config) { c.Providers = []Provider{&testProvider{name: "x"}, &testProvider{name: "x"}} },
		"home realm unknown": func(c *Config) { c.HomeRealm = map[string]string{"corp.example": "nope"} },
	}
	for name, mut := range bad {
		t.Run(name, func(t *testing.T) {
			c := base()
			mut(&c)
			if _, err := New(context.Background(), c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	good := base()
	good.PublicURL = "http://127.0.0.1:8080"
	good.PathPrefix = "/auth"
	l, err := New(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	if l.sessionCookie != "mcpauth_session" || l.secure {
		t.Fatal("loopback http must drop the __Host- prefix and Secure")
	}
	for path, want := range map[string]bool{"/auth/login": true, "/auth/signup": true, "/auth/logout": true, "/auth/login/x/callback": true, "/login": false, "/auth/loginx": false, "/authorize": false} {
		r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+path, nil)
		if l.Handles(r) != want {
			t.Errorf("Handles(%s) = %v", path, !want)
		}
	}
}

func TestOperatorFunctions(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	a, err := e.login.CreateAccount(ctx, "Carol@Example.com", "Carol", "carol's own passphrase")
	if err != nil || a.Email != "carol@example.com" || !a.EmailVerified {
		t.Fatalf("CreateAccount = %+v, %v", a, err)
	}
	if _, err := e.login.CreateAccount(ctx, "carol@example.com", "", "another passphrase"); err == nil {
		t.Fatal("duplicate email accepted")
	}
	if _, err := e.login.CreateAccount(ctx, "dave@example.com", "", "short"); err == nil {
		t.Fatal("weak password accepted")
	}
	b := e.browser()
	if res := b.login("carol@example.com", "carol's own passphrase", "/"); res.status != http.StatusSeeOther {
		t.Fatalf("login = %d", res.status)
	}
	e.clock.Advance(1)
	if _, err := e.login.SetPassword(ctx, a.ID, "carol's next passphrase"); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(b.get("/authorize").body, "hello ") {
		t.Fatal("session survived SetPassword")
	}
	if res := e.browser().login("carol@example.com", "carol's own passphrase", "/"); res.status != http.StatusBadRequest {
		t.Fatal("old password still works")
	}
	if res := e.browser().login("carol@example.com", "carol's next passphrase", "/"); res.status != http.StatusSeeOther {
		t.Fatal("new password refused")
	}
	if _, err := e.login.SetAccountDisabled(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.login.SetAccountDisabled(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if res := e.browser().login("carol@example.com", "carol's next passphrase", "/"); res.status != http.StatusSeeOther {
		t.Fatal("re-enabled account refused")
	}
	if _, err := e.login.SetPassword(ctx, "nope", "whatever passphrase"); err == nil {
		t.Fatal("SetPassword on an unknown account succeeded")
	}
}

// Browsers send "Origin: null" for same-origin form posts from pages with
// Referrer-Policy: no-referrer; a valid token must still pass, while a
// cross-site Sec-Fetch-Site must not.
func TestCSRFOriginNullAndFetchSite(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	page := b.get("/login")
	b.hdr.Set("Origin", "null")
	b.hdr.Set("Sec-Fetch-Site", "cross-site")
	form := url.Values{"csrf_token": {csrfOf(t, page.body)}, "email": {aliceEmail}, "password": {alicePW}}
	if res := b.post("/login", form); res.status != http.StatusForbidden {
		t.Fatalf("cross-site fetch = %d, want 403", res.status)
	}
	b.hdr.Set("Sec-Fetch-Site", "same-origin")
	if res := b.post("/login", form); res.status != http.StatusSeeOther {
		t.Fatalf("Origin null, same-origin fetch = %d, want 303", res.status)
	}
}

// TestConsentPageListsTools: the tools each scope unlocks are listed under
// it, new ones marked and named once above the list, tool names and the
// upstream's titles and descriptions escaped;
// the step-up variant says it widens an existing access.
func TestConsentPageListsTools(t *testing.T) {
	e := newEnv(t, nil)
	e.consen.Tools = []authserver.ScopeTools{
		{Scope: "mcp:tools", Tools: []authserver.ConsentTool{{Name: "list_todos", Title: "List <i>todos</i>", Description: `Lists "open" todos & <script>alert(1)</script>`}, {Name: `<b>x</b>`, New: true}}},
		{Scope: "unrequested", Tools: []authserver.ConsentTool{{Name: "ghost"}}},
	}
	b := e.browser()
	b.login(aliceEmail, alicePW, "/")
	res := b.get("/authorize?consent=1")
	for _, want := range []string{
		`<ul class="tools" aria-label="Tools mcp:tools unlocks"><li><code>list_todos</code> <span class="tool-title">List &lt;i&gt;todos&lt;/i&gt;</span><span class="tool-desc muted">Lists &#34;open&#34; todos &amp; &lt;script&gt;alert(1)&lt;/script&gt;</span></li><li><code>&lt;b&gt;x&lt;/b&gt;</code> <span class="new">new</span></li></ul>`,
		`<div class="alert alert-warn" role="note" id="new-tools"><strong>New tools.</strong> Not approved before: <code>&lt;b&gt;x&lt;/b&gt;</code>.</div>`,
		"wants to access your account",
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(res.body, "<b>x</b>") || strings.Contains(res.body, "<i>todos") || strings.Contains(res.body, "<script>alert") || strings.Contains(res.body, "ghost") {
		t.Errorf("consent page shows an unescaped tool or a tool of a scope not requested:\n%s", res.body)
	}

	e.consen.StepUp = true
	e.consen.RedirectHost = ""
	res = b.get("/authorize?consent=1")
	if !strings.Contains(res.body, "asks for more access") || strings.Contains(res.body, "Returns you to") {
		t.Errorf("step-up consent page:\n%s", res.body)
	}
}

// TestStepUpDonePage: the page after a step-up decision.
func TestStepUpDonePage(t *testing.T) {
	e := newEnv(t, nil)
	for _, approved := range []bool{true, false} {
		w := httptest.NewRecorder()
		e.login.StepUpDone(w, httptest.NewRequest(http.MethodGet, "/consent/step-up", nil),
			authserver.StepUpResult{Client: storage.Client{Name: "<i>App</i>"}, Approved: approved})
		body := w.Body.String()
		want := map[bool]string{true: "Access updated", false: "Nothing changed"}[approved]
		if w.Code != 200 || !strings.Contains(body, want) || strings.Contains(body, "<i>App</i>") || !strings.Contains(body, "&lt;i&gt;App&lt;/i&gt;") {
			t.Errorf("approved=%v: %d\n%s", approved, w.Code, body)
		}
	}
}
