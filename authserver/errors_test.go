package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		basic      bool
		status     int
		code       string
		desc       string
		wantWWWAut bool
	}{
		{name: "invalid_grant", err: oauth.ErrInvalidGrant("code expired"), status: 400, code: "invalid_grant", desc: "code expired"},
		{name: "invalid_client with basic", err: oauth.ErrInvalidClient("bad secret"), basic: true, status: 401, code: "invalid_client", desc: "bad secret", wantWWWAut: true},
		{name: "invalid_client without basic", err: oauth.ErrInvalidClient("unknown client"), status: 401, code: "invalid_client", desc: "unknown client"},
		{name: "random error", err: errors.New("bolt: database corrupted at page 7"), status: 500, code: "server_error", desc: "internal error"},
		{name: "unavailable", err: oauth.ErrTemporarilyUnavailable("storage unavailable"), status: 503, code: "temporarily_unavailable", desc: "storage unavailable"},
		{name: "description sanitized", err: oauth.ErrInvalidRequest("bad \"x\"\\ \x01\n\u00e9end"), status: 400, code: "invalid_request", desc: "bad 'x'' end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/token", nil)
			if tt.basic {
				r.SetBasicAuth("client", "secret")
			}
			w := httptest.NewRecorder()
			WriteError(w, r, tt.err)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			h := w.Header()
			if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
				t.Fatalf("caching headers: %v", h)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", h.Get("Content-Type"))
			}
			if got := h.Get("WWW-Authenticate"); (got != "") != tt.wantWWWAut || (tt.wantWWWAut && !strings.HasPrefix(got, "Basic realm=")) {
				t.Fatalf("WWW-Authenticate %q", got)
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["error"] != tt.code || body["error_description"] != tt.desc {
				t.Fatalf("body %v", body)
			}
		})
	}
}

func TestRedirectError(t *testing.T) {
	const iss = "https://as.example"
	tests := []struct {
		name     string
		redirect string
		state    string
		err      error
		want     url.Values
		prefix   string
	}{
		{
			name: "plain", redirect: "https://app.example/cb", state: "xyz", err: oauth.ErrAccessDenied("user denied"),
			want:   url.Values{"error": {"access_denied"}, "error_description": {"user denied"}, "state": {"xyz"}, "iss": {iss}},
			prefix: "https://app.example/cb?",
		},
		{
			name: "existing query kept", redirect: "https://app.example/cb?tenant=a%20b&x=1", state: "s", err: oauth.ErrLoginRequired("no session"),
			want:   url.Values{"tenant": {"a b"}, "x": {"1"}, "error": {"login_required"}, "error_description": {"no session"}, "state": {"s"}, "iss": {iss}},
			prefix: "https://app.example/cb?tenant=a%20b&x=1&",
		},
		{
			name: "state and iss once even if registered query has them", redirect: "http://127.0.0.1:9999/cb?state=evil&iss=evil&keep=1", state: "good", err: oauth.ErrAccessDenied("no"),
			want:   url.Values{"keep": {"1"}, "error": {"access_denied"}, "error_description": {"no"}, "state": {"good"}, "iss": {iss}},
			prefix: "http://127.0.0.1:9999/cb?keep=1&",
		},
		{
			name: "no state", redirect: "cursor://anysphere.cursor-retrieval/oauth/callback", err: oauth.ErrInvalidScope("unknown scope"),
			want:   url.Values{"error": {"invalid_scope"}, "error_description": {"unknown scope"}, "iss": {iss}},
			prefix: "cursor://anysphere.cursor-retrieval/oauth/callback?",
		},
		{
			name: "random error is generic", redirect: "https://app.example/cb", state: "s", err: errors.New("secret internals"),
			want:   url.Values{"error": {"server_error"}, "error_description": {"internal error"}, "state": {"s"}, "iss": {iss}},
			prefix: "https://app.example/cb?",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			RedirectError(w, httptest.NewRequest(http.MethodPost, "/authorize", nil), tt.redirect, tt.state, iss, tt.err)
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", w.Code)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("missing no-store")
			}
			loc := w.Header().Get("Location")
			if !strings.HasPrefix(loc, tt.prefix) {
				t.Fatalf("location %q, want prefix %q", loc, tt.prefix)
			}
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			got := u.Query()
			if len(got) != len(tt.want) {
				t.Fatalf("query %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if len(got[k]) != 1 || got[k][0] != v[0] {
					t.Fatalf("param %s = %v, want exactly %v (query %v)", k, got[k], v, got)
				}
			}
		})
	}
	t.Run("unusable redirect is not followed", func(t *testing.T) {
		for _, bad := range []string{"", "https://app.example/cb#frag", "::nope", "/relative"} {
			w := httptest.NewRecorder()
			RedirectError(w, httptest.NewRequest(http.MethodGet, "/authorize", nil), bad, "s", iss, oauth.ErrAccessDenied("x"))
			if w.Code != 400 || w.Header().Get("Location") != "" {
				t.Fatalf("%q: status %d location %q", bad, w.Code, w.Header().Get("Location"))
			}
		}
	})
}
