package cimd

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mcpauth/caddy-mcpauth/authserver/oauth"
)

// MaxClientIDLength caps a Client Identifier URL, in bytes. The draft sets no
// limit; the id is shown to users, stored as a key and put in every token.
const MaxClientIDLength = 1024

// ValidClientIDURL checks a Client Identifier URL
// (draft-ietf-oauth-client-id-metadata-document §3) in production mode:
//
//   - "https" scheme, written in lower case;
//   - no userinfo;
//   - a path other than "/" (the draft: "MUST contain a path component";
//     a bare "/" is NOT RECOMMENDED there and refused here: it is the
//     origin's home page, not a client document);
//   - no "." or ".." path segments, also percent-encoded ("%2e", ".%2E"),
//     and no encoded "/" or "\" in the path (servers disagree on them);
//   - no fragment, not even an empty one;
//   - a query is accepted: the draft says SHOULD NOT, not MUST NOT, and the
//     URL is compared as a plain string, so a query cannot alias another
//     client (choice, documented in the package doc);
//   - a port is accepted (MAY);
//   - the host is a lower-case DNS name: never an IP literal, never a name
//     that a browser or resolver would read as an IPv4 address (decimal
//     "2130706433", hex "0x7f000001", "127.1"), no trailing dot;
//   - ASCII only, no whitespace or control characters, at most
//     MaxClientIDLength bytes.
//
// It does no I/O. Errors wrap ErrInvalidClientID and never echo the URL.
func ValidClientIDURL(s string) error {
	return validClientIDURL(s, false)
}

// validClientIDURL is ValidClientIDURL; allowIPLiteral admits loopback
// development URLs such as https://127.0.0.1:8443/client.json (the dial
// check still decides which addresses are reachable).
func validClientIDURL(s string, allowIPLiteral bool) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidClientID)
	}
	if len(s) > MaxClientIDLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidClientID, MaxClientIDLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= 0x20 || c >= 0x7f:
			return fmt.Errorf("%w: contains whitespace, control or non-ascii characters", ErrInvalidClientID)
		case c == '\\':
			return fmt.Errorf("%w: contains a backslash", ErrInvalidClientID)
		case c == '#':
			return fmt.Errorf("%w: contains a fragment", ErrInvalidClientID)
		}
	}
	if !strings.HasPrefix(s, "https://") {
		return fmt.Errorf("%w: scheme must be https", ErrInvalidClientID)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: not a valid url", ErrInvalidClientID)
	}
	if u.User != nil || strings.Contains(authority(s), "@") {
		return fmt.Errorf("%w: contains userinfo", ErrInvalidClientID)
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidClientID)
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%w: empty port", ErrInvalidClientID)
	}
	if p := u.Port(); p != "" && !oauth.ValidPort(p) {
		return fmt.Errorf("%w: invalid port", ErrInvalidClientID)
	}
	if err := checkHost(u.Hostname(), allowIPLiteral); err != nil {
		return err
	}
	rawPath := u.EscapedPath()
	if rawPath == "" || rawPath == "/" {
		return fmt.Errorf("%w: missing path", ErrInvalidClientID)
	}
	for _, seg := range strings.Split(rawPath, "/") {
		lower := strings.ToLower(seg)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
			return fmt.Errorf("%w: encoded slash in path", ErrInvalidClientID)
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return fmt.Errorf("%w: invalid percent-encoding", ErrInvalidClientID)
		}
		if dec == "." || dec == ".." {
			return fmt.Errorf("%w: dot segment in path", ErrInvalidClientID)
		}
	}
	if !validEscapes(s) {
		return fmt.Errorf("%w: invalid percent-encoding", ErrInvalidClientID)
	}
	return nil
}

// validEscapes reports whether every "%" starts a two-hex-digit escape.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		i += 2
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// authority returns the text between "https://" and the next "/", "?" or end.
func authority(s string) string {
	rest := strings.TrimPrefix(s, "https://")
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// checkHost applies the host rules of ValidClientIDURL.
func checkHost(h string, allowIPLiteral bool) error {
	if h == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidClientID)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if !allowIPLiteral || a.Zone() != "" {
			return fmt.Errorf("%w: host must be a dns name, not an ip address", ErrInvalidClientID)
		}
		return nil
	}
	if strings.HasSuffix(h, ".") {
		return fmt.Errorf("%w: host has a trailing dot", ErrInvalidClientID)
	}
	if len(h) > 253 {
		return fmt.Errorf("%w: host too long", ErrInvalidClientID)
	}
	labels := strings.Split(h, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: invalid host", ErrInvalidClientID)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: host must be a lower-case dns name", ErrInvalidClientID)
			}
		}
	}
	// WHATWG URL "ends in a number": a last label that is all digits or 0x
	// hex is parsed as an IPv4 address by browsers and by inet_aton-style
	// resolvers (2130706433, 0x7f000001, 127.1, 0177.0.0.1). Refuse it.
	last := labels[len(labels)-1]
	if allDigits(last) || (strings.HasPrefix(last, "0x") && allHex(last[2:])) {
		return fmt.Errorf("%w: host must be a dns name, not an ip address", ErrInvalidClientID)
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// hostOf returns the lower-case host name of a validated client id URL.
func hostOf(clientID string) string {
	u, err := url.Parse(clientID)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
