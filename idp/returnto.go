package idp

import (
	"net/url"
	"strings"
)

// SafeReturnTo returns s when it is a same-origin relative path that is safe
// to redirect to after login (requirement 16), else "/". Accepted: a path
// starting with exactly one "/", optionally with a query; refused: "//" and
// "/\" (protocol-relative, also after browsers' backslash folding), any
// backslash, schemes, fragments, control characters, spaces, and paths whose
// decoded form would change meaning ("/%2F/evil.example").
func SafeReturnTo(s string) string {
	if !safeReturnTo(s) {
		return "/"
	}
	return s
}

func safeReturnTo(s string) bool {
	if len(s) == 0 || len(s) > 4096 || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x7f || c == '\\' || c == '#' || c >= 0x80 {
			return false
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return false
	}
	// The decoded path must not start with "//" or "/\" either: some
	// servers and frameworks redirect to the decoded path.
	if len(u.Path) > 1 && (u.Path[1] == '/' || u.Path[1] == '\\') {
		return false
	}
	if strings.ContainsAny(u.Path, "\\") {
		return false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == ".." || seg == "." {
			return false
		}
	}
	return true
}
