// Package upstream holds the small checks the upstream identity providers
// (idp/oidc, idp/saml) share: icon and endpoint URLs, and the
// cleaning of text an upstream asserts before it is stored or shown.
package upstream

import (
	"net"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Printable reports whether s is valid UTF-8 without control characters.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// CleanText drops control characters and invalid UTF-8, trims, and cuts s
// to at most max bytes on a rune boundary.
func CleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// SecureURL reports whether u is https, or http on a loopback host.
func SecureURL(u *url.URL) bool {
	return u.Scheme == "https" || u.Scheme == "http" && IsLoopback(u.Hostname())
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ValidIcon accepts an https URL or an inline data:image URL.
func ValidIcon(s string) bool {
	if strings.HasPrefix(s, "data:image/") {
		return !strings.ContainsAny(s, "\"'<> ")
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}
