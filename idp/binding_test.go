package idp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The one cookie-plus-ticket browser binding of upstream flows (OIDC and
// SAML used to build it each): the browser holding the cookie takes the
// pending state once; no cookie, a forged key, a replay or an expired
// ticket get nothing, and the cookie is cleared either way.
func TestBrowserBinding(t *testing.T) {
	e := newEnv(t, nil)
	b := BrowserBinding{Cookie: "__Host-mcpauth_test", Secure: true, SameSite: http.SameSiteLaxMode,
		TicketKind: "test.state", TTL: time.Minute, Store: e.store, Now: e.clock.Now}
	begin := func() *http.Cookie {
		t.Helper()
		w := httptest.NewRecorder()
		key, err := b.Begin(t.Context(), w, []byte(`{"attempt":"a1"}`))
		if err != nil || len(key) != 32 {
			t.Fatalf("Begin: %v", err)
		}
		ck := w.Result().Cookies()
		if len(ck) != 1 || !ck[0].HttpOnly || !ck[0].Secure || ck[0].SameSite != http.SameSiteLaxMode || ck[0].MaxAge != 60 {
			t.Fatalf("cookie %+v", ck)
		}
		return ck[0]
	}
	take := func(ck *http.Cookie) ([]byte, error) {
		r := httptest.NewRequest("GET", "https://auth.example/cb", nil)
		if ck != nil {
			r.AddCookie(ck)
		}
		w := httptest.NewRecorder()
		_, v, err := b.Take(w, r)
		if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
			t.Fatalf("cookie not cleared: %+v", c)
		}
		return v, err
	}
	ck := begin()
	if v, err := take(ck); err != nil || string(v) != `{"attempt":"a1"}` {
		t.Fatalf("Take = %q, %v", v, err)
	}
	if _, err := take(ck); !errors.Is(err, ErrBindingUnknown) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := take(nil); !errors.Is(err, ErrBindingMissing) {
		t.Fatalf("no cookie: %v", err)
	}
	if _, err := take(&http.Cookie{Name: b.Cookie, Value: strings.Repeat("A", 43)}); !errors.Is(err, ErrBindingUnknown) {
		t.Fatalf("forged key: %v", err)
	}
	if _, err := take(&http.Cookie{Name: b.Cookie, Value: "short"}); !errors.Is(err, ErrBindingMissing) {
		t.Fatalf("malformed key: %v", err)
	}
	ck = begin()
	e.clock.Advance(2 * time.Minute)
	if _, err := take(ck); !errors.Is(err, ErrBindingUnknown) {
		t.Fatalf("expired: %v", err)
	}
}

// The upstream record: one validation and one policy for every kind.
func TestUpstreamRecord(t *testing.T) {
	c := UpstreamConfig{Name: "corp", Allow: AllowRules{EmailDomains: []string{" Corp.Example "}, Groups: []string{"g"}}, LinkByEmail: true}
	if err := c.Check("oidc"); err != nil {
		t.Fatal(err)
	}
	u := NewUpstream("oidc", c)
	var info UpstreamInfo = u
	p := info.Policy()
	if info.Name() != "corp" || info.DisplayName() != "corp" || info.Kind() != "oidc" || !p.LinkByEmail ||
		len(p.AllowedDomains) != 1 || p.AllowedDomains[0] != "corp.example" || p.AllowedGroups[0] != "g" {
		t.Fatalf("record %+v policy %+v", u, p)
	}
	for name, bad := range map[string]UpstreamConfig{
		"name with _":  {Name: "corp_sso"},
		"long name":    {Name: strings.Repeat("a", 33)},
		"http icon":    {Name: "corp", IconURL: "http://x.example/i.png"},
		"email domain": {Name: "corp", Allow: AllowRules{EmailDomains: []string{"a@b.example"}}},
	} {
		if err := bad.Check("saml"); err == nil || !strings.HasPrefix(err.Error(), "saml: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
