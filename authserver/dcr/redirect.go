package dcr

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Redirect URI rules shared by every third-party client (DCR and CIMD).
//
// RFC 9700 §2.1 and OAuth 2.1 §2.3.1: redirect URIs are registered in full and
// compared exactly; no fragments. RFC 8252 §7: native apps use a loopback
// "http" redirect (§7.3) or a private-use URI scheme (§7.1); everything else is
// "https" (§8.1 of OAuth 2.1 forbids cleartext redirects to remote hosts).

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

// RedirectPolicy says which kinds of redirect URI a client may register.
type RedirectPolicy struct {
	// AllowPrivateSchemes accepts private-use URI schemes (RFC 8252 §7.1).
	AllowPrivateSchemes bool
	// PrivateSchemes, when non-empty, is the exact list of private-use
	// schemes accepted (lower-case, e.g. "cursor", "com.example.app").
	// Empty means the default rule: a reverse-domain-name scheme (one that
	// contains a dot, as RFC 8252 §7.1 asks) or one of KnownPrivateSchemes.
	PrivateSchemes []string
}

// KnownPrivateSchemes are dot-less private-use schemes that MCP clients are
// known to register; they are accepted by the default rule.
var KnownPrivateSchemes = []string{
	"cursor", "vscode", "vscode-insiders", "vscodium", "windsurf", "claude", "zed", "raycast",
}

// ErrRedirectURI is wrapped by every redirect URI refusal.
var ErrRedirectURI = errors.New("dcr: invalid redirect uri")

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

// CheckRedirectURI validates one redirect URI against the policy and returns
// its kind. The error never echoes the URI; it wraps ErrRedirectURI.
func CheckRedirectURI(s string, p RedirectPolicy) (RedirectKind, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrRedirectURI)
	}
	if len(s) > MaxRedirectURILength {
		return 0, fmt.Errorf("%w: longer than %d bytes", ErrRedirectURI, MaxRedirectURILength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= 0x20 || c >= 0x7f:
			return 0, fmt.Errorf("%w: contains whitespace, control or non-ascii characters", ErrRedirectURI)
		case c == '\\':
			return 0, fmt.Errorf("%w: contains a backslash", ErrRedirectURI)
		case c == '#':
			return 0, fmt.Errorf("%w: contains a fragment", ErrRedirectURI)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%w: not a valid uri", ErrRedirectURI)
	}
	if u.Scheme == "" {
		return 0, fmt.Errorf("%w: not an absolute uri", ErrRedirectURI)
	}
	// url.Parse lower-cases the scheme; the raw text must already be
	// lower-case so that the registered string is what browsers send back.
	if !strings.HasPrefix(s, u.Scheme+":") {
		return 0, fmt.Errorf("%w: scheme must be lower-case", ErrRedirectURI)
	}
	if u.User != nil {
		return 0, fmt.Errorf("%w: contains userinfo", ErrRedirectURI)
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
		if !isLoopbackHost(u.Host) {
			return 0, fmt.Errorf("%w: http is only allowed for loopback hosts (127.0.0.1, [::1], localhost)", ErrRedirectURI)
		}
		return RedirectLoopback, nil
	}
	if deniedSchemes[u.Scheme] {
		return 0, fmt.Errorf("%w: scheme not allowed", ErrRedirectURI)
	}
	if !p.AllowPrivateSchemes {
		return 0, fmt.Errorf("%w: private-use schemes are not allowed", ErrRedirectURI)
	}
	if len(u.Scheme) > 64 {
		return 0, fmt.Errorf("%w: scheme too long", ErrRedirectURI)
	}
	if len(p.PrivateSchemes) > 0 {
		if !slices.Contains(p.PrivateSchemes, u.Scheme) {
			return 0, fmt.Errorf("%w: private-use scheme not allowed by policy", ErrRedirectURI)
		}
	} else if !strings.Contains(u.Scheme, ".") && !slices.Contains(KnownPrivateSchemes, u.Scheme) {
		return 0, fmt.Errorf("%w: private-use schemes must be reverse domain names (com.example.app:/callback)", ErrRedirectURI)
	}
	if u.Opaque != "" {
		return 0, fmt.Errorf("%w: private-use uri must be scheme:/path or scheme://host/path", ErrRedirectURI)
	}
	if u.Host == "" && (u.Path == "" || u.Path == "/") {
		return 0, fmt.Errorf("%w: private-use uri has no path", ErrRedirectURI)
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
		return fmt.Errorf("%w: missing host", ErrRedirectURI)
	}
	if p := u.Port(); p != "" {
		if !validPort(p) {
			return fmt.Errorf("%w: invalid port", ErrRedirectURI)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%w: empty port", ErrRedirectURI)
	}
	// Upper case is tolerated in https hosts (browsers lower-case them);
	// loopback http hosts are matched exactly by isLoopbackHost.
	return checkHostName(u.Hostname(), u.Scheme == "https")
}

// checkHostName accepts IP literals and LDH host names. loose also accepts
// underscores and upper case (private-use authorities are not DNS names).
func checkHostName(h string, loose bool) error {
	if h == "" {
		return fmt.Errorf("%w: missing host", ErrRedirectURI)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%w: ip zone not allowed", ErrRedirectURI)
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("%w: host too long", ErrRedirectURI)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%w: invalid host", ErrRedirectURI)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' ||
				loose && (c == '_' || c >= 'A' && c <= 'Z')
			if !ok {
				return fmt.Errorf("%w: invalid host", ErrRedirectURI)
			}
		}
	}
	return nil
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// isLoopbackHost reports whether an http redirect host (with optional port)
// is one of the three loopback spellings of requirement 3. The host must be
// written exactly so (no upper case, no 127.0.0.2, no 0x7f.1).
func isLoopbackHost(hostport string) bool {
	h := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		h = hostport[:i]
	}
	switch h {
	case "127.0.0.1", "[::1]", "localhost":
		return true
	}
	return false
}

// IsLoopbackRedirect reports whether s is a loopback http redirect URI (for
// the consent page's "every redirect stays on this machine" warning).
func IsLoopbackRedirect(s string) bool {
	k, err := CheckRedirectURI(s, RedirectPolicy{})
	return err == nil && k == RedirectLoopback
}
