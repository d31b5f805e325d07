package idp

import (
	"context"
	"errors"
	"github.com/mcpauth/caddy-mcpauth/idp/internal/logtest"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// testProvider is an upstream provider test double: Begin redirects straight
// to its own callback, which vouches for whatever identity the test set.
type testProvider struct {
	name string
	pol  UpstreamPolicy

	mu       sync.Mutex
	next     ExternalIdentity
	attempts []Attempt
	failWith string
	beginErr error
}

func (p *testProvider) Name() string           { return p.name }
func (p *testProvider) Kind() string           { return "oidc" }
func (p *testProvider) DisplayName() string    { return "Corp SSO" }
func (p *testProvider) IconURL() string        { return "" }
func (p *testProvider) Policy() UpstreamPolicy { return p.pol }

func (p *testProvider) Begin(w http.ResponseWriter, r *http.Request, a Attempt) error {
	p.mu.Lock()
	p.attempts = append(p.attempts, a)
	err := p.beginErr
	p.mu.Unlock()
	if err != nil {
		return err
	}
	http.Redirect(w, r, a.BaseURL+"/callback?attempt="+url.QueryEscape(a.ID), http.StatusSeeOther)
	return nil
}

func (p *testProvider) Handler(c Completer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/callback") {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		ext, fail := p.next, p.failWith
		p.mu.Unlock()
		if fail != "" {
			c.FailUpstream(w, r, r.URL.Query().Get("attempt"), fail)
			return
		}
		c.CompleteUpstream(w, r, r.URL.Query().Get("attempt"), ext)
	})
}

func (p *testProvider) set(ext ExternalIdentity) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ext.Provider = p.name
	p.next = ext
}

// upstreamLogin clicks the provider button and follows the callback.
func upstreamLogin(t *testing.T, b *browser, returnTo string) (callback resp, start resp) {
	t.Helper()
	page := b.get("/login?prompt=login")
	start = b.post("/login/corp", url.Values{"csrf_token": {csrfOf(t, page.body)}, "return_to": {returnTo}})
	if start.status != http.StatusSeeOther {
		t.Fatalf("provider start = %d\n%s", start.status, start.body)
	}
	u, _ := url.Parse(start.header.Get("Location"))
	return b.get(u.RequestURI()), start
}

