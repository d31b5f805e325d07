package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
	"github.com/mcpauth/caddy-mcpauth/storage"
)

const appRedirect = "http://127.0.0.1:4000/callback"

// Requirements 2, 6, 7: every refusal of a code exchange, with its status and
// error, and whether the code stays redeemable (syntax errors before the store
// is touched) or is burned (a failed check on the code: documented choice).
func TestTokenExchangeRefusals(t *testing.T) {
	h := newHarness(t)
	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
	}
	cases := []struct {
		name   string
		client string // which client the code is for (default app)
		body   func(f url.Values) string
		req    func(r *http.Request)
		status int
		err    string
		burned bool
	}{
		{name: "wrong content type", req: func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "no content type", req: func(r *http.Request) { r.Header.Del("Content-Type") }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "GET", req: func(r *http.Request) { r.Method = http.MethodGet }, status: 405, err: oauth.CodeInvalidRequest},
		{name: "parameters in the URL", req: func(r *http.Request) { r.URL.RawQuery = "code_verifier=x" }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "repeated code", body: func(f url.Values) string { f.Add("code", "x"); return f.Encode() }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "repeated client_id", body: func(f url.Values) string { f.Add("client_id", "app"); return f.Encode() }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "malformed body", body: func(f url.Values) string { return f.Encode() + "&%zz" }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "body too large", body: func(f url.Values) string { return f.Encode() + "&pad=" + strings.Repeat("a", maxFormBytes) }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "missing code", body: func(f url.Values) string { f.Del("code"); return f.Encode() }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "missing code_verifier", body: func(f url.Values) string { f.Del("code_verifier"); return f.Encode() }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "empty code_verifier", body: func(f url.Values) string { f.Set("code_verifier", ""); return f.Encode() }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "missing grant_type", body: func(f url.Values) string { f.Del("grant_type"); return f.Encode() }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "unsupported grant_type", body: func(f url.Values) string { f.Set("grant_type", "password"); return f.Encode() }, status: 400, err: oauth.CodeUnsupportedGrantType},
		{name: "client_credentials", body: func(f url.Values) string { f.Set("grant_type", "client_credentials"); return f.Encode() }, status: 400, err: oauth.CodeUnsupportedGrantType},
		{name: "missing client_id", body: func(f url.Values) string { f.Del("client_id"); return f.Encode() }, status: 401, err: oauth.CodeInvalidClient},
		{name: "unknown client", body: func(f url.Values) string { f.Set("client_id", "nobody"); return f.Encode() }, status: 401, err: oauth.CodeInvalidClient},
		{name: "public client sends a secret", body: func(f url.Values) string { f.Set("client_secret", "guess"); return f.Encode() }, status: 401, err: oauth.CodeInvalidClient},
		{name: "bearer authorization header", req: func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") }, status: 401, err: oauth.CodeInvalidClient},
		{name: "confidential without secret", client: "conf", status: 401, err: oauth.CodeInvalidClient},
		{name: "confidential wrong secret (basic)", client: "conf", body: func(f url.Values) string { f.Del("client_id"); return f.Encode() }, req: basic("conf", "wrong-wrong-wrong-wrong"), status: 401, err: oauth.CodeInvalidClient},
		{name: "confidential wrong secret (post)", client: "conf", body: func(f url.Values) string { f.Set("client_secret", "wrong-wrong-wrong"); return f.Encode() }, status: 401, err: oauth.CodeInvalidClient},
		{name: "confidential both methods", client: "conf", body: func(f url.Values) string { f.Set("client_secret", testSecret); return f.Encode() }, req: basic("conf", testSecret), status: 400, err: oauth.CodeInvalidRequest},
		{name: "basic id differs from client_id", client: "conf", req: basic("app", testSecret), status: 400, err: oauth.CodeInvalidRequest},
		{name: "grant not allowed for client", client: "norefresh", body: func(f url.Values) string {
			f.Set("grant_type", oauth.GrantRefreshToken)
			f.Set("refresh_token", "x")
			return f.Encode()
		}, status: 400, err: oauth.CodeUnauthorizedClient},
		// Checks on the code itself: the code is burned.
		{name: "wrong redirect_uri", body: func(f url.Values) string { f.Set("redirect_uri", "http://127.0.0.1:4001/callback"); return f.Encode() }, status: 400, err: oauth.CodeInvalidGrant, burned: true},
		{name: "wrong verifier", body: func(f url.Values) string { f.Set("code_verifier", testOtherVerifier); return f.Encode() }, status: 400, err: oauth.CodeInvalidGrant, burned: true},
		{name: "verifier is the challenge (plain)", body: func(f url.Values) string { f.Set("code_verifier", s256(testVerifier)); return f.Encode() }, status: 400, err: oauth.CodeInvalidGrant, burned: true},
		{name: "malformed verifier", body: func(f url.Values) string { f.Set("code_verifier", "short"); return f.Encode() }, status: 400, err: oauth.CodeInvalidGrant, burned: true},
		{name: "code of another client", body: func(f url.Values) string { f.Set("client_id", "app2"); return f.Encode() }, status: 400, err: oauth.CodeInvalidGrant, burned: true},
		{name: "unknown code", body: func(f url.Values) string { f.Set("code", "nope"); return f.Encode() }, status: 400, err: oauth.CodeInvalidGrant},
		{name: "other resource", body: func(f url.Values) string { f.Set("resource", testResource2); return f.Encode() }, status: 400, err: oauth.CodeInvalidTarget, burned: true},
		{name: "two resources", body: func(f url.Values) string {
			f.Add("resource", testResource)
			f.Add("resource", testResource)
			return f.Encode()
		}, status: 400, err: oauth.CodeInvalidTarget, burned: true},
	}
	redirects := map[string]string{"app": appRedirect, "conf": "https://conf.example.com/cb", "norefresh": "https://norefresh.example.com/cb"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.client
			if client == "" {
				client = "app"
			}
			code := h.code(client, redirects[client])
			grantsBefore := len(h.grants())
			f := h.exchangeForm(client, code, redirects[client], testVerifier)
			body := f.Encode()
			if tc.body != nil {
				body = tc.body(f)
			}
			mods := []func(*http.Request){}
			if tc.req != nil {
				mods = append(mods, tc.req)
			}
			w := h.post("/token", body, mods...)
			if w.Code != tc.status || oauthError(t, w) != tc.err {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, tc.status, tc.err)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
				t.Fatalf("error without no-store: %v", w.Header())
			}
			if tc.status == 401 && strings.Contains(tc.name, "basic") && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 to a Basic request without WWW-Authenticate")
			}
			if n := len(h.grants()); n != grantsBefore {
				t.Fatalf("grants %d -> %d", grantsBefore, n)
			}
			// Now the legitimate exchange.
			good := h.exchangeForm(client, code, redirects[client], testVerifier)
			var gmods []func(*http.Request)
			if client == "conf" {
				good.Del("client_id")
				gmods = append(gmods, basic("conf", testSecret))
			}
			w = h.token(good, gmods...)
			if tc.burned {
				if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
					t.Fatalf("burned code redeemed: %d %s", w.Code, w.Body)
				}
				if n := len(h.grants()); n != grantsBefore {
					t.Fatalf("grants %d -> %d", grantsBefore, n)
				}
			} else if w.Code != 200 {
				t.Fatalf("code not redeemable after a refusal that must not burn it: %d %s", w.Code, w.Body)
			}
		})
	}
}

