package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// todoTools is the per-tool scope map of the sample server's guard.
func todoTools() map[string]ToolMap {
	return map[string]ToolMap{testResource: {Tools: map[string][]string{
		"list_todos":  {"read"},
		"add_todo":    {"read", "write"},
		"delete_todo": {"read", "write"},
	}}}
}

func withTools(c *Config) {
	c.Tools = todoTools()
	c.Scopes = append(c.Scopes, "admin")
}

func toolClaim(m map[string]any) []string {
	raw, _ := m[ClaimTools].([]any)
	var out []string
	for _, v := range raw {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// TestConsentListsToolsAndSnapshot: the consent page lists the tools each
// requested scope unlocks; the code, grant, remembered consent and access
// token carry the snapshot; a tool added later under the granted scope makes
// the remembered consent stop covering the request: the page is shown
// again, naming the new tool.
func TestConsentListsToolsAndSnapshot(t *testing.T) {
	h := newHarness(t, withTools)
	q := h.authzQuery("asks", "https://asks.example.com/cb")
	q.Set("scope", "read")
	if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
		t.Fatalf("want the consent page, got %d %q", w.Code, w.Header().Get("X-Test-Page"))
	}
	page := h.browser.lastConsent()
	want := []ScopeTools{{Scope: "read", Tools: []ConsentTool{{Name: "list_todos"}}}}
	if !reflect.DeepEqual(page.Tools, want) {
		t.Fatalf("consent tools = %+v, want %+v", page.Tools, want)
	}
	w := h.consentPost(q, "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}, "remember": {"on"}})
	tok := h.mustToken(h.exchangeForm("asks", h.codeFrom(w), "https://asks.example.com/cb", testVerifier))
	if got := toolClaim(h.claims(tok.AccessToken)); !slices.Equal(got, []string{"list_todos"}) {
		t.Fatalf("%s = %v, want [list_todos]", ClaimTools, got)
	}
	gs := h.grants()
	if len(gs) != 1 || !slices.Equal(gs[0].Tools, []string{"list_todos"}) {
		t.Fatalf("grant snapshot: %+v", gs)
	}
	c, err := h.store.GetConsent(context.Background(), "alice", "asks")
	if err != nil || !slices.Equal(c.Tools, []string{"list_todos"}) {
		t.Fatalf("remembered consent: %+v %v", c, err)
	}

	// Remembered: the same request skips the page.
	if w := h.authorize(q, "alice"); w.Code != http.StatusSeeOther {
		t.Fatalf("remembered consent not used: %d %q", w.Code, w.Header().Get("X-Test-Page"))
	}

	// The operator maps a new tool under read: fresh consent, naming it.
	h.srv.cfg.Tools[testResource].Tools["export_todos"] = []string{"read"}
	if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
		t.Fatalf("a tool added under a granted scope skipped consent: %d %q", w.Code, w.Header().Get("X-Test-Page"))
	}
	page = h.browser.lastConsent()
	want = []ScopeTools{{Scope: "read", Tools: []ConsentTool{{Name: "export_todos", New: true}, {Name: "list_todos"}}}}
	if !reflect.DeepEqual(page.Tools, want) {
		t.Fatalf("consent tools after the new tool = %+v, want %+v", page.Tools, want)
	}

	// Asking for write lists the write tools under write, read's under read.
	q.Set("scope", "read write")
	h.authorize(q, "alice")
	page = h.browser.lastConsent()
	want = []ScopeTools{
		{Scope: "read", Tools: []ConsentTool{{Name: "export_todos", New: true}, {Name: "list_todos"}}},
		{Scope: "write", Tools: []ConsentTool{{Name: "add_todo", New: true}, {Name: "delete_todo", New: true}}},
	}
	if !reflect.DeepEqual(page.Tools, want) {
		t.Fatalf("consent tools for read write = %+v, want %+v", page.Tools, want)
	}
}

func (h *harness) stepUp(method, rawQuery, user string, form url.Values) *httptest.ResponseRecorder {
	var r *http.Request
	if method == http.MethodPost {
		r = httptest.NewRequest(method, h.issuer+PathStepUp+"?"+rawQuery, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, h.issuer+PathStepUp+"?"+rawQuery, nil)
	}
	if user != "" {
		r.AddCookie(&http.Cookie{Name: "test_user", Value: user})
	}
	return h.serve(r)
}

func (h *harness) refresh(clientID, rt, scope string) *httptest.ResponseRecorder {
	f := url.Values{"grant_type": {oauth.GrantRefreshToken}, "client_id": {clientID}, "refresh_token": {rt}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return h.token(f)
}

// TestStepUpWidensGrantForNextRefresh: the step-up page widens the grant
// only after its own user approves with a valid form; the next refresh then
// carries the wider scope and tool set, and a refresh never carries more
// than what was consented.
func TestStepUpWidensGrantForNextRefresh(t *testing.T) {
	h := newHarness(t, withTools)
	code := h.code("app", "http://127.0.0.1/callback", func(q url.Values) { q.Set("scope", "read") })
	tok := h.mustToken(h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier))
	cl := h.claims(tok.AccessToken)
	sid, _ := cl["sid"].(string)
	if cl["scope"] != "read" || sid == "" {
		t.Fatalf("first token: %v", cl)
	}
	link := StepUpURL(h.issuer, sid, []string{"write"})
	if want := h.srv.StepUpURL(sid, []string{"write"}); link != want {
		t.Fatalf("StepUpURL = %q, server's = %q", link, want)
	}
	u, _ := url.Parse(link)
	rq := u.RawQuery

	// Before any step-up a refresh cannot ask for write.
	if w := h.refresh("app", tok.RefreshToken, "read write"); w.Code != http.StatusBadRequest || oauthError(t, w) != oauth.CodeInvalidScope {
		t.Fatalf("refresh beyond the grant: %d %s", w.Code, w.Body)
	}

	// Not signed in: the login, back to the same link.
	if w := h.stepUp(http.MethodGet, rq, "", nil); w.Header().Get("X-Test-Page") != "login" || w.Header().Get("X-Test-Return") != PathStepUp+"?"+rq {
		t.Fatalf("not signed in: %q return %q", w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Return"))
	}
	// Another user: an error page, nothing changes.
	if w := h.stepUp(http.MethodGet, rq, "bob", nil); w.Header().Get("X-Test-Page") != "error" {
		t.Fatalf("another user's grant: %q", w.Header().Get("X-Test-Page"))
	}
	if w := h.stepUp(http.MethodPost, rq, "bob", url.Values{"csrf": {"csrf-bob"}, "decision": {"approve"}}); w.Header().Get("X-Test-Page") != "error" {
		t.Fatalf("another user's approval: %q", w.Header().Get("X-Test-Page"))
	}
	// A scope the client may not have: an error page.
	bad := StepUpURL(h.issuer, sid, []string{"nope"})
	bu, _ := url.Parse(bad)
	if w := h.stepUp(http.MethodGet, bu.RawQuery, "alice", nil); w.Header().Get("X-Test-Error") != oauth.CodeInvalidScope {
		t.Fatalf("unknown scope: %q %q", w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Error"))
	}

	// The page: step-up, the new scope, the tools it unlocks marked new.
	if w := h.stepUp(http.MethodGet, rq, "alice", nil); w.Header().Get("X-Test-Page") != "consent" {
		t.Fatalf("step-up page: %d %q %q", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("X-Test-Description"))
	}
	page := h.browser.lastConsent()
	wantTools := []ScopeTools{
		{Scope: "read", Tools: []ConsentTool{{Name: "list_todos"}}},
		{Scope: "write", Tools: []ConsentTool{{Name: "add_todo", New: true}, {Name: "delete_todo", New: true}}},
	}
	if !page.StepUp || !slices.Equal(page.NewScopes, []string{"write"}) || !slices.Equal(page.Scopes, []string{"read", "write"}) ||
		!reflect.DeepEqual(page.Tools, wantTools) || page.Action != PathStepUp+"?"+rq || !page.NoRemember {
		t.Fatalf("step-up page: %+v", page)
	}

	// A forged form (no CSRF) and a denial change nothing.
	if w := h.stepUp(http.MethodPost, rq, "alice", url.Values{"decision": {"approve"}}); w.Code != http.StatusForbidden {
		t.Fatalf("approval without CSRF: %d", w.Code)
	}
	h.stepUp(http.MethodPost, rq, "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"deny"}})
	if g := h.grants()[0]; !slices.Equal(g.Scopes, []string{"read"}) || !slices.Equal(g.Tools, []string{"list_todos"}) {
		t.Fatalf("grant changed without approval: %+v", g)
	}

	// Approve: the grant is widened, audited.
	if w := h.stepUp(http.MethodPost, rq, "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}); w.Code != http.StatusOK {
		t.Fatalf("approve: %d %q", w.Code, w.Body)
	}
	g := h.grants()[0]
	if !slices.Equal(g.Scopes, []string{"read", "write"}) || !slices.Equal(g.Tools, []string{"add_todo", "delete_todo", "list_todos"}) {
		t.Fatalf("widened grant: %+v", g)
	}
	if evs := h.audit("consent.granted"); len(evs) != 1 || evs[0].Detail["step_up"] != "true" || evs[0].Detail["added_scope"] != "write" {
		t.Fatalf("audit: %+v", evs)
	}

	// Never beyond what was consented: admin exists but was not approved.
	if w := h.refresh("app", tok.RefreshToken, "read write admin"); w.Code != http.StatusBadRequest || oauthError(t, w) != oauth.CodeInvalidScope {
		t.Fatalf("refresh beyond the consent: %d %s", w.Code, w.Body)
	}
	// The refused refresh changed nothing: the same token now refreshes
	// into the wider grant.
	next := decodeToken(t, h.refresh("app", tok.RefreshToken, ""))
	if next.Scope != "read write" {
		t.Fatalf("refresh after step-up: %+v", next)
	}
	cl = h.claims(next.AccessToken)
	if cl["scope"] != "read write" || !slices.Equal(toolClaim(cl), []string{"add_todo", "delete_todo", "list_todos"}) {
		t.Fatalf("claims after step-up: %v", cl)
	}
	// A narrower refresh still works.
	if n := decodeToken(t, h.refresh("app", next.RefreshToken, "read")); n.Scope != "read" {
		t.Fatalf("narrow refresh: %+v", n)
	}
	// Nothing left to approve: the done page, no second widening.
	if w := h.stepUp(http.MethodGet, rq, "alice", nil); w.Code != http.StatusOK || w.Header().Get("X-Test-Page") == "consent" {
		t.Fatalf("second visit: %d %q", w.Code, w.Header().Get("X-Test-Page"))
	}
}

// TestStepUpRefusesEndedGrant: a revoked grant is never widened.
func TestStepUpRefusesEndedGrant(t *testing.T) {
	h := newHarness(t, withTools)
	code := h.code("app", "http://127.0.0.1/callback", func(q url.Values) { q.Set("scope", "read") })
	tok := h.mustToken(h.exchangeForm("app", code, "http://127.0.0.1/callback", testVerifier))
	sid, _ := h.claims(tok.AccessToken)["sid"].(string)
	if err := h.store.RevokeGrant(context.Background(), sid, "test", h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(StepUpURL(h.issuer, sid, []string{"write"}))
	if w := h.stepUp(http.MethodPost, u.RawQuery, "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}}); w.Header().Get("X-Test-Page") != "error" {
		t.Fatalf("revoked grant: %d %q", w.Code, w.Header().Get("X-Test-Page"))
	}
	if g := h.grants()[0]; slices.Contains(g.Scopes, "write") {
		t.Fatalf("revoked grant widened: %+v", g)
	}
	for _, rq := range []string{"", "grant=", "grant=a&grant=b", "grant=x&scope=a&scope=b", "grant=x&scope=%22"} {
		if w := h.stepUp(http.MethodGet, rq, "alice", nil); w.Header().Get("X-Test-Page") != "error" || w.Code != http.StatusBadRequest {
			t.Errorf("malformed %q: %d %q", rq, w.Code, w.Header().Get("X-Test-Page"))
		}
	}
}

// TestConsentDescribesUpstreamTools: with the tools the guard saw the
// upstream list, the consent page shows their titles and descriptions and
// lists the unmapped ones under the scopes every call needs; what a scope
// unlocks and the snapshot still come from the operator's map only.
func TestConsentDescribesUpstreamTools(t *testing.T) {
	h := newHarness(t, withTools)
	m := h.srv.cfg.Tools[testResource]
	m.Unmapped = []string{"read"}
	h.srv.cfg.Tools[testResource] = m
	h.srv.RecordUpstreamTools("https://elsewhere.example.com/mcp", []UpstreamTool{{Name: "x", Title: "X"}})
	if got := h.srv.upstreamTools("https://elsewhere.example.com/mcp"); got != nil {
		t.Fatalf("a resource without a tool map was recorded: %v", got)
	}
	h.srv.RecordUpstreamTools(testResource, []UpstreamTool{
		{Name: "list_todos", Title: "List todos", Description: "Lists <b>open</b> todos"},
		{Name: "add_todo", Title: "Add a todo"},
		{Name: "search_todos", Title: "Search", Description: "Finds todos"},
	})
	q := h.authzQuery("asks", "https://asks.example.com/cb")
	q.Set("scope", "read write")
	if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
		t.Fatalf("want the consent page, got %d", w.Code)
	}
	want := []ScopeTools{
		{Scope: "read", Tools: []ConsentTool{
			{Name: "list_todos", Title: "List todos", Description: "Lists <b>open</b> todos"},
			{Name: "search_todos", Title: "Search", Description: "Finds todos"},
		}},
		{Scope: "write", Tools: []ConsentTool{{Name: "add_todo", Title: "Add a todo"}, {Name: "delete_todo"}}},
	}
	if got := h.browser.lastConsent().Tools; !reflect.DeepEqual(got, want) {
		t.Fatalf("consent tools = %+v,\nwant %+v", got, want)
	}
	w := h.consentPost(q, "alice", url.Values{"csrf": {"csrf-alice"}, "decision": {"approve"}, "remember": {"on"}})
	tok := h.mustToken(h.exchangeForm("asks", h.codeFrom(w), "https://asks.example.com/cb", testVerifier))
	if got := toolClaim(h.claims(tok.AccessToken)); !slices.Equal(got, []string{"add_todo", "delete_todo", "list_todos"}) {
		t.Fatalf("%s = %v: the snapshot holds the operator's mapped tools only", ClaimTools, got)
	}
	// The upstream's list never asks for fresh consent by itself.
	h.srv.RecordUpstreamTools(testResource, []UpstreamTool{{Name: "search_todos"}, {Name: "another_unmapped"}})
	if w := h.authorize(q, "alice"); w.Code != http.StatusSeeOther {
		t.Fatalf("an upstream-listed tool made the remembered consent stop covering the request: %d", w.Code)
	}

	// Bounded: at most maxUpstreamTools per resource.
	var many []UpstreamTool
	for i := range maxUpstreamTools + 20 {
		many = append(many, UpstreamTool{Name: "t" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i)})
	}
	h.srv.RecordUpstreamTools(testResource, many)
	if n := len(h.srv.upstreamTools(testResource)); n != maxUpstreamTools {
		t.Fatalf("%d upstream tools kept, want %d", n, maxUpstreamTools)
	}
}