func TestUpstreamLinking(t *testing.T) {
	type step struct {
		ext        ExternalIdentity
		status     int
		sameAs     string // email of the account the login must land in
		newAccount bool
		contains   string
	}
	tests := []struct {
		name  string
		pol   UpstreamPolicy
		steps []step
	}{
		{"first login creates, second reuses", UpstreamPolicy{}, []step{
			{ext: ExternalIdentity{Subject: "u-1", Email: "zoe@corp.example", EmailVerified: true, Name: "Zoe", Groups: []string{"eng"}}, status: http.StatusSeeOther, newAccount: true},
			{ext: ExternalIdentity{Subject: "u-1", Email: "zoe-renamed@corp.example", EmailVerified: true, Name: "Zoe Z"}, status: http.StatusSeeOther, sameAs: "zoe@corp.example"},
		}},
		{"email of a local account is not linked by default", UpstreamPolicy{}, []step{
			{ext: ExternalIdentity{Subject: "u-2", Email: aliceEmail, EmailVerified: true}, status: http.StatusConflict, contains: "already exists"},
		}},
		{"link by verified email when allowed", UpstreamPolicy{LinkByEmail: true}, []step{
			{ext: ExternalIdentity{Subject: "u-3", Email: "ALICE@example.com", EmailVerified: true}, status: http.StatusSeeOther, sameAs: aliceEmail},
			{ext: ExternalIdentity{Subject: "u-3", Email: "other@example.com", EmailVerified: true}, status: http.StatusSeeOther, sameAs: aliceEmail},
		}},
		{"unverified email never links", UpstreamPolicy{LinkByEmail: true}, []step{
			{ext: ExternalIdentity{Subject: "u-4", Email: aliceEmail, EmailVerified: false}, status: http.StatusConflict},
		}},
		{"allowed domain", UpstreamPolicy{AllowedDomains: []string{"corp.example"}}, []step{
			{ext: ExternalIdentity{Subject: "u-5", Email: "yan@corp.example", EmailVerified: true}, status: http.StatusSeeOther, newAccount: true},
		}},
		{"domain needs a verified email", UpstreamPolicy{AllowedDomains: []string{"corp.example"}}, []step{
			{ext: ExternalIdentity{Subject: "u-6", Email: "yan@corp.example", EmailVerified: false}, status: http.StatusForbidden, contains: "have access"},
		}},
		{"other domain not allowed", UpstreamPolicy{AllowedDomains: []string{"corp.example"}}, []step{
			{ext: ExternalIdentity{Subject: "u-7", Email: "eve@evil.example", EmailVerified: true}, status: http.StatusForbidden, contains: "eve@evil.example"},
		}},
		{"allowed group", UpstreamPolicy{AllowedGroups: []string{"mcp-users"}}, []step{
			{ext: ExternalIdentity{Subject: "u-8", Groups: []string{"staff", "mcp-users"}}, status: http.StatusSeeOther, newAccount: true},
			{ext: ExternalIdentity{Subject: "u-9", Groups: []string{"staff"}}, status: http.StatusForbidden},
		}},
		{"allowed subject", UpstreamPolicy{AllowedSubjects: []string{"u-10"}}, []step{
			{ext: ExternalIdentity{Subject: "u-10"}, status: http.StatusSeeOther, newAccount: true},
			{ext: ExternalIdentity{Subject: "u-11"}, status: http.StatusForbidden},
		}},
		{"no account creation", UpstreamPolicy{NoAccountCreation: true}, []step{
			{ext: ExternalIdentity{Subject: "u-12", Email: "new@corp.example", EmailVerified: true}, status: http.StatusForbidden},
		}},
		{"empty subject refused", UpstreamPolicy{}, []step{
			{ext: ExternalIdentity{Subject: ""}, status: http.StatusBadRequest},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &testProvider{name: "corp", pol: tc.pol}
			log, rec := logtest.New()
			e := newEnv(t, func(c *Config) { c.Providers = []Provider{p}; c.Logger = log })
			for i, s := range tc.steps {
				before, _ := e.store.ListAccounts(context.Background())
				p.set(s.ext)
				b := e.browser()
				res, _ := upstreamLogin(t, b, "/authorize?from=upstream")
				if res.status != s.status {
					t.Fatalf("step %d: status %d, want %d\n%s", i, res.status, s.status, res.body)
				}
				if s.contains != "" && !strings.Contains(res.body, s.contains) {
					t.Fatalf("step %d: body lacks %q", i, s.contains)
				}
				after, _ := e.store.ListAccounts(context.Background())
				if s.newAccount != (len(after) == len(before)+1) || (!s.newAccount && len(after) != len(before)) {
					t.Fatalf("step %d: accounts %d -> %d", i, len(before), len(after))
				}
				if res.status != http.StatusSeeOther {
					if findCookie(res.cookies, SessionCookie) != nil {
						t.Fatalf("step %d: refused upstream login set a session", i)
					}
					if evs := e.auditTypes("login.failure"); len(evs) == 0 {
						t.Fatalf("step %d: refusal not audited", i)
					}
					// Every refusal is in the operator's log too, with the
					// provider and the reason, and without the identity.
					lines := rec.Find("INFO", "upstream login refused", "provider=corp", "reason=")
					if len(lines) == 0 {
						t.Fatalf("step %d: refusal not logged: %q", i, rec.Lines())
					}
					if s.status == http.StatusConflict && len(rec.Find("reason=email_")) == 0 {
						t.Fatalf("step %d: 409 logged without its reason: %q", i, lines)
					}
					for _, l := range lines {
						if s.ext.Subject != "" && strings.Contains(l, s.ext.Subject) || s.ext.Email != "" && strings.Contains(strings.ToLower(l), strings.ToLower(s.ext.Email)) {
							t.Fatalf("step %d: refusal log carries the identity: %q", i, l)
						}
					}
					continue
				}
				if res.header.Get("Location") != "/authorize?from=upstream" {
					t.Fatalf("step %d: Location %q", i, res.header.Get("Location"))
				}
				who := b.get("/authorize").body
				acct, err := e.store.AccountByIdentity(context.Background(), "corp", s.ext.Subject)
				if err != nil {
					t.Fatalf("step %d: identity not linked: %v", i, err)
				}
				if who != "hello "+acct.ID+" "+acct.Email+" oidc:corp" {
					t.Fatalf("step %d: identify = %q", i, who)
				}
				if s.sameAs != "" && e.account(s.sameAs).ID != acct.ID {
					t.Fatalf("step %d: landed in %s, want the account of %s", i, acct.ID, s.sameAs)
				}
				if s.newAccount && s.ext.Email != "" && (acct.Email != strings.ToLower(s.ext.Email) || acct.EmailVerified != s.ext.EmailVerified) {
					t.Fatalf("step %d: new account %+v", i, acct)
				}
			}
		})
	}
}

