package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"github.com/mcpauth/caddy-mcpauth/idp"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/idp/oidc"
	"github.com/mcpauth/caddy-mcpauth/internal/testop"
	"github.com/mcpauth/caddy-mcpauth/storage/bboltstore"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/oauth2"
)

// TestFullFlow signs in through the real OpenID Provider from a client's
// authorization request to an access token accepted by the resource guard.
func TestFullFlow(t *testing.T) {
	e := newEnv(t, nil)
	var firstSub string
	for i := 0; i < 2; i++ {
		b := e.browser()
		verifier := oauth2.GenerateVerifier()
		authURL := e.startUpstream(b, verifier)
		q := mustURL(t, authURL).Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(q.Get("nonce")) < 43 || len(q.Get("state")) < 43 ||
			q.Get("client_id") != testop.ClientID || !strings.Contains(q.Get("scope"), "openid") {
			t.Fatalf("authorization request %v", q)
		}
		cb := e.atProvider(b, authURL)
		if mustURL(t, cb).Query().Get("iss") != e.op.Issuer {
			t.Fatalf("provider did not send iss: %s", cb)
		}
		p := e.finish(b, cb, verifier)
		acct, err := e.store.AccountByIdentity(context.Background(), "corp", "op-user-1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject != acct.ID || acct.Email != "zoe@corp.example" || !acct.EmailVerified || acct.Name != "Zoe Upstream" {
			t.Fatalf("principal %+v, account %+v", p, acct)
		}
		id, ok := b.whoami(e)
		if !ok || id.Subject != acct.ID || id.Method != "oidc:corp" || strings.Join(id.Groups, ",") != "staff,mcp-users" {
			t.Fatalf("identity %+v", id)
		}
		if i == 0 {
			firstSub = p.Subject
		} else if p.Subject != firstSub {
			t.Fatalf("sub changed between logins: %s then %s", firstSub, p.Subject)
		}
	}
	if e.successes() != 2 || len(e.failures()) != 0 {
		t.Fatalf("audit: %d successes, failures %v", e.successes(), e.failures())
	}
}

