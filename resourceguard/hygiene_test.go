package resourceguard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Requirement 39: the product's own cookies (the hosted login's session and
// CSRF cookies, the OIDC and SAML binding cookies, with or without the
// __Host- prefix) never reach the upstream; other cookies do, unless
// StripAllCookies is set.
func TestUpstreamNeverSeesProductCookies(t *testing.T) {
	cases := []struct {
		name string
		in   []string // Cookie header values
		want []string // what the upstream gets (nil: no Cookie header)
	}{
		{"no cookie", nil, nil},
		{"only others", []string{"theme=dark; app_session=abc"}, []string{"theme=dark; app_session=abc"}},
		{"session and csrf", []string{"__Host-mcpauth_session=s3cret; __Host-mcpauth_csrf=c5rf"}, nil},
		{"mixed", []string{"theme=dark; __Host-mcpauth_session=s3cret; app=1; __Host-mcpauth_csrf=c"}, []string{"theme=dark; app=1"}},
		{"http development names", []string{"mcpauth_session=s; mcpauth_csrf=c; keep=1"}, []string{"keep=1"}},
		{"oidc and saml binding cookies", []string{"__Host-mcpauth_oidc_google=x; mcpauth_saml_okta=y; keep=1"}, []string{"keep=1"}},
		{"two Cookie headers (HTTP/2)", []string{"__Host-mcpauth_session=s", "keep=1; mcpauth_csrf=c"}, []string{"keep=1"}},
		{"odd spacing and case", []string{"  __host-MCPAUTH_session=s ;keep=1;;  __Secure-mcpauth_x=1"}, []string{"keep=1"}},
		{"a value naming the cookie is kept", []string{"note=__Host-mcpauth_session"}, []string{"note=__Host-mcpauth_session"}},
		{"similar names are kept", []string{"mcpauthx=1; my_mcpauth_session=2"}, []string{"mcpauthx=1; my_mcpauth_session=2"}},
	}
	for _, all := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/all=%v", tc.name, all), func(t *testing.T) {
				f := newFixture(t, func(c *Config) { c.StripAllCookies = all })
				r := bearerReq("POST", testResource, f.token(nil))
				for _, v := range tc.in {
					r.Header.Add("Cookie", v)
				}
				if w := f.do(r); w.Code != 200 {
					t.Fatalf("status %d", w.Code)
				}
				got := f.seen[0].Header.Values("Cookie")
				want := tc.want
				if all {
					want = nil
				}
				if strings.Join(got, "|") != strings.Join(want, "|") || (want == nil) != (got == nil) {
					t.Fatalf("upstream Cookie = %q, want %q", got, want)
				}
			})
		}
	}
}

func TestIsProductCookie(t *testing.T) {
	for name, want := range map[string]bool{
		"__Host-mcpauth_session": true, "__Host-mcpauth_csrf": true, "mcpauth_session": true,
		"__Host-mcpauth_oidc_x": true, "mcpauth_saml_y": true, "__Secure-mcpauth_z": true, "MCPAUTH_SESSION": true,
		"mcpauth": false, "mcpauthsession": false, "x_mcpauth_session": false, "__Host-x": false, "": false, "__Host-": false,
	} {
		if got := IsProductCookie(name); got != want {
			t.Errorf("IsProductCookie(%q) = %v, want %v", name, got, want)
		}
	}
}

// PrepareUpstream strips product cookies for library users too.
func TestPrepareUpstreamStripsProductCookies(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-mcpauth_session=s; keep=1")
	PrepareUpstream(r, &Principal{Subject: "s"}, IdentityHeaders{})
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "keep=1" {
		t.Fatalf("Cookie = %q", got)
	}
}

// The cookie pass costs nothing when there is no Cookie header, and nothing
// either when no product cookie is present.
func TestStripCookiesAllocations(t *testing.T) {
	h := http.Header{"Accept": {"*/*"}}
	if n := testing.AllocsPerRun(100, func() { stripProductCookies(h) }); n != 0 {
		t.Fatalf("no Cookie header: %v allocations", n)
	}
	h.Set("Cookie", "theme=dark; app_session=abc; x=y")
	if n := testing.AllocsPerRun(100, func() { stripProductCookies(h) }); n != 0 {
		t.Fatalf("no product cookie: %v allocations", n)
	}
}