// Confidential clients: both secret methods work (form-urlencoded Basic).
func TestTokenConfidentialClient(t *testing.T) {
	h := newHarness(t)
	for _, basic := range []bool{true, false} {
		code := h.code("conf", "https://conf.example.com/cb")
		f := h.exchangeForm("conf", code, "https://conf.example.com/cb", testVerifier)
		var mods []func(*http.Request)
		if basic {
			f.Del("client_id")
			mods = append(mods, func(r *http.Request) { r.SetBasicAuth("conf", url.QueryEscape(testSecret)) })
		} else {
			f.Set("client_secret", testSecret)
		}
		w := h.token(f, mods...)
		if w.Code != 200 {
			t.Fatalf("basic=%v: %d %s", basic, w.Code, w.Body)
		}
	}
}

// Requirement 2: a code_verifier for a code that had no challenge is refused
// (downgrade), and nothing is issued.
func TestTokenPKCEDowngrade(t *testing.T) {
	h := newHarness(t)
	code := "downgrade-code-0123456789"
	now := h.clock.Now()
	if err := h.store.SaveCode(context.Background(), storage.AuthCode{Hash: hashToken(code), ClientID: "app", RedirectURI: appRedirect,
		Subject: "alice", Scopes: []string{"read"}, Resource: testResource, GrantID: "g-downgrade", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	w := h.token(h.exchangeForm("app", code, appRedirect, testVerifier))
	if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant || !strings.Contains(w.Body.String(), "downgrade") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if n := len(h.grants()); n != 0 {
		t.Fatalf("%d grants", n)
	}
}

// Requirement 6: a second valid redemption revokes what the first produced;
// a replay with a wrong verifier (or from another client) revokes nothing.
func TestTokenCodeReplay(t *testing.T) {
	h := newHarness(t)
	t.Run("valid replay revokes the first grant", func(t *testing.T) {
		code := h.code("app", appRedirect)
		first := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
		sid := h.claims(first.AccessToken)["sid"].(string)
		w := h.token(h.exchangeForm("app", code, appRedirect, testVerifier))
		if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("replay: %d %s", w.Code, w.Body)
		}
		if ok, err := h.srv.Active(context.Background(), sid, "app"); ok || err != nil {
			t.Fatalf("grant still active after replay (%v)", err)
		}
		w = h.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "client_id": {"app"}, "refresh_token": {first.RefreshToken}})
		if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("refresh after replay: %d %s", w.Code, w.Body)
		}
		if evs := h.audit("code.replay"); len(evs) != 1 || evs[0].Outcome != "grant_revoked" {
			t.Fatalf("audit %+v", evs)
		}
	})
	for _, tc := range []struct {
		name string
		form func(code string) url.Values
	}{
		{"wrong verifier", func(code string) url.Values { return h.exchangeForm("app", code, appRedirect, testOtherVerifier) }},
		{"another client", func(code string) url.Values { return h.exchangeForm("app2", code, appRedirect, testVerifier) }},
	} {
		t.Run("replay with "+tc.name+" revokes nothing", func(t *testing.T) {
			code := h.code("app", appRedirect)
			first := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
			sid := h.claims(first.AccessToken)["sid"].(string)
			active := h.activeGrants()
			w := h.token(tc.form(code))
			if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
				t.Fatalf("replay: %d %s", w.Code, w.Body)
			}
			if ok, err := h.srv.Active(context.Background(), sid, "app"); !ok || err != nil {
				t.Fatalf("grant revoked by an invalid replay (%v)", err)
			}
			if h.activeGrants() != active {
				t.Fatal("grants changed")
			}
			h.mustToken(url.Values{"grant_type": {oauth.GrantRefreshToken}, "client_id": {"app"}, "refresh_token": {first.RefreshToken}})
		})
	}
	t.Run("expired code", func(t *testing.T) {
		code := h.code("app", appRedirect)
		h.clock.Advance(DefaultCodeTTL + time.Second)
		w := h.token(h.exchangeForm("app", code, appRedirect, testVerifier))
		if w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
}

// Requirement 6 under concurrency: 50 goroutines redeem one code over HTTP,
// exactly one gets tokens; the 49 valid replays revoke its grant.
func TestTokenConcurrentRedemption(t *testing.T) {
	h := newHarness(t)
	code := h.code("app", appRedirect)
	body := h.exchangeForm("app", code, appRedirect, testVerifier).Encode()
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			resp, err := h.ts.Client().Post(h.ts.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}(i)
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 400:
		default:
			t.Fatalf("unexpected status %d", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d successful redemptions, want exactly 1", ok)
	}
	if gs := h.grants(); len(gs) != 1 || !gs[0].Revoked() {
		t.Fatalf("grants %+v: want one, revoked by the replays", gs)
	}
}

func refreshForm(client, rt string) url.Values {
	return url.Values{"grant_type": {oauth.GrantRefreshToken}, "client_id": {client}, "refresh_token": {rt}}
}

// OAuth 2.1 §4.1.3: redirect_uri is optional at /token. The code is bound to
// the redirect URI used at /authorize (and PKCE binds the exchange to that
// request), so an absent redirect_uri is accepted; a present one must equal
// it exactly, else invalid_grant and the code is burned.
func TestTokenExchangeRedirectURI(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		name     string
		redirect func(f url.Values)
		status   int
		err      string
	}{
		{"absent", func(f url.Values) { f.Del("redirect_uri") }, 200, ""},
		{"present and equal", func(url.Values) {}, 200, ""},
		{"present and different", func(f url.Values) { f.Set("redirect_uri", "https://app.example.com/other") }, 400, oauth.CodeInvalidGrant},
		{"another loopback port", func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:4001/callback") }, 400, oauth.CodeInvalidGrant},
		{"trailing slash", func(f url.Values) { f.Set("redirect_uri", appRedirect+"/") }, 400, oauth.CodeInvalidGrant},
	} {
		t.Run(c.name, func(t *testing.T) {
			code := h.code("app", appRedirect)
			f := h.exchangeForm("app", code, appRedirect, testVerifier)
			c.redirect(f)
			w := h.token(f)
			if w.Code != c.status || (c.err != "" && oauthError(t, w) != c.err) {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, c.status, c.err)
			}
			if c.status != 200 {
				// The refusal burned the code.
				if w := h.token(h.exchangeForm("app", code, appRedirect, testVerifier)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
					t.Fatalf("code redeemable after a wrong redirect_uri: %d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// Requirement 37: RefreshGrace sets the lost-response window; NoRefreshGrace
// is strict rotation.
func TestTokenRefreshGraceConfig(t *testing.T) {
	for _, c := range []struct {
		name    string
		grace   time.Duration
		after   time.Duration
		retryOK bool
	}{
		{"custom window, inside", 5 * time.Minute, 4 * time.Minute, true},
		{"custom window, at its end", 5 * time.Minute, 5 * time.Minute, false},
		{"strict", NoRefreshGrace, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *Config) { cfg.RefreshGrace = c.grace })
			code := h.code("app", appRedirect)
			t0 := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
			t1 := h.mustToken(refreshForm("app", t0.RefreshToken))
			h.clock.Advance(c.after)
			w := h.token(refreshForm("app", t0.RefreshToken))
			if c.retryOK != (w.Code == 200) {
				t.Fatalf("retry of the rotated-out token: %d %s, want success %v", w.Code, w.Body, c.retryOK)
			}
			if !c.retryOK {
				if oauthError(t, w) != oauth.CodeInvalidGrant {
					t.Fatalf("retry refused with %s", w.Body)
				}
				if w := h.token(refreshForm("app", t1.RefreshToken)); w.Code != 400 {
					t.Fatalf("family survived reuse: %d %s", w.Code, w.Body)
				}
			}
		})
	}
	h := newHarness(t)
	cfg := h.srv.cfg
	cfg.RefreshGrace = MaxRefreshGrace + time.Second
	if _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), "refresh grace") {
		t.Fatalf("a refresh grace above the maximum: %v", err)
	}
}

// Requirement 9: rotation on every use, the lost-response window, reuse
// revokes the family, scope can only narrow, client binding.
func TestTokenRefresh(t *testing.T) {
	h := newHarness(t)
	start := func(t *testing.T, scope string) tokenJSON {
		code := h.code("app", appRedirect, func(q url.Values) { q.Set("scope", scope) })
		return h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	}
	t.Run("rotation and reuse", func(t *testing.T) {
		t0 := start(t, "read write")
		if t0.RefreshToken == "" || t0.Scope != "read write" || t0.TokenType != "Bearer" || t0.ExpiresIn != 3600 {
			t.Fatalf("first response %+v", t0)
		}
		t1 := h.mustToken(refreshForm("app", t0.RefreshToken))
		if t1.RefreshToken == "" || t1.RefreshToken == t0.RefreshToken || t1.Scope != "read write" {
			t.Fatalf("rotation %+v", t1)
		}
		// Lost response: t1 never arrived; t0 is presented again and works
		// once more, replacing the unused t1.
		t2 := h.mustToken(refreshForm("app", t0.RefreshToken))
		if w := h.token(refreshForm("app", t1.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("replaced token still works: %d %s", w.Code, w.Body)
		}
		// The family was revoked by that reuse of t1.
		sid := h.claims(t2.AccessToken)["sid"].(string)
		if ok, _ := h.srv.Active(context.Background(), sid, "app"); ok {
			t.Fatal("family not revoked after reuse")
		}
		if w := h.token(refreshForm("app", t2.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("revoked family refreshed: %d %s", w.Code, w.Body)
		}
		if evs := h.audit("refresh.reuse"); len(evs) == 0 {
			t.Fatal("no refresh.reuse audit event")
		}
	})
	t.Run("reuse after the new token was used", func(t *testing.T) {
		t0 := start(t, "read")
		t1 := h.mustToken(refreshForm("app", t0.RefreshToken))
		t2 := h.mustToken(refreshForm("app", t1.RefreshToken))
		if w := h.token(refreshForm("app", t0.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("reuse: %d %s", w.Code, w.Body)
		}
		if w := h.token(refreshForm("app", t2.RefreshToken)); w.Code != 400 {
			t.Fatalf("family survived reuse: %d", w.Code)
		}
	})
	t.Run("lost-response retry is single use", func(t *testing.T) {
		t0 := start(t, "read")
		h.mustToken(refreshForm("app", t0.RefreshToken))
		t2 := h.mustToken(refreshForm("app", t0.RefreshToken)) // the one retry
		if evs := h.audit("token.issued"); evs[0].Detail["rotation"] != "lost_response_retry" {
			t.Fatalf("retry not audited as such: %+v", evs[0])
		}
		if w := h.token(refreshForm("app", t0.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("second retry: %d %s", w.Code, w.Body)
		}
		if w := h.token(refreshForm("app", t2.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("family survived a second retry: %d %s", w.Code, w.Body)
		}
	})
	t.Run("lost-response retry ends with the default window", func(t *testing.T) {
		t0 := start(t, "read")
		t1 := h.mustToken(refreshForm("app", t0.RefreshToken))
		h.clock.Advance(DefaultRefreshGrace)
		if w := h.token(refreshForm("app", t0.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("retry after the window: %d %s", w.Code, w.Body)
		}
		if w := h.token(refreshForm("app", t1.RefreshToken)); w.Code != 400 || oauthError(t, w) != oauth.CodeInvalidGrant {
			t.Fatalf("family survived a late retry: %d %s", w.Code, w.Body)
		}
	})
	refusals := []struct {
		name   string
		form   func(rt string) url.Values
		status int
		err    string
	}{
		{"wider scope", func(rt string) url.Values { f := refreshForm("app", rt); f.Set("scope", "read write"); return f }, 400, oauth.CodeInvalidScope},
		{"unknown scope", func(rt string) url.Values { f := refreshForm("app", rt); f.Set("scope", "admin"); return f }, 400, oauth.CodeInvalidScope},
		{"another client", func(rt string) url.Values { return refreshForm("app2", rt) }, 400, oauth.CodeInvalidGrant},
		{"other resource", func(rt string) url.Values { f := refreshForm("app", rt); f.Set("resource", testResource2); return f }, 400, oauth.CodeInvalidTarget},
		{"missing refresh_token", func(rt string) url.Values { f := refreshForm("app", rt); f.Del("refresh_token"); return f }, 400, oauth.CodeInvalidRequest},
		{"repeated refresh_token", func(rt string) url.Values { f := refreshForm("app", rt); f.Add("refresh_token", rt); return f }, 400, oauth.CodeInvalidRequest},
		{"unknown token", func(rt string) url.Values { return refreshForm("app", "nope") }, 400, oauth.CodeInvalidGrant},
	}
	for _, tc := range refusals {
		t.Run("refused without state change: "+tc.name, func(t *testing.T) {
			t0 := start(t, "read")
			before := h.activeGrants()
			w := h.token(tc.form(t0.RefreshToken))
			if w.Code != tc.status || oauthError(t, w) != tc.err {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, tc.status, tc.err)
			}
			if h.activeGrants() != before {
				t.Fatal("grants changed")
			}
			// The token was not rotated: it still works, and only once.
			t1 := h.mustToken(refreshForm("app", t0.RefreshToken))
			h.mustToken(refreshForm("app", t1.RefreshToken))
		})
	}
	t.Run("narrower scope", func(t *testing.T) {
		t0 := start(t, "read write")
		t1 := h.mustToken(func() url.Values { f := refreshForm("app", t0.RefreshToken); f.Set("scope", "read"); return f }())
		if t1.Scope != "read" || h.claims(t1.AccessToken)["scope"] != "read" {
			t.Fatalf("narrowed %+v", t1)
		}
		// The grant keeps its scopes.
		t2 := h.mustToken(refreshForm("app", t1.RefreshToken))
		if t2.Scope != "read write" {
			t.Fatalf("grant scope lost: %q", t2.Scope)
		}
	})
	t.Run("no refresh token without the grant type", func(t *testing.T) {
		code := h.code("norefresh", "https://norefresh.example.com/cb")
		tok := h.mustToken(h.exchangeForm("norefresh", code, "https://norefresh.example.com/cb", testVerifier))
		if tok.RefreshToken != "" {
			t.Fatal("refresh token issued to a client without the refresh_token grant")
		}
	})
	t.Run("per-client access token lifetime", func(t *testing.T) {
		code := h.code("shortlived", "https://short.example.com/cb")
		tok := h.mustToken(h.exchangeForm("shortlived", code, "https://short.example.com/cb", testVerifier))
		c := h.claims(tok.AccessToken)
		if tok.ExpiresIn != 300 || int64(c["exp"].(float64)-c["iat"].(float64)) != 300 {
			t.Fatalf("expires_in %d claims %v", tok.ExpiresIn, c)
		}
	})
}

// Requirement 8: the access token is an RFC 9068 JWT with the right claims.
func TestTokenAccessTokenClaims(t *testing.T) {
	h := newHarness(t)
	code := h.code("app", appRedirect, func(q url.Values) { q.Set("scope", "read offline_access") })
	tok := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
	if !strings.Contains(string(hdr), `"typ":"at+jwt"`) || !strings.Contains(string(hdr), `"alg":"ES256"`) {
		t.Fatalf("header %s", hdr)
	}
	c := h.claims(tok.AccessToken)
	want := map[string]any{"iss": h.issuer, "sub": "alice", "aud": testResource, "client_id": "app", "scope": "read offline_access"}
	for k, v := range want {
		if c[k] != v {
			t.Fatalf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"exp", "iat", "jti", "sid"} {
		if _, ok := c[k]; !ok {
			t.Fatalf("claim %s missing", k)
		}
	}
}

// Requirement 7: resource binding through authorize, token, refresh and the
// JWT aud, each knob on and off.
func TestTokenResourceBinding(t *testing.T) {
	type step struct {
		authz   []string // resource values at /authorize (nil: none)
		client  string
		token   []string // resource values at /token
		refresh []string // resource values at refresh (nil: none)
	}
	cases := []struct {
		name       string
		policy     ResourcePolicy
		s          step
		authzErr   string
		tokenErr   string
		refreshErr string
		aud        string
	}{
		{name: "bound resource", policy: ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource2}, token: []string{testResource2}}, aud: testResource2},
		{name: "normalized", policy: ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true, Known: []string{"https://mcp.example.com"}},
			s: step{authz: []string{"HTTPS://MCP.Example.COM:443/"}, token: []string{"https://mcp.example.com"}, refresh: []string{"https://mcp.example.com/"}}, aud: "https://mcp.example.com"},
		{name: "path trailing slash is significant", policy: ResourcePolicy{Enabled: true, Known: []string{testResource}},
			s: step{authz: []string{testResource + "/"}}, authzErr: oauth.CodeInvalidTarget},
		{name: "token resource mismatch enforced", policy: ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource}, token: []string{testResource2}}, tokenErr: oauth.CodeInvalidTarget},
		{name: "token resource mismatch not enforced", policy: ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource}, token: []string{testResource2}}, aud: testResource},
		{name: "refresh without resource keeps binding", policy: ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource2}}, aud: testResource2},
		{name: "refresh without resource, keep off", policy: ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource2}}, aud: testResource2, refreshErr: oauth.CodeInvalidTarget},
		{name: "refresh to another resource", policy: ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource}, refresh: []string{testResource2}}, aud: testResource, refreshErr: oauth.CodeInvalidTarget},
		{name: "no resource: client audience fallback", policy: ResourcePolicy{Enabled: true, ClientAudienceFallback: true, KeepBindingOnRefresh: true, Known: []string{testResource}},
			s: step{client: "aud"}, aud: testClientAud},
		{name: "no resource: fallback off uses the only known", policy: ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: []string{testResource}},
			s: step{client: "aud"}, aud: testResource},
		{name: "no resource: configured default", policy: ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}, Default: testResource2},
			s: step{}, aud: testResource2},
		{name: "no resource: ambiguous", policy: ResourcePolicy{Enabled: true, KeepBindingOnRefresh: true, Known: []string{testResource, testResource2}},
			s: step{}, authzErr: oauth.CodeInvalidTarget},
		{name: "several resources at authorize", policy: ResourcePolicy{Enabled: true, Known: []string{testResource, testResource2}},
			s: step{authz: []string{testResource, testResource2}}, authzErr: oauth.CodeInvalidTarget},
		{name: "several resources at token", policy: ResourcePolicy{Enabled: true, EnforceOnTokenExchange: true, KeepBindingOnRefresh: true, Known: []string{testResource}},
			s: step{authz: []string{testResource}, token: []string{testResource, testResource}}, tokenErr: oauth.CodeInvalidTarget},
		{name: "disabled: parameter ignored", policy: ResourcePolicy{Enabled: false, Known: []string{testResource}},
			s: step{authz: []string{"https://anything.example.com/"}, token: []string{"https://anything.example.com/"}}, aud: testResource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Resources = tc.policy })
			client, uri := "app", appRedirect
			if tc.s.client == "aud" {
				client, uri = "aud", "https://aud.example.com/cb"
			}
			q := h.authzQuery(client, uri)
			q.Del("resource")
			for _, r := range tc.s.authz {
				q.Add("resource", r)
			}
			w := h.authorize(q, "alice")
			_, p := redirectParams(t, w)
			if tc.authzErr != "" {
				if p.Get("error") != tc.authzErr {
					t.Fatalf("authorize: %v, want %s", p, tc.authzErr)
				}
				return
			}
			if p.Get("error") != "" {
				t.Fatalf("authorize: %v", p)
			}
			f := h.exchangeForm(client, p.Get("code"), uri, testVerifier)
			for _, r := range tc.s.token {
				f.Add("resource", r)
			}
			tw := h.token(f)
			if tc.tokenErr != "" {
				if tw.Code != 400 || oauthError(t, tw) != tc.tokenErr {
					t.Fatalf("token: %d %s, want %s", tw.Code, tw.Body, tc.tokenErr)
				}
				if len(h.grants()) != 0 {
					t.Fatal("grant created")
				}
				return
			}
			tok := decodeToken(t, tw)
			if tw.Code != 200 {
				t.Fatalf("token: %d %s", tw.Code, tw.Body)
			}
			if aud := h.claims(tok.AccessToken)["aud"]; aud != tc.aud {
				t.Fatalf("aud %v, want %s", aud, tc.aud)
			}
			rf := refreshForm(client, tok.RefreshToken)
			for _, r := range tc.s.refresh {
				rf.Add("resource", r)
			}
			rw := h.token(rf)
			if tc.refreshErr != "" {
				if rw.Code != 400 || oauthError(t, rw) != tc.refreshErr {
					t.Fatalf("refresh: %d %s, want %s", rw.Code, rw.Body, tc.refreshErr)
				}
				again := refreshForm(client, tok.RefreshToken)
				again.Set("resource", tc.aud)
				h.mustToken(again) // not rotated
				return
			}
			rt := decodeToken(t, rw)
			if rw.Code != 200 || h.claims(rt.AccessToken)["aud"] != tc.aud {
				t.Fatalf("refresh: %d %s", rw.Code, rw.Body)
			}
		})
	}
}