// TestRefused drives attacks and broken providers through the real flow.
// Each must end on our error page, create no session and no account, and
// be audited with its reason.
func TestRefused(t *testing.T) {
	type stage struct {
		// env tweaks before the flow.
		setup func(e *env)
		// op changes the provider before we discover it.
		op func(o *testop.OP)
		// authURL may rewrite the request to the provider.
		authURL func(e *env, u string) string
		// callback may rewrite the provider's answer; or run the callback
		// itself and return the final response.
		callback func(e *env, b *browser, cb string) string
		run      func(e *env, b *browser, cb string) resp
	}
	tests := []struct {
		name   string
		st     stage
		reason string
	}{
		{"wrong state", stage{callback: func(e *env, b *browser, cb string) string {
			return setParam(t, cb, "state", strings.Repeat("A", 43))
		}}, "state_mismatch"},
		{"missing state", stage{callback: func(e *env, b *browser, cb string) string {
			return setParam(t, cb, "state", "")
		}}, "state_mismatch"},
		{"replayed state", stage{run: func(e *env, b *browser, cb string) resp {
			cookie := bindingCookie(t, b, e)
			if first := b.get(cb); first.status != http.StatusSeeOther {
				t.Fatalf("first callback = %d %s", first.status, first.body)
			}
			// The same browser (cookie restored) presents the same answer again.
			nb := e.browser()
			nb.c.Jar.SetCookies(mustURL(t, e.srv.URL), []*http.Cookie{cookie})
			return nb.get(cb)
		}}, "state_unknown"},
		{"callback in another browser (login CSRF)", stage{run: func(e *env, b *browser, cb string) resp {
			return e.browser().get(cb)
		}}, "state_cookie_missing"},
		{"wrong nonce", stage{authURL: func(e *env, u string) string {
			return setParam(t, u, "nonce", strings.Repeat("n", 43))
		}}, "nonce_mismatch"},
		{"nonce removed", stage{authURL: func(e *env, u string) string {
			return setParam(t, u, "nonce", "")
		}}, "nonce_mismatch"},
		{"wrong audience", stage{setup: func(e *env) {
			e.op.Set(func(o *testop.OP) { o.Mutate = func(c jwt.MapClaims) { c["aud"] = []string{"another-client"} } })
		}}, "audience_mismatch"},
		{"several audiences without azp", stage{setup: func(e *env) {
			e.op.Set(func(o *testop.OP) {
				o.Mutate = func(c jwt.MapClaims) { c["aud"] = []string{testop.ClientID, "another-client"}; delete(c, "azp") }
			})
		}}, "azp_mismatch"},
		{"azp of another client", stage{setup: func(e *env) {
			e.op.Set(func(o *testop.OP) {
				o.Mutate = func(c jwt.MapClaims) {
					c["aud"] = []string{testop.ClientID, "another-client"}
					c["azp"] = "another-client"
				}
			})
		}}, "azp_mismatch"},
		{"id token from another issuer", stage{setup: func(e *env) {
			e.op.Set(func(o *testop.OP) { o.Mutate = func(c jwt.MapClaims) { c["iss"] = "https://evil.example" } })
		}}, "issuer_mismatch"},
		{"id token signed by a key the provider never published", stage{setup: func(e *env) {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			e.op.Set(func(o *testop.OP) { o.ForeignKey = k })
		}}, "signature_invalid"},
		{"expired id token", stage{setup: func(e *env) { e.rpClk.Set(2 * time.Hour) }}, "id_token_expired"},
		{"iss parameter of a foreign provider (mix-up)", stage{callback: func(e *env, b *browser, cb string) string {
			return setParam(t, cb, "iss", "http://127.0.0.1:1/other")
		}}, "issuer_mismatch"},
		{"iss parameter missing though advertised", stage{callback: func(e *env, b *browser, cb string) string {
			return setParam(t, cb, "iss", "")
		}}, "issuer_mismatch"},
		{"code of a second provider (mix-up)", stage{authURL: func(e *env, u string) string {
			op2 := testop.New(t, e.prov.RedirectURL())
			return strings.Replace(u, e.op.Issuer, op2.Issuer, 1)
		}}, "issuer_mismatch"},
		{"code of a second provider without iss", stage{
			op: func(o *testop.OP) { o.SendIss = false },
			authURL: func(e *env, u string) string {
				op2 := testop.New(t, e.prov.RedirectURL())
				op2.Set(func(o *testop.OP) { o.SendIss = false })
				return strings.Replace(u, e.op.Issuer, op2.Issuer, 1)
			}}, "token_exchange_failed"},
		{"upstream error", stage{callback: func(e *env, b *browser, cb string) string {
			u := mustURL(t, cb)
			q := url.Values{"error": {"access_denied"}, "state": {u.Query().Get("state")}, "iss": {e.op.Issuer}}
			u.RawQuery = q.Encode()
			return u.String()
		}}, "upstream_access_denied"},
		{"duplicated parameters", stage{callback: func(e *env, b *browser, cb string) string {
			return cb + "&code=second"
		}}, "response_malformed"},
		{"code replaced", stage{callback: func(e *env, b *browser, cb string) string {
			return setParam(t, cb, "code", "forged-code")
		}}, "token_exchange_failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvOP(t, tc.st.op, nil)
			if tc.st.setup != nil {
				tc.st.setup(e)
			}
			b := e.browser()
			verifier := oauth2.GenerateVerifier()
			authURL := e.startUpstream(b, verifier)
			if tc.st.authURL != nil {
				authURL = tc.st.authURL(e, authURL)
			}
			r := b.get(authURL)
			if r.status/100 != 3 || !strings.Contains(r.location, "/login/corp/callback?") {
				t.Fatalf("provider authorize = %d %q\n%s", r.status, r.location, r.body)
			}
			cb := r.location
			var res resp
			switch {
			case tc.st.run != nil:
				res = tc.st.run(e, b, cb)
			case tc.st.callback != nil:
				res = b.get(tc.st.callback(e, b, cb))
			default:
				res = b.get(cb)
			}
			if res.status != http.StatusBadRequest || !strings.Contains(res.body, "could not be completed") {
				t.Fatalf("status %d, body:\n%s", res.status, res.body)
			}
			if hasSessionCookie(res.cookies) {
				t.Fatal("a refused login set a session cookie")
			}
			if _, ok := b.whoami(e); ok && tc.st.run == nil {
				t.Fatal("browser is signed in after a refusal")
			}
			f := e.failures()
			if len(f) == 0 || f[len(f)-1] != tc.reason {
				t.Fatalf("audited failures %v, want last %q", f, tc.reason)
			}
			if tc.st.run == nil {
				if accts, _ := e.store.ListAccounts(context.Background()); len(accts) != 0 || e.successes() != 0 {
					t.Fatalf("refusal created %d accounts, %d sessions", len(accts), e.successes())
				}
			}
		})
	}
}

