package oauth

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckRedirectURI is the registration rule every lane (owned, DCR,
// CIMD) applies.
func TestCheckRedirectURI(t *testing.T) {
	tests := []struct {
		name string
		uri  string
		ok   bool
	}{
		{"https", "https://app.example/callback", true},
		{"https with port and query", "https://app.example:8443/cb?x=1", true},
		{"http loopback ipv4", "http://127.0.0.1/callback", true},
		{"http loopback ipv4 port", "http://127.0.0.1:3000/callback", true},
		{"http loopback ipv6", "http://[::1]:8080/callback", true},
		{"http localhost", "http://localhost:6274/oauth/callback", true},
		{"http localhost no path", "http://localhost:6274", true},
		{"private-use reverse dns", "com.example.app:/oauth2redirect", true},
		{"private-use reverse dns with host", "com.example.app://callback", true},
		{"cursor", "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback", true},
		{"vscode", "vscode://vscode.github-authentication/did-authenticate", true},
		{"uppercase scheme", "HTTPS://app.example/cb", false},
		{"https empty port", "https://app.example:/cb", false},
		{"https bad host", "https://a!b.example/cb", false},
		{"https ip zone", "https://[fe80::1%25eth0]/cb", false},
		{"denied scheme (was only in the dcr copy)", "intent://app.example/cb", false},
		{"private-use scheme too long", strings.Repeat("a", 60) + ".app:/cb", true},
		{"private-use scheme over 64", strings.Repeat("a", 70) + ".app:/cb", false},
		{"private-use bad host", "cursor://a!b/cb", false},
		{"at the length cap", "https://app.example/" + strings.Repeat("a", MaxRedirectURILength-len("https://app.example/")), true},
		{"one over the cap", "https://app.example/" + strings.Repeat("a", MaxRedirectURILength-len("https://app.example/")+1), false},

		{"empty", "", false},
		{"relative", "/callback", false},
		{"scheme-relative", "//app.example/cb", false},
		{"fragment", "https://app.example/cb#frag", false},
		{"empty fragment", "https://app.example/cb#", false},
		{"userinfo https", "https://user:pass@app.example/cb", false},
		{"userinfo loopback", "http://user@127.0.0.1/cb", false},
		{"http non-loopback", "http://app.example/cb", false},
		{"http 127.0.0.2", "http://127.0.0.2/cb", false},
		{"http LOCALHOST uppercase", "http://LOCALHOST/cb", false},
		{"http localhost suffix", "http://localhost.evil.example/cb", false},
		{"http 127.0.0.1 suffix", "http://127.0.0.1.nip.io/cb", false},
		{"http ipv6 other", "http://[::2]/cb", false},
		{"http empty port", "http://127.0.0.1:/cb", false},
		{"http port zero", "http://127.0.0.1:0/cb", false},
		{"http port too big", "http://127.0.0.1:65536/cb", false},
		{"https without host", "https:///cb", false},
		{"https opaque", "https:app.example", false},
		{"javascript", "javascript:alert(1)", false},
		{"javascript slashes", "javascript://app.example/%0aalert(1)", false},
		{"data", "data:text/html,hi", false},
		{"file", "file:///etc/passwd", false},
		{"ws", "ws://app.example/cb", false},
		{"private-use without dot", "myapp://callback", false},
		{"private-use opaque", "com.example.app:callback", false},
		{"private-use empty", "com.example.app:", false},
		{"space", "https://app.example/c b", false},
		{"control char", "https://app.example/cb\x00", false},
		{"non-ascii", "https://app.example/é", false},
		{"backslash", "https://app.example\\@evil.example/", false},
		{"too long", "https://app.example/" + strings.Repeat("a", 2048), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckRedirectURI(tt.uri, OwnedRedirects)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != "invalid_redirect_uri" || e.Status != 400 {
				t.Fatalf("got %v, want invalid_redirect_uri", err)
			}
		})
	}
}

