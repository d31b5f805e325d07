package authserver

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// FuzzNormalizeResource: normalization never panics, refuses with
// invalid_target, and what it returns is idempotent, absolute, lower-case in
// scheme and host, and fragment- and userinfo-free.
func FuzzNormalizeResource(f *testing.F) {
	for _, s := range []string{
		"https://mcp.example", "https://mcp.example/", "https://mcp.example/mcp/", "HTTPS://MCP.EXAMPLE:443/Mcp?x=1",
		"http://[0:0::1]:80/mcp", "https://BÜCHER.example/", "https://mcp.example/a%2Fb", "https://mcp.example:/x",
		"https://u@mcp.example/", "https://mcp.example/#f", "/relative", "urn:x:y", "https:opaque", "",
		"https://mcp.example/%zz", "http://[fe80::1%25eth0]/", "https://a.example/..%2F..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := NormalizeResource(raw)
		if err != nil {
			if e := oauth.AsError(err); e.Code != oauth.CodeInvalidTarget {
				t.Fatalf("error %v is not invalid_target", err)
			}
			return
		}
		again, err := NormalizeResource(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, got, again, err)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("result %q does not parse", got)
		}
		if u.Scheme == "" || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(got, "#") {
			t.Fatalf("result %q is not an absolute fragment-free URI", got)
		}
		if u.Scheme != strings.ToLower(u.Scheme) || u.Host != strings.ToLower(u.Host) {
			t.Fatalf("result %q not lower-case in scheme/host", got)
		}
		if strings.HasSuffix(got, "/") && u.Path == "/" {
			t.Fatalf("bare origin %q kept its slash", got)
		}
	})
}