func TestUpstreamAttemptSingleUse(t *testing.T) {
	p := &testProvider{name: "corp"}
	e := newEnv(t, func(c *Config) { c.Providers = []Provider{p} })
	p.set(ExternalIdentity{Subject: "s-1", Email: "s@corp.example", EmailVerified: true})
	b := e.browser()
	res, start := upstreamLogin(t, b, "/")
	if res.status != http.StatusSeeOther {
		t.Fatalf("first = %d", res.status)
	}
	u, _ := url.Parse(start.header.Get("Location"))
	replay := e.browser().get(u.RequestURI())
	if replay.status != http.StatusBadRequest || !strings.Contains(replay.body, "expired or was already used") || findCookie(replay.cookies, SessionCookie) != nil {
		t.Fatalf("replayed attempt = %d", replay.status)
	}
	// Unknown and malformed attempt ids.
	for _, id := range []string{"", "x", strings.Repeat("A", 43)} {
		if r := e.browser().get("/login/corp/callback?attempt=" + id); r.status != http.StatusBadRequest {
			t.Fatalf("attempt %q = %d", id, r.status)
		}
	}
	// Provider-reported failures consume the attempt and are audited.
	p.failWith = "State Mismatch <script>"
	fail, start := upstreamLogin(t, e.browser(), "/")
	if fail.status != http.StatusBadRequest {
		t.Fatalf("FailUpstream = %d", fail.status)
	}
	// The replayed and unknown attempts above were audited too (reason
	// attempt_unknown), possibly within the same clock tick: look for this
	// failure's record rather than rely on the listing's order.
	evs := e.auditTypes("login.failure")
	var reasons []string
	for _, ev := range evs {
		reasons = append(reasons, ev.Detail["reason"])
	}
	if !slices.Contains(reasons, "state_mismatch__script_") {
		t.Fatalf("login.failure reasons = %q, want the provider's sanitized state_mismatch__script_", reasons)
	}
	u, _ = url.Parse(start.header.Get("Location"))
	p.failWith = ""
	if r := e.browser().get(u.RequestURI()); r.status != http.StatusBadRequest {
		t.Fatal("a failed attempt could be completed afterwards")
	}
	// An attempt started for one provider cannot be completed as another.
	q := &testProvider{name: "other"}
	e2 := newEnv(t, func(c *Config) { c.Providers = []Provider{p, q} })
	p.set(ExternalIdentity{Subject: "s-2"})
	page := e2.browser()
	tok := csrfOf(t, page.get("/login").body)
	st := page.post("/login/corp", url.Values{"csrf_token": {tok}})
	loc, _ := url.Parse(st.header.Get("Location"))
	q.set(ExternalIdentity{Subject: "s-2"})
	if r := page.get("/login/other/callback?" + loc.RawQuery); r.status != http.StatusBadRequest {
		t.Fatalf("cross-provider completion = %d", r.status)
	}
	if _, err := e2.store.AccountByIdentity(context.Background(), "other", "s-2"); err == nil {
		t.Fatal("cross-provider completion linked an identity")
	}
}

func TestProviderRoutes(t *testing.T) {
	p := &testProvider{name: "corp"}
	e := newEnv(t, func(c *Config) { c.Providers = []Provider{p} })
	b := e.browser()
	page := b.get("/login")
	if !strings.Contains(page.body, `action="/login/corp"`) || !strings.Contains(page.body, "Continue with Corp SSO") {
		t.Fatal("login page lacks the provider button")
	}
	if r := b.get("/login/corp"); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET provider start = %d", r.status)
	}
	if r := b.get("/login/nope/callback"); r.status != http.StatusNotFound {
		t.Fatalf("unknown provider = %d", r.status)
	}
	if got := ProviderBaseURL("https://auth.example.com/", "/auth", "corp"); got != "https://auth.example.com/auth/login/corp" {
		t.Fatalf("ProviderBaseURL = %q", got)
	}
	if len(p.attempts) != 0 {
		t.Fatal("GET started an attempt")
	}
}