// Requirements 8 and 14: no-store on every token response, CORS on /token
// (with mcp-protocol-version) but never on /authorize.
func TestTokenHeadersAndCORS(t *testing.T) {
	h := newHarness(t)
	code := h.code("app", appRedirect)
	w := h.token(h.exchangeForm("app", code, appRedirect, testVerifier), func(r *http.Request) { r.Header.Set("Origin", "http://localhost:6274") })
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("CORS on token: %v", w.Header())
	}
	for _, path := range []string{"/token", "/revoke", "/jwks.json", "/.well-known/oauth-authorization-server"} {
		r, _ := http.NewRequest(http.MethodOptions, h.issuer+path, nil)
		r.Header.Set("Origin", "http://localhost:6274")
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "content-type, mcp-protocol-version")
		pw := h.serve(r)
		if pw.Code/100 != 2 || !strings.Contains(strings.ToLower(pw.Header().Get("Access-Control-Allow-Headers")), "mcp-protocol-version") {
			t.Fatalf("preflight %s: %d %v", path, pw.Code, pw.Header())
		}
	}
	q := h.authzQuery("app", appRedirect)
	r, _ := http.NewRequest(http.MethodGet, h.issuer+"/authorize?"+q.Encode(), nil)
	r.Header.Set("Origin", "http://localhost:6274")
	r.AddCookie(&http.Cookie{Name: "test_user", Value: "alice"})
	aw := h.serve(r)
	if aw.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS on authorize: %v", aw.Header())
	}
	r, _ = http.NewRequest(http.MethodOptions, h.issuer+"/authorize", nil)
	r.Header.Set("Origin", "http://localhost:6274")
	r.Header.Set("Access-Control-Request-Method", "GET")
	if pw := h.serve(r); pw.Header().Get("Access-Control-Allow-Origin") != "" || pw.Code/100 == 2 {
		t.Fatalf("preflight on authorize: %d %v", pw.Code, pw.Header())
	}
}