// TestNotAllowed: a verified identity outside the allow rules gets the "not
// allowed" page and no session.
func TestNotAllowed(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) {
		c.Allow = idp.AllowRules{EmailDomains: []string{"other.example"}, Groups: []string{"admins"}}
	})
	b := e.browser()
	verifier := oauth2.GenerateVerifier()
	cb := e.atProvider(b, e.startUpstream(b, verifier))
	res := b.get(cb)
	if res.status != http.StatusForbidden || hasSessionCookie(res.cookies) || !strings.Contains(res.body, "zoe@corp.example") {
		t.Fatalf("status %d\n%s", res.status, res.body)
	}
	if f := e.failures(); len(f) != 1 || f[0] != "not_allowed" {
		t.Fatalf("failures %v", f)
	}
	// With the group allowed the same user gets in.
	e2 := newEnv(t, func(c *oidc.Config) { c.Allow = idp.AllowRules{Groups: []string{"mcp-users"}} })
	b2 := e2.browser()
	v2 := oauth2.GenerateVerifier()
	if p := e2.finish(b2, e2.atProvider(b2, e2.startUpstream(b2, v2)), v2); p.Subject == "" {
		t.Fatal("no subject")
	}
}

// TestDiscoveryIssuerMismatch: a discovery document naming another issuer is
// never used; the provider button ends on the idp's error page.
func TestDiscoveryIssuerMismatch(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) {
		liar := testop.New(t, c.RedirectURL)
		liar.Set(func(o *testop.OP) { o.DiscoveryIssuer = "https://evil.example" })
		c.Issuer = liar.Issuer
	})
	b := e.browser()
	page := b.get(e.authorizeURL(oauth2.GenerateVerifier()))
	csrf := csrfRE.FindStringSubmatch(page.body)
	if csrf == nil {
		t.Fatalf("no login page: %d", page.status)
	}
	res := b.do(http.MethodPost, e.srv.URL+"/login/corp", url.Values{"csrf_token": {csrf[1]}, "return_to": {"/"}})
	if res.status != http.StatusBadGateway || res.location != "" || hasSessionCookie(res.cookies) {
		t.Fatalf("status %d location %q", res.status, res.location)
	}
	if f := e.failures(); len(f) != 1 || f[0] != "begin_failed" {
		t.Fatalf("failures %v", f)
	}
}