func TestMatchRedirectURI(t *testing.T) {
	tests := []struct {
		name       string
		registered []string
		requested  string
		ok         bool
	}{
		{"exact https", []string{"https://app.example/cb"}, "https://app.example/cb", true},
		{"exact among several", []string{"https://a.example/cb", "cursor://x.y/cb", "http://localhost:3000/cb"}, "cursor://x.y/cb", true},
		{"exact private-use", []string{"com.example.app:/cb"}, "com.example.app:/cb", true},
		{"loopback ipv4 other port", []string{"http://127.0.0.1:3000/cb"}, "http://127.0.0.1:51004/cb", true},
		{"loopback ipv4 registered without port", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:51004/cb", true},
		{"loopback ipv4 requested without port", []string{"http://127.0.0.1:3000/cb"}, "http://127.0.0.1/cb", true},
		{"loopback ipv6 any port", []string{"http://[::1]/cb"}, "http://[::1]:8080/cb", true},
		{"localhost any port", []string{"http://localhost:6274/oauth/callback"}, "http://localhost:9999/oauth/callback", true},
		{"loopback with query any port", []string{"http://127.0.0.1/cb?a=1"}, "http://127.0.0.1:1234/cb?a=1", true},
		{"loopback no path", []string{"http://localhost"}, "http://localhost:8080", true},

		{"empty requested", []string{"https://app.example/cb"}, "", false},
		{"no registered", nil, "https://app.example/cb", false},
		{"https port differs", []string{"https://app.example/cb"}, "https://app.example:8443/cb", false},
		{"https path case", []string{"https://app.example/Callback"}, "https://app.example/callback", false},
		{"https host case", []string{"https://app.example/cb"}, "https://APP.example/cb", false},
		{"https trailing slash", []string{"https://app.example/cb"}, "https://app.example/cb/", false},
		{"https extra query", []string{"https://app.example/cb"}, "https://app.example/cb?x=1", false},
		{"https query differs", []string{"https://app.example/cb?a=1"}, "https://app.example/cb?a=2", false},
		{"https fragment", []string{"https://app.example/cb"}, "https://app.example/cb#x", false},
		{"https percent-encoding differs", []string{"https://app.example/a%2Fb"}, "https://app.example/a/b", false},
		{"https prefix", []string{"https://app.example/cb"}, "https://app.example/cb2", false},
		{"https subdomain", []string{"https://app.example/cb"}, "https://evil.app.example/cb", false},
		{"https userinfo", []string{"https://app.example/cb"}, "https://app.example@evil.example/cb", false},
		{"localhost is not 127.0.0.1", []string{"http://localhost:3000/cb"}, "http://127.0.0.1:3000/cb", false},
		{"127.0.0.1 is not localhost", []string{"http://127.0.0.1:3000/cb"}, "http://localhost:3000/cb", false},
		{"127.0.0.1 is not [::1]", []string{"http://127.0.0.1/cb"}, "http://[::1]/cb", false},
		{"loopback path differs", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:3000/cb2", false},
		{"loopback path case", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:3000/CB", false},
		{"loopback query differs", []string{"http://127.0.0.1/cb?a=1"}, "http://127.0.0.1:3000/cb?a=2", false},
		{"loopback query added", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:3000/cb?a=1", false},
		{"loopback fragment", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:3000/cb#x", false},
		{"loopback userinfo", []string{"http://127.0.0.1/cb"}, "http://x@127.0.0.1:3000/cb", false},
		{"loopback https registered not http", []string{"https://127.0.0.1/cb"}, "https://127.0.0.1:3000/cb", false},
		{"loopback scheme https vs http", []string{"http://127.0.0.1/cb"}, "https://127.0.0.1/cb", false},
		{"loopback bad port", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:99999/cb", false},
		{"loopback empty port", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:/cb", false},
		{"loopback host suffix", []string{"http://localhost/cb"}, "http://localhost.evil.example/cb", false},
		{"loopback uppercase host", []string{"http://localhost/cb"}, "http://LOCALHOST:3000/cb", false},
		{"loopback backslash", []string{"http://localhost/cb"}, "http://localhost:1\\@evil.example/cb", false},
		{"private-use differs", []string{"cursor://x.y/cb"}, "cursor://x.y/cb2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := MatchRedirectURI(tt.registered, tt.requested)
			if ok != tt.ok {
				t.Fatalf("match = %v, want %v", ok, tt.ok)
			}
			if ok && got != tt.requested {
				t.Fatalf("returned %q, want the requested URI", got)
			}
			if !ok && got != "" {
				t.Fatalf("returned %q on refusal", got)
			}
		})
	}
}

func TestIsLoopbackRedirect(t *testing.T) {
	tests := []struct {
		uri  string
		want bool
	}{
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.1:8080/cb", true},
		{"http://[::1]:8080/cb", true},
		{"http://localhost", true},
		{"http://localhost?x=1", true},
		{"https://localhost/cb", false},
		{"http://127.0.0.10/cb", false},
		{"http://localhostx/cb", false},
		{"http://[::1]x/cb", false},
		{"http://localhost/cb#f", false},
		{"http://a@localhost/cb", false},
		{"cursor://localhost/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			if got := IsLoopbackRedirect(tt.uri); got != tt.want {
				t.Fatalf("IsLoopbackRedirect = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestIsLoopbackRedirect (was also in dcr): the one loopback check.
func TestIsLoopbackRedirectSpellings(t *testing.T) {
	for s, want := range map[string]bool{
		"http://127.0.0.1:8080/cb":   true,
		"http://[::1]/cb":            true,
		"http://localhost:1/cb":      true,
		"https://localhost/cb":       false,
		"http://127.0.0.1.nip.io/cb": false,
		"cursor://x/cb":              false,
		"http://[::ffff:127.0.0.1]/": false,
	} {
		if got := IsLoopbackRedirect(s); got != want {
			t.Errorf("IsLoopbackRedirect(%q) = %v, want %v", s, got, want)
		}
	}
}
