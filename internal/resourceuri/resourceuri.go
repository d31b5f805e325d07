// Package resourceuri normalizes resource indicators (RFC 8707): the one
// canonical form shared by the authorization server, which binds tokens to
// it, and the resource guard, which compares a token's aud against it. It is
// a leaf: it imports only the standard library and golang.org/x/net/idna.
package resourceuri

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// maxResourceLen bounds a resource indicator; longer ones are refused.
const maxResourceLen = 2048

// Normalize returns the canonical form of a resource indicator, or an error
// whose text says why it is refused (safe to show to the client). RFC 8707
// §2: "an absolute URI ... MUST NOT include a fragment component". The canonical form has a lower-case scheme
// and host (internationalized names in their ASCII form, IPv6 literals in
// their canonical form), no default port (:443 for https, :80 for http), no
// empty query, and no path for a bare origin ("https://a.example/" and
// "https://a.example" are the same resource). Any other path is kept as is:
// "/mcp" and "/mcp/" are different resources. A query is kept. Userinfo is
// refused. Normalize is idempotent.
func Normalize(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("resource must be an absolute URI")
	}
	if len(raw) > maxResourceLen {
		return "", errors.New("resource is too long")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= 0x20 || c == 0x7f || c == '\\' {
			return "", errors.New("resource contains spaces, control characters or backslashes")
		}
	}
	if strings.ContainsRune(raw, '#') {
		return "", errors.New("resource must not contain a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("resource does not parse as a URI")
	}
	if u.Scheme == "" || u.Opaque != "" || !strings.Contains(raw, "//") {
		return "", errors.New("resource must be an absolute URI with a host")
	}
	if u.User != nil {
		return "", errors.New("resource must not contain userinfo")
	}
	host, err := normalizeHost(u.Hostname())
	if err != nil {
		return "", err
	}
	port := u.Port()
	if strings.HasSuffix(u.Host, ":") && port == "" {
		port = "" // "host:" means the default port
	} else if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 || len(port) > 5 {
			return "", errors.New("resource has an invalid port")
		}
		port = strconv.Itoa(n)
		if (u.Scheme == "https" && n == 443) || (u.Scheme == "http" && n == 80) {
			port = ""
		}
	}
	var b strings.Builder
	b.WriteString(u.Scheme) // url.Parse lower-cases the scheme
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	if p := u.EscapedPath(); p != "/" {
		b.WriteString(p)
	}
	if u.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	out := b.String()
	// The result must itself parse to the same parts; anything exotic that
	// does not survive a round trip is refused rather than guessed at.
	if again, err := url.Parse(out); err != nil || again.Host == "" || again.RawQuery != u.RawQuery {
		return "", errors.New("resource is not a canonical URI")
	}
	return out, nil
}

// normalizeHost lower-cases a host, converts an internationalized name to
// its ASCII (punycode) form and canonicalizes IP literals.
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("resource must have a host")
	}
	if strings.ContainsRune(h, ':') { // IPv6 literal (brackets removed by Hostname)
		a, err := netip.ParseAddr(h)
		if err != nil || a.Zone() != "" || !a.Is6() {
			return "", errors.New("resource has an invalid IPv6 host")
		}
		return "[" + a.String() + "]", nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String(), nil
	}
	if !utf8.ValidString(h) {
		return "", errors.New("resource has an invalid host name")
	}
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil || ascii == "" {
		return "", errors.New("resource has an invalid host name")
	}
	ascii = strings.ToLower(ascii)
	// The ASCII form must be stable, so that normalization is idempotent.
	if again, err := idna.Lookup.ToASCII(ascii); err != nil || again != ascii {
		return "", errors.New("resource has an invalid host name")
	}
	return ascii, nil
}