func TestConfigValidation(t *testing.T) {
	st, err := bboltstore.Open(t.TempDir()+"/db", bboltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := func() oidc.Config {
		return oidc.Config{UpstreamConfig: idp.UpstreamConfig{Name: "corp"}, Issuer: "https://login.example.com", ClientID: "id", RedirectURL: "https://auth.example.com/login/corp/callback", Store: st,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HTTPClient: &http.Client{Transport: failingTransport{}}}
	}
	tests := []struct {
		name string
		mut  func(*oidc.Config)
		ok   bool
	}{
		{"valid", func(*oidc.Config) {}, true},
		{"loopback http issuer", func(c *oidc.Config) { c.Issuer = "http://127.0.0.1:9999" }, true},
		{"http issuer", func(c *oidc.Config) { c.Issuer = "http://login.example.com" }, false},
		{"issuer with query", func(c *oidc.Config) { c.Issuer = "https://login.example.com/?x=1" }, false},
		{"no client id", func(c *oidc.Config) { c.ClientID = "" }, false},
		{"bad name", func(c *oidc.Config) { c.Name = "Corp SSO" }, false},
		{"redirect of another provider", func(c *oidc.Config) { c.RedirectURL = "https://auth.example.com/login/other/callback" }, false},
		{"http redirect", func(c *oidc.Config) { c.RedirectURL = "http://auth.example.com/login/corp/callback" }, false},
		{"no store", func(c *oidc.Config) { c.Store = nil }, false},
		{"javascript icon", func(c *oidc.Config) { c.IconURL = "javascript:alert(1)" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mut(&c)
			_, err := oidc.New(context.Background(), c)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("test: no network")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// setParam sets (or, with an empty value, removes) a query parameter.
func setParam(t *testing.T, s, k, v string) string {
	t.Helper()
	u := mustURL(t, s)
	q := u.Query()
	if v == "" {
		q.Del(k)
	} else {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// bindingCookie returns the browser's OIDC binding cookie.
func bindingCookie(t *testing.T, b *browser, e *env) *http.Cookie {
	t.Helper()
	for _, c := range b.c.Jar.Cookies(mustURL(t, e.srv.URL)) {
		if c.Name == "__Host-"+oidc.CookiePrefix+"corp" {
			return c
		}
	}
	t.Fatal("no binding cookie")
	return nil
}

// TestUserInfo: with UserInfo on, claims missing from the ID token come
// from the userinfo endpoint, whose subject must be the ID token's.
func TestUserInfo(t *testing.T) {
	stripIDToken := func(o *testop.OP) {
		o.Mutate = func(c jwt.MapClaims) { delete(c, "groups"); delete(c, "email"); delete(c, "email_verified") }
	}
	t.Run("fills missing claims", func(t *testing.T) {
		e := newEnvOP(t, stripIDToken, func(c *oidc.Config) { c.UserInfo = true })
		b := e.browser()
		v := oauth2.GenerateVerifier()
		e.finish(b, e.atProvider(b, e.startUpstream(b, v)), v)
		id, ok := b.whoami(e)
		if !ok || id.Email != "zoe@corp.example" || !id.EmailVerified || strings.Join(id.Groups, ",") != "staff,mcp-users" {
			t.Fatalf("identity %+v", id)
		}
	})
	t.Run("off: only the ID token", func(t *testing.T) {
		e := newEnvOP(t, stripIDToken, nil)
		b := e.browser()
		v := oauth2.GenerateVerifier()
		e.finish(b, e.atProvider(b, e.startUpstream(b, v)), v)
		if id, ok := b.whoami(e); !ok || id.Email != "" || len(id.Groups) != 0 {
			t.Fatalf("identity %+v", id)
		}
	})
	t.Run("subject mismatch refused", func(t *testing.T) {
		e := newEnvOP(t, func(o *testop.OP) { stripIDToken(o); o.UserinfoSub = "someone-else" }, func(c *oidc.Config) { c.UserInfo = true })
		b := e.browser()
		res := b.get(e.atProvider(b, e.startUpstream(b, oauth2.GenerateVerifier())))
		if res.status != http.StatusBadRequest || hasSessionCookie(res.cookies) {
			t.Fatalf("status %d", res.status)
		}
		if f := e.failures(); len(f) != 1 || f[0] != "userinfo_failed" {
			t.Fatalf("failures %v", f)
		}
	})
}

// TestProviderUnreachable: the OP goes down between the user's sign-in at
// it and our token request. The page names the provider and says to try
// again; the refusal is audited as an outage, and nobody is signed in.
func TestProviderUnreachable(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	cb := e.atProvider(b, e.startUpstream(b, oauth2.GenerateVerifier()))
	e.op.Close()
	res := b.get(cb)
	if res.status != http.StatusBadGateway || !strings.Contains(res.body, "We could not reach Corp SSO (corp) right now; try again in a minute") ||
		strings.Contains(res.body, "on our side") {
		t.Fatalf("status %d, body:\n%s", res.status, res.body)
	}
	if hasSessionCookie(res.cookies) {
		t.Fatal("outage page set a session cookie")
	}
	if f := e.failures(); len(f) == 0 || f[len(f)-1] != idp.ReasonTokenEndpointUnreachable {
		t.Fatalf("audited failures %v", f)
	}
}