// Audit events carry no secrets.
func TestTokenAuditHasNoSecrets(t *testing.T) {
	h := newHarness(t)
	code := h.code("app", appRedirect)
	tok := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	h.mustToken(refreshForm("app", tok.RefreshToken))
	h.token(h.exchangeForm("app", code, appRedirect, testVerifier)) // replay
	evs := h.audit("")
	types := map[string]bool{}
	for _, ev := range evs {
		types[ev.Type] = true
		for _, v := range ev.Detail {
			for _, secret := range []string{code, tok.RefreshToken, tok.AccessToken, testVerifier} {
				if strings.Contains(v, secret) {
					t.Fatalf("event %s leaks a secret", ev.Type)
				}
			}
		}
	}
	for _, typ := range []string{"code.issued", "token.issued", "code.replay"} {
		if !types[typ] {
			t.Fatalf("no %s event in %v", typ, types)
		}
	}
}

// Concurrent refreshes of one token over HTTP: no 5xx; the store
// serializes them, so the rotation and the one lost-response retry of the
// rotated-out token succeed, the third use is reuse and revokes the family,
// and the rest are refused (requirement 37).
func TestTokenConcurrentRefresh(t *testing.T) {
	h := newHarness(t)
	t0 := h.mustToken(h.exchangeForm("app", h.code("app", appRedirect), appRedirect, testVerifier))
	body := refreshForm("app", t0.RefreshToken).Encode()
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var issued []string
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.ts.Client().Post(h.ts.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var tok tokenJSON
			_ = json.NewDecoder(resp.Body).Decode(&tok)
			switch {
			case resp.StatusCode == 200:
				mu.Lock()
				issued = append(issued, tok.RefreshToken)
				mu.Unlock()
			case resp.StatusCode == 400 && tok.Error == oauth.CodeInvalidGrant:
			default:
				t.Errorf("status %d %s", resp.StatusCode, tok.Error)
			}
		}()
	}
	wg.Wait()
	g, err := h.store.GrantByRefresh(context.Background(), hashToken(t0.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	current := 0
	for _, rt := range issued {
		if string(hashToken(rt)) == string(g.RefreshHash) {
			current++
		}
	}
	if len(issued) != 2 || current != 1 || !g.Revoked() || g.RevokedReason != storage.ReasonRefreshReuse {
		t.Fatalf("%d issued, %d current, revoked=%v (%s)", len(issued), current, g.Revoked(), g.RevokedReason)
	}
}

// CIMD and DCR clients at /token: public, resolved per request; a client
// whose document no longer resolves, or a deleted DCR client, is refused and
// its grants stop being active.
func TestTokenThirdPartyClients(t *testing.T) {
	h := newHarness(t)
	approve := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}
	for _, c := range []struct{ id, uri string }{{testCIMDClient, "https://client.example.com/cb"}, {"dcr-1", "http://localhost:8080/cb"}} {
		t.Run(c.id, func(t *testing.T) {
			_, p := redirectParams(t, h.consentPost(h.authzQuery(c.id, c.uri), "alice", approve))
			tok := h.mustToken(h.exchangeForm(c.id, p.Get("code"), c.uri, testVerifier))
			sid := h.claims(tok.AccessToken)["sid"].(string)
			if ok, err := h.srv.Active(context.Background(), sid, c.id); !ok || err != nil {
				t.Fatalf("inactive: %v", err)
			}
			if c.id == testCIMDClient {
				h.resolver.mu.Lock()
				delete(h.resolver.clients, c.id)
				h.resolver.mu.Unlock()
			} else if err := h.store.DeleteClient(context.Background(), c.id); err != nil {
				t.Fatal(err)
			}
			if w := h.token(refreshForm(c.id, tok.RefreshToken)); w.Code != 401 || oauthError(t, w) != oauth.CodeInvalidClient {
				t.Fatalf("refresh by a vanished client: %d %s", w.Code, w.Body)
			}
			if c.id == "dcr-1" {
				if ok, _ := h.srv.Active(context.Background(), sid, c.id); ok {
					t.Fatal("grant of a deleted DCR client still active")
				}
			}
		})
	}
}