func TestHomeRealmDiscovery(t *testing.T) {
	p := &testProvider{name: "corp"}
	e := newEnv(t, func(c *Config) {
		c.Providers = []Provider{p}
		c.HomeRealm = map[string]string{"Corp.Example": "corp"}
	})
	p.set(ExternalIdentity{Subject: "hr-1", Email: "kim@corp.example", EmailVerified: true})
	b := e.browser()
	page := b.get("/authorize?login_hint=kim@corp.example")
	if !strings.Contains(page.body, `name="step" value="email"`) || strings.Contains(page.body, `type="password"`) {
		t.Fatal("home realm: the first step must ask for the email only")
	}
	if !strings.Contains(page.body, `value="kim@corp.example"`) {
		t.Fatal("login_hint not prefilled")
	}
	tok := csrfOf(t, page.body)
	res := b.post("/login", url.Values{"csrf_token": {tok}, "step": {"email"}, "email": {"Kim@CORP.example"}, "return_to": {"/authorize?a=1"}})
	if res.status != http.StatusSeeOther || !strings.Contains(res.header.Get("Location"), "/login/corp/callback?attempt=") {
		t.Fatalf("corp email not routed to its provider: %d %q", res.status, res.header.Get("Location"))
	}
	if len(p.attempts) != 1 || p.attempts[0].LoginHint != "kim@corp.example" || p.attempts[0].ReturnTo != "/authorize?a=1" {
		t.Fatalf("attempt = %+v", p.attempts)
	}
	// Another domain gets the password step.
	res = b.post("/login", url.Values{"csrf_token": {tok}, "step": {"email"}, "email": {aliceEmail}})
	if res.status != http.StatusOK || !strings.Contains(res.body, `type="password"`) || !strings.Contains(res.body, `value="`+aliceEmail+`"`) {
		t.Fatalf("password step = %d", res.status)
	}
	res = b.post("/login", url.Values{"csrf_token": {tok}, "step": {"email"}, "email": {"nope"}})
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "valid email") {
		t.Fatalf("bad email step = %d", res.status)
	}
}

var _ storage.Account

func TestUpstreamAttemptBoundToBrowser(t *testing.T) {
	p := &testProvider{name: "corp"}
	e := newEnv(t, func(c *Config) { c.Providers = []Provider{p} })
	p.set(ExternalIdentity{Subject: "attacker", Email: "mallory@corp.example", EmailVerified: true})
	attacker := e.browser()
	page := attacker.get("/login")
	start := attacker.post("/login/corp", url.Values{"csrf_token": {csrfOf(t, page.body)}})
	loc, _ := url.Parse(start.header.Get("Location"))
	// The victim has visited the login page (so has a pre-session cookie)
	// and is lured to the attacker's callback URL.
	victim := e.browser()
	victim.get("/login")
	res := victim.get(loc.RequestURI())
	if res.status != http.StatusBadRequest || findCookie(res.cookies, SessionCookie) != nil || !strings.Contains(res.body, "another browser") {
		t.Fatalf("cross-browser completion = %d", res.status)
	}
	if evs := e.auditTypes("login.failure"); evs[0].Detail["reason"] != "browser_mismatch" {
		t.Fatalf("reason = %q", evs[0].Detail["reason"])
	}
}

