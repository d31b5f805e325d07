package cimd

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestValidClientIDURL(t *testing.T) {
	valid := []string{
		"https://claude.ai/oauth/claude-code-client-metadata",
		"https://claude.ai/oauth/mcp-oauth-client-metadata",
		"https://chatgpt.com/oauth/client.json",
		"https://vscode.dev/oauth/client-metadata.json",
		"https://example.com:8443/client",
		"https://example.com:443/client", // a different client from https://example.com/client
		"https://example.com/client?v=1", // query: SHOULD NOT, accepted (package doc)
		"https://example.com/a/b/c.json",
		"https://xn--bcher-kva.example/client",
		"https://example.com/%7Euser/client",
		"https://example.com/..client/.x", // dots inside a segment are not dot segments
	}
	for _, s := range valid {
		t.Run("valid "+s, func(t *testing.T) {
			if err := ValidClientIDURL(s); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}

	invalid := []struct{ url, reason string }{
		{"", "empty"},
		{"http://example.com/client", "scheme must be https"},
		{"HTTPS://example.com/client", "scheme must be https"},
		{"ftp://example.com/client", "scheme must be https"},
		{"https:/example.com/client", "scheme must be https"},
		{"https://example.com", "missing path"},
		{"https://example.com/", "missing path"},
		{"https://example.com?x=1", "missing path"},
		{"https://user@example.com/client", "userinfo"},
		{"https://user:pw@example.com/client", "userinfo"},
		{"https://example.com/client#frag", "fragment"},
		{"https://example.com/client#", "fragment"},
		{"https://example.com/./client", "dot segment"},
		{"https://example.com/a/../client", "dot segment"},
		{"https://example.com/a/..", "dot segment"},
		{"https://example.com/a/%2e%2e/client", "dot segment"},
		{"https://example.com/a/%2E/client", "dot segment"},
		{"https://example.com/a/.%2e/client", "dot segment"},
		{"https://example.com/a%2f..%2fclient", "encoded slash"},
		{"https://example.com/a%5cclient", "encoded slash"},
		{"https://example.com/a%zzclient", "not a valid url"},
		{"https://example.com/client?x=%", "percent-encoding"},
		{"https://example.com\\@evil.com/client", "backslash"},
		{"https://example.com/cl ient", "whitespace"},
		{"https://example.com/cl\tient", "whitespace"},
		{"https://example.com/clïent", "non-ascii"},
		{"https://127.0.0.1/client", "not an ip address"},
		{"https://[::1]/client", "not an ip address"},
		{"https://[::ffff:127.0.0.1]/client", "not an ip address"},
		{"https://[fe80::1%25eth0]/client", "invalid"},
		{"https://169.254.169.254/latest/meta-data", "not an ip address"},
		{"https://2130706433/client", "not an ip address"},
		{"https://0x7f000001/client", "not an ip address"},
		{"https://0x7F000001/client", "lower-case"},
		{"https://127.1/client", "not an ip address"},
		{"https://0177.0.0.1/client", "not an ip address"},
		{"https://example.com./client", "trailing dot"},
		{"https://Example.com/client", "lower-case"},
		{"https://exa_mple.com/client", "lower-case"},
		{"https://-example.com/client", "invalid host"},
		{"https://example..com/client", "invalid host"},
		{"https://example.com:/client", "empty port"},
		{"https://example.com:0/client", "invalid port"},
		{"https://example.com:65536/client", "port"},
		{"https:///client", "missing host"},
		{"https://example.com/" + strings.Repeat("a", MaxClientIDLength), "longer than"},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.url, func(t *testing.T) {
			err := ValidClientIDURL(tt.url)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidClientID) {
				t.Fatalf("error %v does not wrap ErrInvalidClientID", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
			if len(tt.url) > 20 && strings.Contains(err.Error(), tt.url) {
				t.Fatalf("error echoes the url: %q", err)
			}
		})
	}
}

func TestValidClientIDURLDevelopmentIPLiteral(t *testing.T) {
	if err := validClientIDURL("https://127.0.0.1:8443/client.json", true); err != nil {
		t.Fatalf("development mode refused an ip literal: %v", err)
	}
	if err := validClientIDURL("https://[::1]:8443/client.json", true); err != nil {
		t.Fatalf("development mode refused an ipv6 literal: %v", err)
	}
	if err := validClientIDURL("https://2130706433/client.json", true); err == nil {
		t.Fatal("development mode accepted a decimal ip form")
	}
}

func FuzzValidClientIDURL(f *testing.F) {
	for _, s := range []string{
		"https://claude.ai/oauth/claude-code-client-metadata",
		"https://example.com:8443/client?x=1",
		"https://example.com/a/%2e%2e/b",
		"https://user@example.com/x",
		"https://2130706433/x",
		"https://[::ffff:127.0.0.1]/x",
		"https://example.com/x#y",
		"https://example.com\\@evil/x",
		"https://a.b.c/%2f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := ValidClientIDURL(s); err != nil {
			if !errors.Is(err, ErrInvalidClientID) {
				t.Fatalf("error does not wrap ErrInvalidClientID: %v", err)
			}
			return
		}
		// Invariants of an accepted id.
		if !strings.HasPrefix(s, "https://") || strings.ContainsAny(s, "#\\ ") || strings.Contains(authority(s), "@") || len(s) > MaxClientIDLength {
			t.Fatalf("accepted %q", s)
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted unparsable %q", s)
		}
		if u.User != nil || u.Fragment != "" || u.Host == "" || u.EscapedPath() == "" || u.EscapedPath() == "/" {
			t.Fatalf("accepted %q", s)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted dot segment in %q", s)
			}
		}
		if err := checkHost(u.Hostname(), false); err != nil {
			t.Fatalf("accepted host of %q: %v", s, err)
		}
		if hostOf(s) != u.Hostname() {
			t.Fatalf("hostOf(%q) = %q, want %q", s, hostOf(s), u.Hostname())
		}
	})
}
