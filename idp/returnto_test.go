package idp

import (
	"net/url"
	"strings"
	"testing"
)

func TestSafeReturnTo(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"/", "/"},
		{"/authorize?client_id=a&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb&state=x", "/authorize?client_id=a&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb&state=x"},
		{"/a/b/c", "/a/b/c"},
		{"/a?next=//evil.example", "/a?next=//evil.example"},
		{"", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/a\\b", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/a/../../b", "/"},
		{"/./x", "/"},
		{"/a#frag", "/"},
		{"/a b", "/"},
		{"/a\tb", "/"},
		{"/\t/evil.example", "/"},
		{"/a\r\nSet-Cookie: x=y", "/"},
		{"/a\x00", "/"},
		{"/a\x7f", "/"},
		{"/é", "/"},
		{"/" + strings.Repeat("a", 5000), "/"},
		{"/%", "/"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := SafeReturnTo(tc.in); got != tc.want {
				t.Fatalf("SafeReturnTo(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzReturnTo(f *testing.F) {
	for _, s := range []string{"/", "/authorize?x=1", "//evil", "/\\evil", "https://e/", "/%2F%2Fe", "/a/../b", "\t/x", "/a#b", "/?a=//b", "javascript:x", "/%5C"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://auth.example.com/some/page")
	f.Fuzz(func(t *testing.T, s string) {
		got := SafeReturnTo(s)
		if got == "/" {
			return
		}
		if got != s {
			t.Fatalf("SafeReturnTo(%q) = %q: must be the input or /", s, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\#") {
			t.Fatalf("unsafe path accepted: %q", got)
		}
		for _, r := range got {
			if r < 0x21 || r >= 0x7f {
				t.Fatalf("control, space or non-ASCII accepted: %q", got)
			}
		}
		// Resolved the way a browser resolves a Location header, it stays on
		// our origin.
		u, err := base.Parse(got)
		if err != nil || u.Scheme != "https" || u.Host != "auth.example.com" || u.User != nil {
			t.Fatalf("%q resolves off-origin: %v (%v)", got, u, err)
		}
		dec, err := url.PathUnescape(u.Path)
		if err != nil || strings.HasPrefix(dec, "//") || strings.HasPrefix(dec, "/\\") {
			t.Fatalf("%q decodes to a protocol-relative path %q", got, dec)
		}
	})
}