// TestLinkByEmailNeedsVerifiedAccount is requirement 35: an attacker who
// signed up with the victim's address (unverified) must not receive the
// victim's upstream identity through link_by_email; a verified account
// links, and the link ends the account's other sessions.
func TestLinkByEmailNeedsVerifiedAccount(t *testing.T) {
	const victim = "victim@corp.example"
	p := &testProvider{name: "corp", pol: UpstreamPolicy{LinkByEmail: true}}
	e := newEnv(t, func(c *Config) { c.Providers = []Provider{p}; c.Signup.Mode = SignupOpen })
	ctx := context.Background()
	attacker, err := e.login.createAccount(ctx, victim, "Mallory", "attacker chosen secret")
	if err != nil {
		t.Fatal(err)
	}
	if attacker.EmailVerified {
		t.Fatal("a self-signup account starts verified")
	}
	mallory := e.browser()
	if res := mallory.login(victim, "attacker chosen secret", "/authorize"); res.status != http.StatusSeeOther {
		t.Fatalf("attacker login = %d", res.status)
	}

	// The victim signs in upstream: refused with a clear page, nothing linked.
	p.set(ExternalIdentity{Subject: "victim-sub", Email: victim, EmailVerified: true, Name: "Victim"})
	res, _ := upstreamLogin(t, e.browser(), "/authorize")
	if res.status != http.StatusConflict || !strings.Contains(res.body, "Sign in with it first") {
		t.Fatalf("link into unverified account: %d\n%s", res.status, res.body)
	}
	if findCookie(res.cookies, SessionCookie) != nil {
		t.Fatal("refused link set a session")
	}
	if _, err := e.store.AccountByIdentity(ctx, "corp", "victim-sub"); !isNotFound(err) {
		t.Fatalf("identity linked into the unverified account: %v", err)
	}
	if who := mallory.get("/authorize").body; !strings.HasPrefix(who, "hello "+attacker.ID) {
		t.Fatalf("attacker session: %q", who)
	}

	// The account's owner, signed in to it in this browser, may link: the
	// upstream proves the address, the session proves the account.
	if res, _ := upstreamLogin(t, mallory, "/authorize"); res.status != http.StatusSeeOther {
		t.Fatalf("link while signed in to the account: %d\n%s", res.status, res.body)
	}
	if got, err := e.store.AccountByIdentity(ctx, "corp", "victim-sub"); err != nil || got.ID != attacker.ID || !got.EmailVerified {
		t.Fatalf("signed-in link: %+v %v", got, err)
	}

	// A verified account (seeded) links, and its other sessions end.
	alice := e.browser()
	if res := alice.login(aliceEmail, alicePW, "/authorize"); res.status != http.StatusSeeOther {
		t.Fatalf("alice login = %d", res.status)
	}
	p.set(ExternalIdentity{Subject: "alice-sub", Email: aliceEmail, EmailVerified: true})
	fresh := e.browser()
	if res, _ := upstreamLogin(t, fresh, "/authorize"); res.status != http.StatusSeeOther {
		t.Fatalf("link into verified account: %d\n%s", res.status, res.body)
	}
	if got, err := e.store.AccountByIdentity(ctx, "corp", "alice-sub"); err != nil || got.ID != e.account(aliceEmail).ID {
		t.Fatalf("verified link: %+v %v", got, err)
	}
	if who := alice.get("/authorize").body; strings.HasPrefix(who, "hello ") {
		t.Fatalf("the account's other session survived the link: %q", who)
	}
	if who := fresh.get("/authorize").body; !strings.HasPrefix(who, "hello "+e.account(aliceEmail).ID) {
		t.Fatalf("linking browser not signed in: %q", who)
	}
}

// TestUpstreamUnreachablePage: when the provider cannot be reached (at the
// start, or on the way back: discovery, token endpoint, SAML metadata) the
// page names it and says to try again, not "something went wrong on our
// side".
func TestUpstreamUnreachablePage(t *testing.T) {
	want := "We could not reach Corp SSO (corp) right now; try again in a minute"
	check := func(t *testing.T, res resp) {
		t.Helper()
		if res.status != http.StatusBadGateway || !strings.Contains(res.body, want) || strings.Contains(res.body, "on our side") {
			t.Fatalf("status %d\n%s", res.status, res.body)
		}
		if findCookie(res.cookies, SessionCookie) != nil {
			t.Fatal("outage page set a session")
		}
	}
	t.Run("begin", func(t *testing.T) {
		p := &testProvider{name: "corp", beginErr: errors.New("dial tcp: connection refused")}
		e := newEnv(t, func(c *Config) { c.Providers = []Provider{p} })
		b := e.browser()
		page := b.get("/login?prompt=login")
		check(t, b.post("/login/corp", url.Values{"csrf_token": {csrfOf(t, page.body)}, "return_to": {"/authorize"}}))
	})
	for _, reason := range []string{ReasonDiscoveryFailed, ReasonTokenEndpointUnreachable, ReasonMetadataUnavailable} {
		t.Run(reason, func(t *testing.T) {
			p := &testProvider{name: "corp", failWith: reason}
			e := newEnv(t, func(c *Config) { c.Providers = []Provider{p} })
			res, _ := upstreamLogin(t, e.browser(), "/authorize")
			check(t, res)
		})
	}
	// A refusal by the provider keeps the plain failure page.
	p := &testProvider{name: "corp", failWith: "token_exchange_failed"}
	e := newEnv(t, func(c *Config) { c.Providers = []Provider{p} })
	if res, _ := upstreamLogin(t, e.browser(), "/authorize"); res.status != http.StatusBadRequest || strings.Contains(res.body, "could not reach") {
		t.Fatalf("refusal: %d\n%s", res.status, res.body)
	}
}

// One provider-name rule for every caller (the Caddy adapter calls it).
func TestValidProviderName(t *testing.T) {
	for n, want := range map[string]bool{"corp": true, "a-1": true, "abcdefghijklmnopqrstuvwxyz012345": true,
		"abcdefghijklmnopqrstuvwxyz0123456": false, "a_b": false, "A": false, "": false, "a/b": false} {
		if got := ValidProviderName(n); got != want {
			t.Errorf("ValidProviderName(%q) = %v, want %v", n, got, want)
		}
	}
}
