package oauth

import (
	"errors"
	"net/url"
	"testing"
)

var redirectSeeds = []string{
	"https://app.example/cb",
	"https://app.example/cb?x=1",
	"https://app.example:8443/a%2Fb",
	"http://127.0.0.1/cb",
	"http://127.0.0.1:3000/cb?a=1",
	"http://[::1]:8080/cb",
	"http://localhost:6274/oauth/callback",
	"http://localhost",
	"cursor://anysphere.cursor-retrieval/oauth/callback",
	"com.example.app:/cb",
	"http://user@127.0.0.1/cb",
	"http://localhost.evil.example/cb",
	"https://app.example/cb#frag",
	"javascript:alert(1)",
	"http://127.0.0.1:/cb",
	"http://localhost:1\\@evil.example/",
	"",
	// From the DCR and CIMD copies of the policy.
	"http://127.0.0.1:33418/callback",
	"https://vscode.dev/redirect",
	"cursor://anysphere.cursor-mcp/oauth/callback",
	"https://www.cursor.com/agents/mcp/oauth/callback",
	"http://localhost:8787/callback",
	"https://claude.ai/api/mcp/auth_callback",
	"https://chatgpt.com/connector_platform_oauth_redirect",
	"https://a@b/#",
	"http://[::1]:0/",
	"http://[::ffff:127.0.0.1]/",
	"http://LOCALHOST/cb",
	"http://localhost./cb",
	"HTTPS://app.example.com/cb",
	"https://0x7f.1/cb",
	"https://a.b.local/x",
	"cursor://a%2fb/cb",
	"javascript.x:alert(1)",
	"intent://x/cb",
	"com.example.app:/",
}

// FuzzMatchRedirectURI: matching never panics, returns the requested URI, and
// a match implies the same scheme, host, path and query.
func FuzzMatchRedirectURI(f *testing.F) {
	for _, reg := range redirectSeeds {
		for _, req := range []string{reg, "http://127.0.0.1:51000/cb", "http://localhost:9/oauth/callback", "https://APP.example/cb"} {
			f.Add(reg, req)
		}
	}
	f.Fuzz(func(t *testing.T, registered, requested string) {
		got, ok := MatchRedirectURI([]string{registered}, requested)
		if !ok {
			if got != "" {
				t.Fatalf("refusal returned %q", got)
			}
			return
		}
		if got != requested {
			t.Fatalf("returned %q, want %q", got, requested)
		}
		if registered == requested {
			return
		}
		// Only the loopback port rule lets different strings match.
		if !IsLoopbackRedirect(registered) || !IsLoopbackRedirect(requested) {
			t.Fatalf("non-exact match of non-loopback URIs %q / %q", registered, requested)
		}
		a, errA := url.Parse(registered)
		b, errB := url.Parse(requested)
		if errA != nil || errB != nil {
			t.Fatalf("matched URIs that do not parse: %v %v", errA, errB)
		}
		if a.Scheme != b.Scheme || a.Hostname() != b.Hostname() || a.EscapedPath() != b.EscapedPath() ||
			a.RawQuery != b.RawQuery || a.User != nil || b.User != nil || a.Fragment != "" || b.Fragment != "" {
			t.Fatalf("match of different URIs %q / %q", registered, requested)
		}
	})
}

// FuzzCheckRedirectURI: validation never panics, refuses with
// invalid_redirect_uri, and what it accepts is absolute, fragment-free,
// userinfo-free, and https or loopback http or a private-use scheme; the
// kind agrees with the scheme, and without private-use schemes only https
// and loopback http pass. The seeds are the three former corpora (owned,
// DCR, CIMD).
func FuzzCheckRedirectURI(f *testing.F) {
	for _, s := range redirectSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		if k, err := CheckRedirectURI(uri, WebRedirects); err == nil && k != RedirectHTTPS && k != RedirectLoopback {
			t.Fatalf("web policy accepted %q as %v", uri, k)
		}
		k, err := CheckRedirectURI(uri, OwnedRedirects)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidRedirectURI {
				t.Fatalf("error %v is not invalid_redirect_uri", err)
			}
			return
		}
		u, perr := url.Parse(uri)
		if perr != nil {
			t.Fatalf("accepted unparsable %q", uri)
		}
		if u.Scheme == "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
			t.Fatalf("accepted %q", uri)
		}
		if len(uri) > MaxRedirectURILength || u.Scheme+":" != uri[:len(u.Scheme)+1] {
			t.Fatalf("accepted %q", uri)
		}
		switch u.Scheme {
		case "https":
			if k != RedirectHTTPS {
				t.Fatalf("kind %v for %q", k, uri)
			}
			if u.Hostname() == "" {
				t.Fatalf("accepted https without host %q", uri)
			}
		case "http":
			if k != RedirectLoopback || !IsLoopbackRedirect(uri) {
				t.Fatalf("accepted non-loopback http %q", uri)
			}
			if h := u.Hostname(); h != "127.0.0.1" && h != "::1" && h != "localhost" {
				t.Fatalf("accepted http host %q in %q", h, uri)
			}
		default:
			if k != RedirectPrivateUse || deniedSchemes[u.Scheme] {
				t.Fatalf("accepted %q as %v", uri, k)
			}
		}
	})
}
