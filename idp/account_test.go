package idp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/caddy-mcpauth/storage"
)

// grantFor stores a live grant of subject for client and returns its id.
func (e *env) grantFor(t *testing.T, id, clientID, subject string, created time.Time) {
	t.Helper()
	g := storage.Grant{ID: id, ClientID: clientID, Subject: subject, Scopes: []string{"todo:read", "offline_access"},
		Resource: "https://mcp.example.com/mcp", AuthTime: created, CreatedAt: created, ExpiresAt: created.Add(30 * 24 * time.Hour)}
	if err := e.store.CreateGrant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

func TestAccountPage(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	now := e.clock.Now()
	if err := e.store.PutClient(ctx, storage.Client{ID: "cli", Name: "CLI App", RedirectURIs: []string{"http://127.0.0.1/callback"}}); err != nil {
		t.Fatal(err)
	}
	alice, bob := e.account(aliceEmail).ID, e.account(bobEmail).ID
	e.grantFor(t, "g-cli", "cli", alice, now.Add(-2*time.Hour))
	e.grantFor(t, "g-cimd", "https://claude.ai/oauth/claude-code-client-metadata", alice, now.Add(-time.Hour))
	e.grantFor(t, "g-gone", "cli", alice, now.Add(-3*time.Hour))
	if err := e.store.RevokeGrant(ctx, "g-gone", "test", now); err != nil {
		t.Fatal(err)
	}
	e.grantFor(t, "g-bob", "cli", bob, now.Add(-time.Hour))

	b := e.browser()
	if res := b.get("/account"); res.status != http.StatusSeeOther || res.header.Get("Location") != "/login?return_to="+url.QueryEscape("/account") {
		t.Fatalf("signed out: %d %q, want the login page returning to the account", res.status, res.header.Get("Location"))
	}
	// A sign-in outside a flow lands on the account page, not a blank "/".
	if res := b.login(aliceEmail, alicePW, ""); res.header.Get("Location") != "/account" {
		t.Fatalf("sign-in without return_to went to %q", res.header.Get("Location"))
	}
	page := b.get("/account")
	if page.status != http.StatusOK {
		t.Fatalf("account page: %d", page.status)
	}
	for _, want := range []string{"Your account", aliceEmail, "Email and password", "CLI App", "127.0.0.1", "claude.ai",
		"https://mcp.example.com/mcp", "todo:read", `name="grant" value="g-cli"`, `name="grant" value="g-cimd"`, "Sign out"} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("account page lacks %q:\n%s", want, page.body)
		}
	}
	for _, absent := range []string{"g-gone", "g-bob"} {
		if strings.Contains(page.body, absent) {
			t.Fatalf("account page lists %s (revoked, or another account's)", absent)
		}
	}
	if strings.Index(page.body, "g-cimd") > strings.Index(page.body, "g-cli") {
		t.Fatal("apps are not listed newest first")
	}
	csrf := csrfOf(t, page.body)

	// Refusals change nothing.
	if res := b.post("/account", url.Values{"action": {"disconnect"}, "grant": {"g-cli"}}); res.status != http.StatusForbidden {
		t.Fatalf("disconnect without CSRF: %d", res.status)
	}
	if res := b.post("/account", url.Values{"csrf_token": {csrf}, "action": {"disconnect"}, "grant": {"g-bob"}}); res.status != http.StatusNotFound {
		t.Fatalf("disconnecting another account's grant: %d", res.status)
	}
	if res := b.post("/account", url.Values{"csrf_token": {csrf}, "action": {"disconnect"}, "grant": {"nope"}}); res.status != http.StatusNotFound {
		t.Fatalf("disconnecting an unknown grant: %d", res.status)
	}
	if res := b.post("/account", url.Values{"csrf_token": {csrf}, "action": {"explode"}, "grant": {"g-cli"}}); res.status != http.StatusBadRequest {
		t.Fatalf("unknown action: %d", res.status)
	}
	for _, id := range []string{"g-cli", "g-bob"} {
		if g, _ := e.store.GetGrant(ctx, id); g.Revoked() {
			t.Fatalf("a refused request revoked %s", id)
		}
	}

	// Disconnect ends exactly that grant, audited.
	res := b.post("/account", url.Values{"csrf_token": {csrf}, "action": {"disconnect"}, "grant": {"g-cli"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/account?disconnected=1" {
		t.Fatalf("disconnect: %d %q", res.status, res.header.Get("Location"))
	}
	if g, _ := e.store.GetGrant(ctx, "g-cli"); !g.Revoked() || g.RevokedReason != ReasonUserDisconnected {
		t.Fatalf("grant after disconnect: %+v", g)
	}
	if g, _ := e.store.GetGrant(ctx, "g-cimd"); g.Revoked() {
		t.Fatal("disconnect revoked another app")
	}
	if evs := e.auditTypes("grant.disconnected"); len(evs) != 1 || evs[0].Subject != alice || evs[0].ClientID != "cli" {
		t.Fatalf("audit: %+v", evs)
	}
	// Refusals are aggregated (one record per minute with a count).
	if evs := e.auditTypes("grant.disconnect"); len(evs) != 1 || evs[0].Detail["count"] != "2" || evs[0].Detail["reason"] != "unknown_grant" {
		t.Fatalf("refused disconnects audited as %+v, want one aggregate of 2", evs)
	}
	page = b.get("/account?disconnected=1")
	if strings.Contains(page.body, `value="g-cli"`) || !strings.Contains(page.body, "was disconnected") {
		t.Fatalf("page after disconnect:\n%s", page.body)
	}

	// With nothing connected the page says so.
	b2 := e.browser()
	b2.login(bobEmail, bobPW, "")
	csrf = csrfOf(t, b2.get("/account").body)
	b2.post("/account", url.Values{"csrf_token": {csrf}, "action": {"disconnect"}, "grant": {"g-bob"}})
	if page := b2.get("/account"); !strings.Contains(page.body, "No apps are connected") {
		t.Fatalf("empty account page:\n%s", page.body)
	}
}

// TestErrorPagesWayForward: every error page points to the account page,
// offers "Try again" only when retrying can pass, and reads as a sentence.
func TestErrorPagesWayForward(t *testing.T) {
	e := newEnv(t, nil)
	render := func(method, target string, status int, desc string) string {
		r := httptest.NewRequest(method, target, nil)
		w := httptest.NewRecorder()
		e.login.Error(w, r, status, "invalid_client", desc)
		if w.Code != status {
			t.Fatalf("status %d, want %d", w.Code, status)
		}
		return w.Body.String()
	}
	page := render(http.MethodGet, "/authorize?client_id=x", http.StatusBadRequest, "this server does not accept apps whose metadata document is on that host; ask the operator to allow it")
	if !strings.Contains(page, "This server does not accept apps whose metadata document is on that host; ask the operator to allow it.") {
		t.Fatalf("description not written as a sentence:\n%s", page)
	}
	if !strings.Contains(page, `href="/account">Go to your account`) || strings.Contains(page, "Try again") {
		t.Fatalf("a 400 page must offer the account page and no retry:\n%s", page)
	}
	page = render(http.MethodGet, "/authorize?client_id=x&state=s", http.StatusServiceUnavailable, "The sign-in service is unreachable.")
	if !strings.Contains(page, `href="/authorize?client_id=x&amp;state=s">Try again`) {
		t.Fatalf("a 503 page must offer to try the same request again:\n%s", page)
	}
	// A form of a flow resumes the flow; an unsafe return_to never shows.
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("return_to=%2Fauthorize%3Fclient_id%3Dx"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	w := httptest.NewRecorder()
	e.login.Error(w, r, http.StatusForbidden, "csrf_failed", "This form has expired.")
	if !strings.Contains(w.Body.String(), `href="/authorize?client_id=x">Try again`) {
		t.Fatalf("a failed form must resume its flow:\n%s", w.Body.String())
	}
	r = httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("return_to=https%3A%2F%2Fevil.example%2F"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	w = httptest.NewRecorder()
	e.login.Error(w, r, http.StatusForbidden, "csrf_failed", "This form has expired.")
	if strings.Contains(w.Body.String(), "evil.example") || strings.Contains(w.Body.String(), "Try again") {
		t.Fatalf("an unsafe return_to reached the page:\n%s", w.Body.String())
	}
}

func TestSentence(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"client is disabled":    "Client is disabled.",
		"Already fine.":         "Already fine.",
		"why?":                  "Why?",
		"  über alles ":         "Über alles.",
		"redirect_uri mismatch": "Redirect_uri mismatch.",
	} {
		if got := sentence(in); got != want {
			t.Errorf("sentence(%q) = %q, want %q", in, got, want)
		}
	}
}
