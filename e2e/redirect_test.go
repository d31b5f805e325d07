package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// Requirement 42 (issue item 8): a signed-in user's browser is never sent to
// a DCR client's redirect URI for an invalid request or prompt=none before
// the user has consented to that client: the error page is shown instead.
// After a remembered consent the client gets its error redirects; an owned
// client always does.
func TestAuthorizeNoRedirectBeforeConsent(t *testing.T) {
	s := startStack(t, stackOpts{extraApp: "dcr"})
	const redirect = "http://127.0.0.1:5555/callback"
	st, _, reg := postFormJSON(t, s, `{"client_name":"Not yet trusted","redirect_uris":["`+redirect+`"]}`)
	if st != 201 {
		t.Fatalf("register: %d %v", st, reg)
	}
	dcrID := reg["client_id"].(string)

	b := newBrowser(t, s.Client, "http://127.0.0.1:5555/")
	signIn(t, s, b) // alice is signed in (through the owned client)

	authURL := func(clientID string, mod func(url.Values)) string {
		q := url.Values{
			"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "state": {"st-42"},
			"scope": {"todo:read"}, "resource": {s.MCPURL},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		}
		if mod != nil {
			mod(q)
		}
		return s.Issuer + "/authorize?" + q.Encode()
	}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	invalid := map[string]func(url.Values){
		"bad scope":         func(q url.Values) { q.Set("scope", "todo:admin") },
		"bad resource":      func(q url.Values) { q.Set("resource", "https://evil.example/mcp") },
		"response_type":     func(q url.Values) { q.Set("response_type", "token") },
		"prompt=none":       func(q url.Values) { q.Set("prompt", "none") },
		"plain PKCE method": func(q url.Values) { q.Set("code_challenge_method", "plain") },
	}
	for name, mod := range invalid {
		resp, body := get(authURL(dcrID, mod))
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "<html") {
			t.Errorf("%s before consent: %d Location %q, want a 400 error page", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// Alice approves the client and ticks "remember".
	resp, body := get(authURL(dcrID, nil))
	f, err := findForm(body)
	if resp.StatusCode != 200 || err != nil {
		t.Fatalf("consent page: %d %v", resp.StatusCode, err)
	}
	vals := f.values
	vals.Set("decision", "approve")
	vals.Set("remember", "on")
	action, _ := resp.Request.URL.Parse(f.action)
	resp, err = b.PostForm(action.String(), vals)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != 303 || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	redirected := func(who, u, code string) {
		t.Helper()
		resp, _ := get(u)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 303 || !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("error") != code || loc.Query().Get("state") != "st-42" {
			t.Errorf("%s: %d %q, want a 303 with error=%s", who, resp.StatusCode, loc, code)
		}
	}
	redirected("consented, bad scope", authURL(dcrID, invalid["bad scope"]), "invalid_scope")
	redirected("consented, prompt=none with more scopes", authURL(dcrID, func(q url.Values) { q.Set("scope", "todo:read todo:write"); q.Set("prompt", "none") }), "consent_required")
	redirected("owned client, bad scope", authURL(cliClientID, invalid["bad scope"]), "invalid_scope")
}
