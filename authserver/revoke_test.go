package authserver

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// Requirement 10 (RFC 7009): unknown tokens 200, another client's token
// refused with nothing changed, refresh and access tokens revoke the grant,
// storage failure 503.
func TestRevoke(t *testing.T) {
	h := newHarness(t)
	issue := func(t *testing.T) (tok tokenJSON, sid string) {
		code := h.code("app", appRedirect)
		tok = h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
		return tok, h.claims(tok.AccessToken)["sid"].(string)
	}
	revoke := func(form url.Values, mod ...func(*http.Request)) (int, string) {
		w := h.post("/revoke", form.Encode(), mod...)
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("revoke answer without no-store: %v", w.Header())
		}
		return w.Code, oauthError(t, w)
	}
	cases := []struct {
		name    string
		form    func(tok tokenJSON) url.Values
		mod     func(*http.Request)
		status  int
		err     string
		revoked bool
	}{
		{name: "refresh token", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
		}, status: 200, revoked: true},
		{name: "refresh token with a wrong hint", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {tok.RefreshToken}, "token_type_hint": {"access_token"}}
		}, status: 200, revoked: true},
		{name: "access token", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {tok.AccessToken}}
		}, status: 200, revoked: true},
		{name: "unknown token", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {"not-a-token"}}
		}, status: 200},
		{name: "unknown token with unknown hint", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {"not-a-token"}, "token_type_hint": {"weird"}}
		}, status: 200},
		{name: "forged jwt", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"}}
		}, status: 200},
		{name: "another client's refresh token", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app2"}, "token": {tok.RefreshToken}}
		}, status: 400, err: oauth.CodeUnauthorizedClient},
		{name: "another client's access token", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app2"}, "token": {tok.AccessToken}}
		}, status: 400, err: oauth.CodeUnauthorizedClient},
		{name: "missing token", form: func(tok tokenJSON) url.Values { return url.Values{"client_id": {"app"}} }, status: 400, err: oauth.CodeInvalidRequest},
		{name: "unauthenticated", form: func(tok tokenJSON) url.Values { return url.Values{"token": {tok.RefreshToken}} }, status: 401, err: oauth.CodeInvalidClient},
		{name: "unknown client", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"nobody"}, "token": {tok.RefreshToken}}
		}, status: 401, err: oauth.CodeInvalidClient},
		{name: "repeated token", form: func(tok tokenJSON) url.Values {
			return url.Values{"client_id": {"app"}, "token": {tok.RefreshToken, tok.RefreshToken}}
		}, status: 400, err: oauth.CodeInvalidRequest},
		{name: "GET", form: func(tok tokenJSON) url.Values { return url.Values{"client_id": {"app"}, "token": {tok.RefreshToken}} },
			mod: func(r *http.Request) { r.Method = http.MethodGet }, status: 405, err: oauth.CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, sid := issue(t)
			var mods []func(*http.Request)
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			status, e := revoke(tc.form(tok), mods...)
			if status != tc.status || e != tc.err {
				t.Fatalf("got %d %q, want %d %q", status, e, tc.status, tc.err)
			}
			active, err := h.srv.Active(context.Background(), sid, "app")
			if err != nil || active == tc.revoked {
				t.Fatalf("active=%v (%v), want %v", active, err, !tc.revoked)
			}
			w := h.token(refreshForm("app", tok.RefreshToken))
			if tc.revoked && w.Code != 400 {
				t.Fatalf("refresh after revocation: %d", w.Code)
			}
			if !tc.revoked && w.Code != 200 {
				t.Fatalf("refresh after refused revocation: %d %s", w.Code, w.Body)
			}
		})
	}
	t.Run("revoking twice", func(t *testing.T) {
		tok, _ := issue(t)
		for i := 0; i < 2; i++ {
			if status, e := revoke(url.Values{"client_id": {"app"}, "token": {tok.RefreshToken}}); status != 200 {
				t.Fatalf("round %d: %d %s", i, status, e)
			}
		}
	})
}

func TestRevokeStorageFailure(t *testing.T) {
	h := newHarness(t)
	code := h.code("app", appRedirect)
	tok := h.mustToken(h.exchangeForm("app", code, appRedirect, testVerifier))
	h.srv.audit.Flush()
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	w := h.post("/revoke", url.Values{"client_id": {"app"}, "token": {tok.RefreshToken}}.Encode())
	if w.Code != http.StatusServiceUnavailable || oauthError(t, w) != oauth.CodeTemporarilyUnavailable {
		t.Fatalf("got %d %s, want 503", w.Code, w.Body)
	}
	w = h.post("/revoke", url.Values{"client_id": {"app"}, "token": {"unknown"}}.Encode())
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("unknown token with a dead store: %d, want 503 (never 200)", w.Code)
	}
	w = h.token(refreshForm("app", tok.RefreshToken))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("token with a dead store: %d %s", w.Code, w.Body)
	}
}
