package authserver

import (
	"net/url"
	"strings"
)

// Redirect URIs (requirement 3; OAuth 2.1 §2.3.1 and §4.1.1, RFC 8252 §7,
// RFC 9700 §2.1 and §4.1).
//
// A requested redirect URI matches a registered one byte for byte. The only
// exception is the port of loopback redirects (RFC 8252 §7.3): for
// http://127.0.0.1, http://[::1] and http://localhost any port is accepted
// when scheme, host, path and query are identical. Hosts are never
// interchangeable: localhost does not match 127.0.0.1.

// maxRedirectURILen bounds a redirect URI; longer ones are refused.
const maxRedirectURILen = 2048

// knownPrivateUseSchemes are private-use URI schemes without a dot that MCP
// clients are known to register (RFC 8252 §7.1 asks for reverse-DNS names,
// which always contain a dot).
var knownPrivateUseSchemes = map[string]bool{
	"cursor":          true,
	"vscode":          true,
	"vscode-insiders": true,
	"vscodium":        true,
	"windsurf":        true,
	"claude":          true,
	"zed":             true,
	"raycast":         true,
}

// forbiddenSchemes can never be redirect targets: they run script, read
// local files, or are plain-text network schemes.
var forbiddenSchemes = map[string]bool{
	"javascript": true, "data": true, "file": true, "vbscript": true,
	"blob": true, "about": true, "filesystem": true, "ftp": true,
	"ws": true, "wss": true, "mailto": true, "tel": true, "sms": true,
}

// ValidateRedirectURI checks a redirect URI at registration (owned clients
// from config, DCR, CIMD documents). Accepted: an absolute URI with no
// fragment and no userinfo that is https with a host, or http on a loopback
// host (127.0.0.1, [::1], localhost), or a private-use scheme that contains a
// dot (com.example.app:/cb) or is a known client's (cursor://, vscode://).
// The error is an *Error with code invalid_redirect_uri.
func ValidateRedirectURI(uri string) error {
	if uri == "" {
		return ErrInvalidRedirectURI("redirect URI is empty")
	}
	if len(uri) > maxRedirectURILen {
		return ErrInvalidRedirectURI("redirect URI is too long")
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= 0x20 || c >= 0x7f {
			return ErrInvalidRedirectURI("redirect URI contains spaces, control or non-ASCII characters")
		}
	}
	if strings.ContainsRune(uri, '#') {
		return ErrInvalidRedirectURI("redirect URI must not contain a fragment")
	}
	if strings.ContainsRune(uri, '\\') {
		return ErrInvalidRedirectURI("redirect URI must not contain a backslash")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return ErrInvalidRedirectURI("redirect URI does not parse")
	}
	if u.Scheme == "" {
		return ErrInvalidRedirectURI("redirect URI must be absolute")
	}
	if u.User != nil {
		return ErrInvalidRedirectURI("redirect URI must not contain userinfo")
	}
	if u.Opaque != "" {
		return ErrInvalidRedirectURI("redirect URI must be hierarchical (scheme:/path or scheme://host)")
	}
	scheme := u.Scheme // url.Parse lower-cases it
	switch {
	case scheme == "https":
		if u.Hostname() == "" {
			return ErrInvalidRedirectURI("https redirect URI must have a host")
		}
		if p := u.Port(); p != "" && !validPortNumber(p) {
			return ErrInvalidRedirectURI("redirect URI has an invalid port")
		}
		return nil
	case scheme == "http":
		if !IsLoopbackRedirect(uri) {
			return ErrInvalidRedirectURI("http redirect URIs must use a loopback host (127.0.0.1, [::1] or localhost); use https")
		}
		return nil
	case forbiddenSchemes[scheme]:
		return ErrInvalidRedirectURI("redirect URI scheme " + scheme + " is not allowed")
	case strings.ContainsRune(scheme, '.') || knownPrivateUseSchemes[scheme]:
		if u.Host == "" && (u.Path == "" || u.Path == "/") {
			return ErrInvalidRedirectURI("private-use redirect URI must have a host or a path")
		}
		return nil
	default:
		return ErrInvalidRedirectURI("private-use redirect URI schemes must be reverse domain names (e.g. com.example.app:/callback)")
	}
}

// MatchRedirectURI finds requested among the registered redirect URIs and
// returns it. The comparison is byte for byte (no normalization: case, percent
// encoding and trailing slashes count), except that a loopback http redirect
// matches a registered loopback redirect with the same host, path and query
// on any port. An empty requested URI never matches.
func MatchRedirectURI(registered []string, requested string) (string, bool) {
	if requested == "" || len(requested) > maxRedirectURILen {
		return "", false
	}
	for _, reg := range registered {
		if reg == requested {
			return requested, true
		}
	}
	reqHost, reqRest, ok := loopbackParts(requested)
	if !ok {
		return "", false
	}
	for _, reg := range registered {
		regHost, regRest, ok := loopbackParts(reg)
		if ok && regHost == reqHost && regRest == reqRest {
			return requested, true
		}
	}
	return "", false
}

// IsLoopbackRedirect reports whether uri is an http redirect to a loopback
// host: http://127.0.0.1, http://[::1] or http://localhost, with an optional
// port, no userinfo and no fragment.
func IsLoopbackRedirect(uri string) bool {
	_, _, ok := loopbackParts(uri)
	return ok
}

// loopbackParts splits a loopback redirect URI into its host and everything
// after the authority (path and query), dropping the port. It works on the
// raw bytes so that a match is byte-exact apart from the port.
func loopbackParts(uri string) (host, rest string, ok bool) {
	const prefix = "http://"
	if len(uri) > maxRedirectURILen || !strings.HasPrefix(uri, prefix) {
		return "", "", false
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= 0x20 || c >= 0x7f || c == '#' || c == '\\' {
			return "", "", false
		}
	}
	s := uri[len(prefix):]
	end := strings.IndexAny(s, "/?")
	if end < 0 {
		end = len(s)
	}
	authority, rest := s[:end], s[end:]
	if strings.ContainsRune(authority, '@') {
		return "", "", false
	}
	var port string
	switch {
	case strings.HasPrefix(authority, "[::1]"):
		host, port = "[::1]", authority[len("[::1]"):]
	case strings.HasPrefix(authority, "127.0.0.1"):
		host, port = "127.0.0.1", authority[len("127.0.0.1"):]
	case strings.HasPrefix(authority, "localhost"):
		host, port = "localhost", authority[len("localhost"):]
	default:
		return "", "", false
	}
	if port != "" {
		if port[0] != ':' || !validPortNumber(port[1:]) {
			return "", "", false
		}
	}
	// The path must be absolute or empty; the rest must parse.
	if rest != "" && rest[0] != '/' && rest[0] != '?' {
		return "", "", false
	}
	if _, err := url.Parse(uri); err != nil {
		return "", "", false
	}
	return host, rest, true
}

// validPort: 1 to 5 digits, 1..65535.
func validPortNumber(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}
