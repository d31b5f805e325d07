package oauth

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// The redirect-URI policy, one for every kind of client: owned clients from
// the configuration, DCR registrations and CIMD documents (requirement 3 of
// docs/requirements.md; OAuth 2.1 §2.3.1 and §4.1.1, RFC 8252 §7, RFC 9700 §2.1 and §4.1).
//
// At registration (CheckRedirectURI) a redirect URI is absolute, ASCII, with
// no fragment, no userinfo and no backslash, with a lower-case scheme, and is
// one of: "https" with a valid host; "http" on a loopback host written
// exactly 127.0.0.1, [::1] or localhost (RFC 8252 §7.3); or, when the
// policy allows them, a private-use scheme (RFC 8252 §7.1). Schemes that
// run script, read local files or name other network protocols are never
// accepted.
//
// At /authorize (MatchRedirectURI) the requested URI matches a registered
// one byte for byte. The only exception is the port of loopback redirects:
// for http://127.0.0.1, http://[::1] and http://localhost any port is
// accepted when scheme, host, path and query are identical. Hosts are never
// interchangeable: localhost does not match 127.0.0.1.

// MaxRedirectURILength caps one redirect URI, in bytes.
const MaxRedirectURILength = 2000

// RedirectKind classifies a redirect URI.
type RedirectKind int

const (
	// RedirectHTTPS is an "https" URI with a host.
	RedirectHTTPS RedirectKind = iota + 1
	// RedirectLoopback is "http" on 127.0.0.1, [::1] or localhost (RFC 8252 §7.3).
	RedirectLoopback
	// RedirectPrivateUse is a private-use scheme such as
	// "cursor://anysphere.cursor-mcp/oauth/callback" or
	// "com.example.app:/oauth2redirect" (RFC 8252 §7.1).
	RedirectPrivateUse
)

// String names the kind for logs and audit details.
func (k RedirectKind) String() string {
	switch k {
	case RedirectHTTPS:
		return "https"
	case RedirectLoopback:
		return "loopback"
	case RedirectPrivateUse:
		return "private-use"
	}
	return "unknown"
}

// RedirectPolicy is what differs between the lanes: which private-use
// schemes a client may register. Everything else is the same for every
// client.
type RedirectPolicy struct {
	// AllowPrivateSchemes accepts private-use URI schemes (RFC 8252 §7.1).
	AllowPrivateSchemes bool
	// PrivateSchemes, when non-empty, is the exact list of private-use
	// schemes accepted (lower-case, e.g. "cursor", "com.example.app").
	// Empty means the default rule: a reverse-domain-name scheme (one that
	// contains a dot, as RFC 8252 §7.1 asks) or one of KnownPrivateSchemes.
	PrivateSchemes []string
}

// Per-lane policies. Owned clients and CIMD documents accept the default
// private-use rule; a DCR registration follows the operator's DCR options
// (private-use schemes on by default, optionally a list).
var (
	OwnedRedirects = RedirectPolicy{AllowPrivateSchemes: true}
	CIMDRedirects  = RedirectPolicy{AllowPrivateSchemes: true}
	// WebRedirects accepts https and loopback http only (used to check
	// logo and client URIs, which are never private-use).
	WebRedirects = RedirectPolicy{}
)

// KnownPrivateSchemes are dot-less private-use schemes that MCP clients are
// known to register; they are accepted by the default rule.
var KnownPrivateSchemes = []string{
	"cursor", "vscode", "vscode-insiders", "vscodium", "windsurf", "claude", "zed", "raycast",
}

// deniedSchemes can never be redirect targets: they run code in the browser,
// read local files or are network schemes other than https/loopback http.
var deniedSchemes = map[string]bool{
	"javascript": true, "data": true, "file": true, "vbscript": true,
	"about": true, "blob": true, "filesystem": true, "view-source": true,
	"jar": true, "mhtml": true, "ftp": true, "ftps": true, "gopher": true,
	"ws": true, "wss": true, "mailto": true, "tel": true, "sms": true,
	"intent": true, "content": true, "resource": true, "chrome": true,
	"ldap": true, "dict": true, "smb": true, "telnet": true, "ssh": true,
	"urn": true, "news": true, "nntp": true, "irc": true, "ircs": true,
}

func redirectErr(desc string) (RedirectKind, error) {
	return 0, ErrInvalidRedirectURI(desc)
}