// 13a: absurd request headers are refused with 431 before any other work
// (no token verification, no upstream).
func TestHeaderLimits(t *testing.T) {
	f := newFixture(t, nil)
	good := f.token(nil)
	many := func(n int) *http.Request {
		r := bearerReq("POST", testResource, good)
		for i := range n {
			r.Header.Set(fmt.Sprintf("X-Filler-%d", i), "v")
		}
		return r
	}
	if w := f.do(many(90)); w.Code != 200 {
		t.Fatalf("90 headers: %d", w.Code)
	}
	w := f.do(many(150))
	if w.Code != http.StatusRequestHeaderFieldsTooLarge || w.Header().Get("WWW-Authenticate") != "" || !strings.Contains(w.Body.String(), "request_header_fields_too_large") {
		t.Fatalf("150 headers: %d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}
	// Repeated values of one header count one by one.
	r := bearerReq("POST", testResource, good)
	for range 120 {
		r.Header.Add("X-Same", "v")
	}
	if w := f.do(r); w.Code != 431 {
		t.Fatalf("120 values of one header: %d", w.Code)
	}
	// Total size: one big header, even without a token.
	r = httptest.NewRequest("POST", testResource, nil)
	r.Header.Set("X-Big", strings.Repeat("a", 40<<10))
	if w := f.do(r); w.Code != 431 {
		t.Fatalf("40 KiB header: %d", w.Code)
	}
	// A maximal bearer token (16 KiB) still fits the default size limit.
	r = bearerReq("POST", testResource, good)
	r.Header.Set("X-Pad", strings.Repeat("a", 14<<10))
	if w := f.do(r); w.Code != 200 {
		t.Fatalf("14 KiB header with a token: %d", w.Code)
	}
	if n := f.reached.Load(); n != 2 {
		t.Fatalf("upstream reached %d times, want 2", n)
	}

	// Configurable, and negative disables.
	f2 := newFixture(t, func(c *Config) { c.MaxHeaders = 5; c.MaxHeaderBytes = 1 << 10 })
	if w := f2.do(many(6)); w.Code != 431 {
		t.Fatalf("limit 5, 7 headers: %d", w.Code)
	}
	r = bearerReq("POST", testResource, f2.token(nil))
	r.Header.Set("X-Big", strings.Repeat("a", 2<<10))
	if w := f2.do(r); w.Code != 431 {
		t.Fatalf("limit 1 KiB, 2 KiB header: %d", w.Code)
	}
	f3 := newFixture(t, func(c *Config) { c.MaxHeaders = -1; c.MaxHeaderBytes = -1 })
	if w := f3.do(many(300)); w.Code != 200 {
		t.Fatalf("no limit, 300 headers: %d", w.Code)
	}
}

// 13c (RFC 6750 §2.3, §3.1): a token in the query is a malformed request
// whatever the spelling, including ";"-separated pairs that url.ParseQuery
// skips and the "access.token" spelling that PHP reads as access_token.
func TestQueryTokenSpellings(t *testing.T) {
	f := newFixture(t, nil)
	good := f.token(nil)
	for _, q := range []string{
		"access_token=x", "a=1&access_token=x", "access_token=x;a=1", "a=1;access_token=x",
		"acc%65ss_token=x", "access.token=x", "access+token=x", "access%20token=x", "access_token", "%zz&access_token=x",
	} {
		for _, withHeader := range []bool{false, true} {
			tok := ""
			if withHeader {
				tok = good
			}
			w := f.do(bearerReq("POST", testResource+"?"+q, tok))
			_, params, err := parseChallenge(w.Header().Get("WWW-Authenticate"))
			if w.Code != 401 || err != nil || params["error"] != "invalid_request" || params["resource_metadata"] == "" {
				t.Fatalf("?%s (header %v): %d %q %v", q, withHeader, w.Code, w.Header().Get("WWW-Authenticate"), err)
			}
		}
	}
	for _, q := range []string{"token=x", "x=access_token", "access_tokens=1", "my_access_token=1", "a=%zz"} {
		if w := f.do(bearerReq("POST", testResource+"?"+q, good)); w.Code != 200 {
			t.Fatalf("?%s: %d", q, w.Code)
		}
	}
	if f.reached.Load() != 5 {
		t.Fatalf("upstream reached %d times", f.reached.Load())
	}
}
