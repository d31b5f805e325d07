package resourceguard

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestChallengeHeader(t *testing.T) {
	const md = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	cases := []struct {
		name string
		c    Challenge
		want map[string]string
	}{
		{"no token", Challenge{Status: 401, Scopes: []string{"mcp", "todo:read"}},
			map[string]string{"resource_metadata": md, "scope": "mcp todo:read"}},
		{"no token, no scopes", Challenge{Status: 401},
			map[string]string{"resource_metadata": md}},
		{"invalid token", Challenge{Status: 401, Error: "invalid_token", Description: "the token expired"},
			map[string]string{"resource_metadata": md, "error": "invalid_token", "error_description": "the token expired"}},
		{"insufficient scope", Challenge{Status: 403, Error: "insufficient_scope", Description: "more", Scopes: []string{"a", "b"}},
			map[string]string{"resource_metadata": md, "scope": "a b", "error": "insufficient_scope", "error_description": "more"}},
		{"description with forbidden characters", Challenge{Status: 401, Error: "invalid_token", Description: "a \"quoted\" \\ value\r\nX: y\x00é"},
			map[string]string{"resource_metadata": md, "error": "invalid_token", "error_description": "a quoted  valueX: y"}},
		{"invalid scope tokens dropped", Challenge{Status: 403, Error: "insufficient_scope", Scopes: []string{"ok", "bad scope", `q"`}},
			map[string]string{"resource_metadata": md, "scope": "ok", "error": "insufficient_scope"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.c.Header(md)
			scheme, params, err := parseChallenge(h)
			if err != nil || scheme != "Bearer" {
				t.Fatalf("%q: %q %v", h, scheme, err)
			}
			if len(params) != len(c.want) {
				t.Fatalf("params %v, want %v", params, c.want)
			}
			for k, v := range c.want {
				if params[k] != v {
					t.Fatalf("%s = %q, want %q (%q)", k, params[k], v, h)
				}
			}
		})
	}
	t.Run("metadata URL with quote is escaped", func(t *testing.T) {
		h := (&Challenge{Status: 401}).Header(`https://x.example/"a\b`)
		_, params, err := parseChallenge(h)
		if err != nil || params["resource_metadata"] != `https://x.example/"a\b` {
			t.Fatalf("%q: %v %v", h, params, err)
		}
	})
}

func TestWriteChallenge(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		c         *Challenge
		bodyError string
		hasHeader bool
	}{
		{&Challenge{Status: 401, Scopes: []string{"mcp"}}, "unauthorized", true},
		{invalidToken("bad"), "invalid_token", true},
		{invalidRequest("bad"), "invalid_request", true},
		{&Challenge{Status: 403, Error: ErrorInsufficientScope, Scopes: []string{"x"}}, "insufficient_scope", true},
		{&Challenge{Status: 403, Description: "origin not allowed"}, "forbidden", false},
		{unavailable("down"), "temporarily_unavailable", false},
	}
	for _, c := range cases {
		t.Run(c.bodyError, func(t *testing.T) {
			w := httptest.NewRecorder()
			f.g.WriteChallenge(w, c.c)
			if w.Code != c.c.Status {
				t.Fatalf("status %d", w.Code)
			}
			if (w.Header().Get("WWW-Authenticate") != "") != c.hasHeader {
				t.Fatalf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("no Cache-Control: no-store")
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] != c.bodyError {
				t.Fatalf("body %q %v", w.Body, err)
			}
			if !errors.Is(c.c.Err(), ErrRefused) {
				t.Fatal("Err does not wrap ErrRefused")
			}
		})
	}
	if f.g.ChallengeHeader(&Challenge{Status: http.StatusUnauthorized, Scopes: []string{"mcp"}}) !=
		(&Challenge{Status: 401, Scopes: []string{"mcp"}}).Header(f.g.ResourceMetadataURL()) {
		t.Fatal("precomputed no-token challenge differs from the builder's")
	}
}

func TestParseBearer(t *testing.T) {
	cases := []struct {
		in   string
		tok  string
		kind BearerResult
	}{
		{"Bearer abc", "abc", BearerOK},
		{"bearer abc", "abc", BearerOK},
		{"BEARER   abc==", "abc==", BearerOK},
		{"Bearer a-._~+/b=", "a-._~+/b=", BearerOK},
		{"Bearer", "", BearerMalformed},
		{"Bearer ", "", BearerMalformed},
		{"Bearer\tabc", "", BearerMalformed},
		{"Bearer a=b", "", BearerMalformed},
		{"Bearer a b", "", BearerMalformed},
		{"Bearer =", "", BearerMalformed},
		{"Bearer a,", "", BearerMalformed},
		{"Bearerabc", "", BearerOtherScheme},
		{"Basic abc", "", BearerOtherScheme},
		{"", "", BearerOtherScheme},
		{"Bear", "", BearerOtherScheme},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			tok, kind := ParseBearer(c.in)
			if tok != c.tok || kind != c.kind {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q, %v", c.in, tok, kind, c.tok, c.kind)
			}
		})
	}
}

// Every refusal maps to the closed outcome set; the origin refusal is
// classified by its own mark, not by its text.
func TestOutcomeClosedSet(t *testing.T) {
	closed := map[string]bool{OutcomeAllowed: true, OutcomeNoToken: true, OutcomeInvalidToken: true, OutcomeInsufficientScope: true,
		OutcomeInvalidRequest: true, OutcomeOriginRefused: true, OutcomeBodyTooLarge: true, OutcomeHeadersTooLarge: true,
		OutcomeUnavailable: true, OutcomeOther: true}
	for _, ch := range []*Challenge{nil, invalidToken("x"), invalidRequest("x"), unavailable("x"), {Status: 401}, {Status: 413}, {Status: 431}, {Status: 418},
		{Status: 403, Error: ErrorInsufficientScope}} {
		if !closed[Outcome(ch)] {
			t.Errorf("%+v: outcome %q", ch, Outcome(ch))
		}
	}
	ch := &Challenge{Status: 403, Description: "forbidden", outcome: OutcomeOriginRefused}
	if Outcome(ch) != OutcomeOriginRefused {
		t.Fatal(Outcome(ch))
	}
}
