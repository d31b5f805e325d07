package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Silent re-authorization of DCR clients that register again with the same
// metadata (claude.ai re-registers again and again).

const claudeRegistration = `{"client_name":"Claude","software_id":"claude-ai","redirect_uris":["https://claude.ai/api/mcp/auth_callback","https://claude.com/api/mcp/auth_callback"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`

func reuseHarness(t *testing.T) *harness {
	t.Helper()
	return newHarness(t, func(c *Config) {
		c.Resources.Known = append(c.Resources.Known, testResource2)
		reg, err := NewRegistrationHandler(RegistrationConfig{Store: c.Store, BurstPerIP: 100, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		c.Registration = reg
	})
}

// register posts a DCR registration and returns the client id.
func (h *harness) register(body string) string {
	h.t.Helper()
	r := httptest.NewRequest(http.MethodPost, h.issuer+"/register", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := h.serve(r)
	if w.Code != http.StatusCreated {
		h.t.Fatalf("register: %d %s", w.Code, w.Body.String())
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		h.t.Fatal(err)
	}
	return m["client_id"].(string)
}

// approve runs /authorize for a DCR client and approves (remembering) on the
// consent page.
func (h *harness) approve(clientID, redirect, user, scope, resource string, remember bool) {
	h.t.Helper()
	q := h.authzQuery(clientID, redirect)
	q.Set("scope", scope)
	q.Set("resource", resource)
	w := h.authorize(q, user)
	if w.Header().Get("X-Test-Page") != "consent" {
		h.t.Fatalf("first authorization of %s: page %q status %d, want the consent page", clientID, w.Header().Get("X-Test-Page"), w.Code)
	}
	form := map[string][]string{"csrf": {"csrf-" + user}, "decision": {"approve"}}
	if remember {
		form["remember"] = []string{"on"}
	}
	h.codeFrom(h.consentPost(q, user, form))
}

func TestDCRConsentReuse(t *testing.T) {
	const claudeCB = "https://claude.ai/api/mcp/auth_callback"
	other := strings.Replace(claudeRegistration, "https://claude.com/api/mcp/auth_callback", "https://claude.com/api/mcp/other_callback", 1)
	cases := []struct {
		name string
		// first is registered and approved by alice (read write,
		// testResource, remembered unless forget); second is registered
		// next and authorized by user with scope and resource.
		first, second   string
		redirect        string
		forget          bool
		user            string
		scope, resource string
		advance         time.Duration
		prompt          string
		disableFirst    bool
		wantReused      bool
	}{
		{name: "same fingerprint, same scope", first: claudeRegistration, second: claudeRegistration, wantReused: true},
		{name: "same fingerprint, narrower scope", first: claudeRegistration, second: claudeRegistration, scope: "read", wantReused: true},
		{name: "wider scope", first: claudeRegistration, second: claudeRegistration, scope: "read write offline_access"},
		{name: "different resource", first: claudeRegistration, second: claudeRegistration, resource: testResource2},
		{name: "different redirect uris", first: claudeRegistration, second: other},
		{name: "different client name", first: claudeRegistration, second: strings.Replace(claudeRegistration, `"Claude"`, `"Claude 2"`, 1)},
		{name: "different software id", first: claudeRegistration, second: strings.Replace(claudeRegistration, `"claude-ai"`, `"claude-ai-2"`, 1)},
		{name: "loopback redirect", redirect: "http://127.0.0.1/callback",
			first: `{"client_name":"CLI","redirect_uris":["http://127.0.0.1/callback"]}`, second: `{"client_name":"CLI","redirect_uris":["http://127.0.0.1/callback"]}`},
		{name: "https and loopback redirects", first: `{"client_name":"Mixed","redirect_uris":["https://claude.ai/api/mcp/auth_callback","http://localhost:8787/callback"]}`,
			second: `{"client_name":"Mixed","redirect_uris":["https://claude.ai/api/mcp/auth_callback","http://localhost:8787/callback"]}`},
		{name: "https on localhost", redirect: "https://localhost/cb",
			first: `{"client_name":"Local","redirect_uris":["https://localhost/cb"]}`, second: `{"client_name":"Local","redirect_uris":["https://localhost/cb"]}`},
		{name: "custom scheme", redirect: "cursor://anysphere.cursor-mcp/oauth/callback",
			first: `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"]}`, second: `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"]}`},
		{name: "expired consent", first: claudeRegistration, second: claudeRegistration, advance: DefaultConsentTTL + time.Second},
		{name: "different user", first: claudeRegistration, second: claudeRegistration, user: "bob"},
		{name: "consent not remembered", first: claudeRegistration, second: claudeRegistration, forget: true},
		{name: "prompt=consent", first: claudeRegistration, second: claudeRegistration, prompt: "consent"},
		{name: "first client disabled", first: claudeRegistration, second: claudeRegistration, disableFirst: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := reuseHarness(t)
			redirect := c.redirect
			if redirect == "" {
				redirect = claudeCB
			}
			user, scope, resource := c.user, c.scope, c.resource
			if user == "" {
				user = "alice"
			}
			if scope == "" {
				scope = "read write"
			}
			if resource == "" {
				resource = testResource
			}
			first := h.register(c.first)
			h.approve(first, redirect, "alice", "read write", testResource, !c.forget)
			if c.disableFirst {
				if err := h.store.SetClientDisabled(context.Background(), first, true, h.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			h.clock.Advance(c.advance)
			second := h.register(c.second)
			if second == first {
				t.Fatal("the same client id twice")
			}
			q := h.authzQuery(second, redirect)
			q.Set("scope", scope)
			q.Set("resource", resource)
			if c.prompt != "" {
				q.Set("prompt", c.prompt)
			}
			w := h.authorize(q, user)
			reused := h.audit("consent.reused")
			if !c.wantReused {
				if w.Header().Get("X-Test-Page") != "consent" {
					t.Fatalf("status %d page %q location %q: want the consent page", w.Code, w.Header().Get("X-Test-Page"), w.Header().Get("Location"))
				}
				if len(reused) != 0 {
					t.Fatalf("consent.reused audited: %+v", reused)
				}
				if _, err := h.store.GetConsent(context.Background(), user, second); err == nil {
					t.Fatal("a consent was stored for the second client without the user's approval")
				}
				return
			}
			code := h.codeFrom(w) // no consent page
			tok := h.mustToken(h.exchangeForm(second, code, redirect, testVerifier))
			if tok.Scope != scope {
				t.Fatalf("scope %q, want %q", tok.Scope, scope)
			}
			if len(reused) != 1 || reused[0].ClientID != second || reused[0].Subject != user || reused[0].Detail["previous_client_id"] != first {
				t.Fatalf("consent.reused audit: %+v (want client %s, previous %s)", reused, second, first)
			}
			// The reused consent is now the second client's, with the first
			// one's scopes and expiry (reuse never extends a consent).
			prev, err1 := h.store.GetConsent(context.Background(), user, first)
			got, err2 := h.store.GetConsent(context.Background(), user, second)
			if err1 != nil || err2 != nil || !got.ExpiresAt.Equal(prev.ExpiresAt) || strings.Join(got.Scopes, " ") != strings.Join(prev.Scopes, " ") || got.Resource != prev.Resource {
				t.Fatalf("copied consent %+v (%v), first %+v (%v)", got, err2, prev, err1)
			}
		})
	}
}

// TestDCRConsentReuseChain: the third registration finds the consent
// through the second even after the first client is gone.
func TestDCRConsentReuseChain(t *testing.T) {
	h := reuseHarness(t)
	const cb = "https://claude.ai/api/mcp/auth_callback"
	first := h.register(claudeRegistration)
	h.approve(first, cb, "alice", "read", testResource, true)
	second := h.register(claudeRegistration)
	q := h.authzQuery(second, cb)
	q.Set("scope", "read")
	h.codeFrom(h.authorize(q, "alice"))
	if _, err := h.store.DeleteClientConsents(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := h.store.DeleteClient(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	third := h.register(claudeRegistration)
	q = h.authzQuery(third, cb)
	q.Set("scope", "read")
	h.codeFrom(h.authorize(q, "alice"))
	if ev := h.audit("consent.reused"); len(ev) != 2 || ev[0].Detail["previous_client_id"] == ev[1].Detail["previous_client_id"] {
		t.Fatalf("consent.reused events: %+v", ev)
	}
}

// TestDCRPredecessorsOnlyForWebRedirects: the stored link between
// registrations exists only for https redirects on public names, and a
// forged link to a client with other metadata is never followed.
func TestDCRPredecessorsOnlyForWebRedirects(t *testing.T) {
	h := reuseHarness(t)
	a := h.register(`{"client_name":"CLI","redirect_uris":["http://127.0.0.1/callback"]}`)
	b := h.register(`{"client_name":"CLI","redirect_uris":["http://127.0.0.1/callback"]}`)
	if c, err := h.store.GetClient(context.Background(), b); err != nil || len(c.Predecessors) != 0 {
		t.Fatalf("loopback client has predecessors %v (%v)", c.Predecessors, err)
	}
	// A link to a client with other metadata (written behind the server's
	// back) is not followed.
	h.approve(a, "http://127.0.0.1/callback", "alice", "read", testResource, true)
	web := h.register(claudeRegistration)
	c, err := h.store.GetClient(context.Background(), web)
	if err != nil {
		t.Fatal(err)
	}
	c.Predecessors = []string{a}
	if err := h.store.PutClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	q := h.authzQuery(web, "https://claude.ai/api/mcp/auth_callback")
	q.Set("scope", "read")
	if w := h.authorize(q, "alice"); w.Header().Get("X-Test-Page") != "consent" {
		t.Fatalf("forged predecessor followed: %d %q", w.Code, w.Header().Get("X-Test-Page"))
	}
}