// CheckRedirectURI validates one redirect URI at registration against the
// policy and returns its kind. The error is an *Error with code
// invalid_redirect_uri; its description never echoes the URI.
func CheckRedirectURI(s string, p RedirectPolicy) (RedirectKind, error) {
	if s == "" {
		return redirectErr("empty")
	}
	if len(s) > MaxRedirectURILength {
		return redirectErr("longer than 2000 bytes")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= 0x20 || c >= 0x7f:
			return redirectErr("contains whitespace, control or non-ascii characters")
		case c == '\\':
			return redirectErr("contains a backslash")
		case c == '#':
			return redirectErr("contains a fragment")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return redirectErr("not a valid uri")
	}
	if u.Scheme == "" {
		return redirectErr("not an absolute uri")
	}
	// url.Parse lower-cases the scheme; the raw text must already be
	// lower-case so that the registered string is what browsers send back.
	if !strings.HasPrefix(s, u.Scheme+":") {
		return redirectErr("scheme must be lower-case")
	}
	if u.User != nil {
		return redirectErr("contains userinfo")
	}
	switch u.Scheme {
	case "https":
		if err := checkWebURI(u); err != nil {
			return 0, err
		}
		return RedirectHTTPS, nil
	case "http":
		if err := checkWebURI(u); err != nil {
			return 0, err
		}
		if !IsLoopbackRedirect(s) {
			return redirectErr("http is only allowed for loopback hosts (127.0.0.1, [::1], localhost); use https")
		}
		return RedirectLoopback, nil
	}
	if deniedSchemes[u.Scheme] {
		return redirectErr("scheme not allowed")
	}
	if !p.AllowPrivateSchemes {
		return redirectErr("private-use schemes are not allowed")
	}
	if len(u.Scheme) > 64 {
		return redirectErr("scheme too long")
	}
	if len(p.PrivateSchemes) > 0 {
		if !slices.Contains(p.PrivateSchemes, u.Scheme) {
			return redirectErr("private-use scheme not allowed by policy")
		}
	} else if !strings.Contains(u.Scheme, ".") && !slices.Contains(KnownPrivateSchemes, u.Scheme) {
		return redirectErr("private-use schemes must be reverse domain names (com.example.app:/callback)")
	}
	if u.Opaque != "" {
		return redirectErr("private-use uri must be scheme:/path or scheme://host/path")
	}
	if u.Host == "" && (u.Path == "" || u.Path == "/") {
		return redirectErr("private-use uri has no path")
	}
	if u.Host != "" {
		if err := checkHostName(u.Hostname(), true); err != nil {
			return 0, err
		}
	}
	return RedirectPrivateUse, nil
}

// checkWebURI applies the rules common to http and https redirects.
func checkWebURI(u *url.URL) error {
	if u.Opaque != "" || u.Host == "" {
		return ErrInvalidRedirectURI("missing host")
	}
	if p := u.Port(); p != "" {
		if !ValidPort(p) {
			return ErrInvalidRedirectURI("invalid port")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return ErrInvalidRedirectURI("empty port")
	}
	// Upper case is tolerated in https hosts (browsers lower-case them);
	// loopback http hosts are matched exactly by IsLoopbackRedirect.
	return checkHostName(u.Hostname(), u.Scheme == "https")
}

// checkHostName accepts IP literals and LDH host names. loose also accepts
// underscores and upper case (private-use authorities are not DNS names).
func checkHostName(h string, loose bool) error {
	if h == "" {
		return ErrInvalidRedirectURI("missing host")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return ErrInvalidRedirectURI("ip zone not allowed")
		}
		return nil
	}
	if len(h) > 253 {
		return ErrInvalidRedirectURI("host too long")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return ErrInvalidRedirectURI("invalid host")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' ||
				loose && (c == '_' || c >= 'A' && c <= 'Z')
			if !ok {
				return ErrInvalidRedirectURI("invalid host")
			}
		}
	}
	return nil
}

// ValidPort reports whether p is a port number: 1 to 5 digits, 1..65535.
func ValidPort(p string) bool {
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

// MatchRedirectURI finds requested among the registered redirect URIs and
// returns it. The comparison is byte for byte (no normalization: case, percent
// encoding and trailing slashes count), except that a loopback http redirect
// matches a registered loopback redirect with the same host, path and query
// on any port. An empty requested URI never matches.
func MatchRedirectURI(registered []string, requested string) (string, bool) {
	if requested == "" || len(requested) > MaxRedirectURILength {
		return "", false
	}
	if slices.Contains(registered, requested) {
		return requested, true
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
// host: http://127.0.0.1, http://[::1] or http://localhost, written exactly
// so (no upper case, no 127.0.0.2, no 0x7f.1), with an optional port, no
// userinfo and no fragment. It is the one loopback check: registration,
// matching and the consent page's "every redirect stays on this machine"
// warning use it.
func IsLoopbackRedirect(uri string) bool {
	_, _, ok := loopbackParts(uri)
	return ok
}

// loopbackParts splits a loopback redirect URI into its host and everything
// after the authority (path and query), dropping the port. It works on the
// raw bytes so that a match is byte-exact apart from the port.
func loopbackParts(uri string) (host, rest string, ok bool) {
	const prefix = "http://"
	if len(uri) > MaxRedirectURILength || !strings.HasPrefix(uri, prefix) {
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
		if port[0] != ':' || !ValidPort(port[1:]) {
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