// The token endpoint is rate-limited per client IP when configured: past the
// burst, requests get 429 temporarily_unavailable and change nothing.
func TestTokenRateLimitPerIP(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TokenRatePerIP = 0.001; c.TokenBurstPerIP = 2 })
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {"app"}, "redirect_uri": {"http://127.0.0.1/callback"}, "code_verifier": {testVerifier}}
	for i := 0; i < 2; i++ {
		if w := h.token(form); w.Code != 400 {
			t.Fatalf("request %d within the burst: %d %s", i, w.Code, w.Body)
		}
	}
	w := h.token(form)
	if w.Code != 429 || oauthError(t, w) != "temporarily_unavailable" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d %s (Retry-After %q)", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	// The limit is per IP: another address is not affected.
	r := httptest.NewRequest(http.MethodPost, h.issuer+"/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.0.2.7:4000"
	if w := h.serve(r); w.Code != 400 {
		t.Fatalf("another IP: %d %s", w.Code, w.Body)
	}
}

// TestTokenEmailOnlyWhenVerified is requirement 36: the access token
// asserts a subject's email only when it is verified, and then says so with
// email_verified; a self-signup address nobody verified is left out.
func TestTokenEmailOnlyWhenVerified(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verified bool
	}{{"unverified email left out", false}, {"verified email asserted", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.UserEmail = func(_ context.Context, sub string) (string, bool) { return sub + "@example.com", tc.verified }
			})
			code := h.code("app", appRedirect)
			tok := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
			for _, at := range []string{tok.AccessToken, h.mustToken(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {tok.RefreshToken}, "client_id": {"app"}}).AccessToken} {
				c := h.claims(at)
				email, hasEmail := c["email"]
				if tc.verified != hasEmail || tc.verified && (email != "alice@example.com" || c["email_verified"] != true) {
					t.Fatalf("email claims: email=%v email_verified=%v", email, c["email_verified"])
				}
				if _, ok := c["email_verified"]; !tc.verified && ok {
					t.Fatal("email_verified asserted for an unverified email")
				}
			}
		})
	}
}

