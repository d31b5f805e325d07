package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// End to end with golang.org/x/oauth2 against a real HTTP server and a real
// bbolt store: authorize (login, consent) -> code -> Exchange -> refresh
// through a TokenSource -> revoke -> refresh refused.
func TestFlowEndToEndWithXOAuth2(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, client, redirect string
		consent                bool
	}{
		{"owned client", "app", "http://127.0.0.1:53682/callback", false},
		{"registered client with consent", "dcr-1", "http://localhost:53682/cb", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			conf := &oauth2.Config{
				ClientID:    tc.client,
				Endpoint:    oauth2.Endpoint{AuthURL: h.ts.URL + "/authorize", TokenURL: h.ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
				RedirectURL: tc.redirect,
				Scopes:      []string{"read", "offline_access"},
			}
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("state-xyz", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource))

			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := browser.Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("X-Test-Page") != "login" {
				t.Fatalf("expected the login page, got %d", resp.StatusCode)
			}
			// The hosted login signs the user in and sends them back.
			base, _ := url.Parse(h.ts.URL)
			jar.SetCookies(base, []*http.Cookie{{Name: "test_user", Value: "alice"}})
			resp, err = browser.Get(h.ts.URL + resp.Header.Get("X-Test-Return"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tc.consent {
				if resp.Header.Get("X-Test-Page") != "consent" {
					t.Fatalf("expected consent, got %d", resp.StatusCode)
				}
				form := url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}
				resp, err = browser.PostForm(h.ts.URL+resp.Header.Get("X-Test-Action"), form)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", resp.StatusCode)
			}
			cb, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || !strings.HasPrefix(cb.String(), tc.redirect+"?") {
				t.Fatalf("callback %q", resp.Header.Get("Location"))
			}
			if cb.Query().Get("state") != "state-xyz" || cb.Query().Get("iss") != h.issuer {
				t.Fatalf("callback params %v", cb.Query())
			}

			tok, err := conf.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", testResource))
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Expiry.IsZero() {
				t.Fatalf("token %+v", tok)
			}
			c := h.claims(tok.AccessToken)
			if c["aud"] != testResource || c["sub"] != "alice" || c["client_id"] != tc.client || c["scope"] != "read offline_access" {
				t.Fatalf("claims %v", c)
			}

			// Refresh through a TokenSource (the Go SDK omits resource).
			expired := *tok
			expired.Expiry = time.Now().Add(-time.Minute)
			refreshed, err := conf.TokenSource(ctx, &expired).Token()
			if err != nil {
				t.Fatal(err)
			}
			if refreshed.AccessToken == tok.AccessToken || refreshed.RefreshToken == tok.RefreshToken || refreshed.RefreshToken == "" {
				t.Fatal("refresh did not rotate")
			}
			if h.claims(refreshed.AccessToken)["aud"] != testResource {
				t.Fatal("refresh lost the resource binding")
			}

			// Revoke the refresh token (RFC 7009), then refresh is refused.
			resp, err = http.PostForm(h.ts.URL+"/revoke", url.Values{"client_id": {tc.client}, "token": {refreshed.RefreshToken}, "token_type_hint": {"refresh_token"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			again := *refreshed
			again.Expiry = time.Now().Add(-time.Minute)
			_, err = conf.TokenSource(ctx, &again).Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != oauth.CodeInvalidGrant || re.Response.StatusCode != 400 {
				t.Fatalf("refresh after revoke: %v", err)
			}
			if re.Response.Header.Get("Cache-Control") != "no-store" {
				t.Fatal("token error without no-store")
			}
		})
	}
}

// A confidential owned client with client_secret_basic through x/oauth2.
func TestFlowConfidentialClientWithXOAuth2(t *testing.T) {
	h := newHarness(t)
	conf := &oauth2.Config{
		ClientID: "conf", ClientSecret: testSecret, RedirectURL: "https://conf.example.com/cb",
		Endpoint: oauth2.Endpoint{AuthURL: h.ts.URL + "/authorize", TokenURL: h.ts.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	u, _ := url.Parse(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource)))
	code := h.codeFrom(h.authorize(u.Query(), "alice"))
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token %+v", tok)
	}
	bad := *conf
	bad.ClientSecret = "wrong-wrong-wrong-wrong"
	code = h.codeFrom(h.authorize(u.Query(), "alice"))
	_, err = bad.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != oauth.CodeInvalidClient || re.Response.StatusCode != 401 {
		t.Fatalf("wrong secret: %v", err)
	}
}
