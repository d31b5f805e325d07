package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// FuzzTokenRequest throws hostile bodies, content types and Authorization
// headers at /token: it never panics, never answers 200 (no code or refresh
// token can be guessed), never answers 5xx (the store is healthy), always
// sends no-store, and the strict form parser never lets a repeated
// parameter through.
func FuzzTokenRequest(f *testing.F) {
	h := newHarness(f)
	code := h.code("app", appRedirect)
	seeds := []struct{ body, ctype, auth string }{
		{h.exchangeForm("app", code, appRedirect, testOtherVerifier).Encode(), "application/x-www-form-urlencoded", ""},
		{"grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_verifier=" + testVerifier + "&client_id=app", "application/x-www-form-urlencoded", ""},
		{"grant_type=refresh_token&refresh_token=abc&client_id=app&scope=read+write", "application/x-www-form-urlencoded; charset=utf-8", ""},
		{"grant_type=refresh_token&refresh_token=abc&resource=a&resource=b", "application/x-www-form-urlencoded", "Basic " + "Y29uZjp4"},
		{"grant_type=authorization_code&code=a&code=b", "application/x-www-form-urlencoded", ""},
		{"grant_type=%zz&client_id=app", "application/x-www-form-urlencoded", ""},
		{"client_id=conf&client_secret=" + testSecret + "&grant_type=password", "application/x-www-form-urlencoded", "Basic Y29uZjp4"},
		{`{"grant_type":"authorization_code"}`, "application/json", ""},
		{"grant_type=authorization_code;code=x", "application/x-www-form-urlencoded", "Bearer abc"},
		{"", "", "Basic !!!"},
		{strings.Repeat("a=b&", 100), "application/x-www-form-urlencoded", "Basic " + "JTpfJQ=="},
	}
	for _, s := range seeds {
		f.Add(s.body, s.ctype, s.auth)
	}
	f.Fuzz(func(t *testing.T, body, ctype, auth string) {
		r := httptest.NewRequest(http.MethodPost, h.issuer+"/token", strings.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := h.serve(r)
		if w.Code == http.StatusOK || w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("no no-store on %d", w.Code)
		}
		if oauthError(t, w) == "" {
			t.Fatalf("status %d without an OAuth error: %s", w.Code, w.Body)
		}
		if form, e := parseFormBody(body); e == nil {
			for k, v := range form {
				if k != "resource" && len(v) != 1 {
					t.Fatalf("parameter %q repeated after parsing", k)
				}
				if k != "resource" && v[0] == "" {
					t.Fatalf("empty parameter %q kept", k)
				}
			}
		} else if _, err := url.ParseQuery(body); err == nil && e.Code != oauth.CodeInvalidRequest {
			t.Fatalf("parse error code %q", e.Code)
		}
	})
}