// Requirement 30: a refresh of a grant bound to a resource that is no longer
// served answers invalid_grant (the client starts a new authorization), not
// invalid_target (SDKs throw on it and the user stays stuck). A refresh that
// asks for an unknown resource is still invalid_target, and a refusal leaves
// the refresh token usable.
func TestRefreshAfterResourceRemoved(t *testing.T) {
	const other = "https://other.example.com/mcp"
	const unknown = "https://unknown.example.com/mcp"
	var cfg Config
	h := newHarness(t, func(c *Config) {
		c.Resources.Known = []string{testResource, other}
		cfg = *c
	})
	served := h.srv
	// The operator removes testResource (a Caddy reload builds a new server
	// on the same store).
	cfg.Resources.Known = []string{other}
	gone, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gone.Close() })
	for _, c := range []struct {
		name     string
		removed  bool
		resource []string
		keep     bool // KeepBindingOnRefresh
		want     string
	}{
		{"removed, no resource", true, nil, true, oauth.CodeInvalidGrant},
		{"removed, no resource, binding not kept", true, nil, false, oauth.CodeInvalidGrant},
		{"removed, the bound resource", true, []string{testResource}, true, oauth.CodeInvalidGrant},
		{"removed, a served resource", true, []string{other}, true, oauth.CodeInvalidGrant},
		{"removed, asks for an unknown resource", true, []string{unknown}, true, oauth.CodeInvalidTarget},
		{"removed, malformed resource", true, []string{"https://x.example/#f"}, true, oauth.CodeInvalidTarget},
		{"served, asks for an unknown resource", false, []string{unknown}, true, oauth.CodeInvalidTarget},
		{"served, asks for another served resource", false, []string{other}, true, oauth.CodeInvalidTarget},
		{"served, two resources", false, []string{testResource, other}, true, oauth.CodeInvalidTarget},
		{"served, binding not kept, no resource", false, nil, false, oauth.CodeInvalidTarget},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.srv = served
			t0 := h.mustToken(h.exchangeForm("app", h.code("app", appRedirect), appRedirect, testVerifier))
			if c.removed {
				h.srv = gone
			}
			keep := c.keep
			h.srv.cfg.Resources.KeepBindingOnRefresh = keep
			defer func() { h.srv.cfg.Resources.KeepBindingOnRefresh = true }()
			f := refreshForm("app", t0.RefreshToken)
			f["resource"] = c.resource
			w := h.token(f)
			if w.Code != http.StatusBadRequest || oauthError(t, w) != c.want {
				t.Fatalf("got %d %s, want 400 %s", w.Code, w.Body, c.want)
			}
			// No state change: the refresh token still works where its
			// resource is served.
			h.srv = served
			served.cfg.Resources.KeepBindingOnRefresh = true
			h.mustToken(refreshForm("app", t0.RefreshToken))
		})
	}
	h.srv = served
}
