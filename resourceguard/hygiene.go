package resourceguard

import (
	"net/http"
	"net/url"
	"strings"
)

// Request header limits (13a): a request with more header fields, or more
// header bytes, than this is refused with 431 before any other work. The
// size default leaves room for a maximal bearer token (16 KiB).
const (
	defaultMaxHeaders     = 100
	defaultMaxHeaderBytes = 32 << 10
)

// checkHeaderLimits counts every field line (each value of a repeated
// header counts) and sums len(name)+len(value)+4 (": " and CRLF), as on the
// wire. It does not allocate.
func (g *Guard) checkHeaderLimits(r *http.Request) *Challenge {
	if g.maxHeaders < 0 && g.maxHdrBytes < 0 {
		return nil
	}
	n, size := 0, 0
	for k, vs := range r.Header {
		n += len(vs)
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if (g.maxHeaders >= 0 && n > g.maxHeaders) || (g.maxHdrBytes >= 0 && size > g.maxHdrBytes) {
		g.log.Debug("resourceguard: request headers over the limit", "fields", n, "bytes", size)
		return &Challenge{Status: http.StatusRequestHeaderFieldsTooLarge, Description: "the request has too many or too large header fields"}
	}
	return nil
}

// IsProductCookie reports whether a cookie name is one of caddy-mcpauth's
// own: any name that, after an optional __Host- or __Secure- prefix, starts
// with "mcpauth_" (the hosted login's session and CSRF cookies, the OIDC
// and SAML binding cookies). The comparison ignores ASCII case.
func IsProductCookie(name string) bool {
	for _, p := range [...]string{"__Host-", "__Secure-"} {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			name = name[len(p):]
			break
		}
	}
	const prefix = "mcpauth_"
	return len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix)
}

// stripProductCookies removes the product's own cookies from every Cookie
// header and drops headers left empty. The others are kept byte for byte
// (joined with "; "). It allocates only when it removes something.
func stripProductCookies(h http.Header) {
	values := h["Cookie"]
	if len(values) == 0 {
		return
	}
	found := false
	for _, v := range values {
		if hasProductCookie(v) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var kept []string
	for _, v := range values {
		if !hasProductCookie(v) {
			kept = append(kept, v)
			continue
		}
		var b strings.Builder
		for pair := range strings.SplitSeq(v, ";") {
			pair = strings.TrimSpace(pair)
			if pair == "" || IsProductCookie(cookieName(pair)) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(pair)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

func hasProductCookie(v string) bool {
	for pair := range strings.SplitSeq(v, ";") {
		if IsProductCookie(cookieName(strings.TrimSpace(pair))) {
			return true
		}
	}
	return false
}

func cookieName(pair string) string {
	name, _, _ := strings.Cut(pair, "=")
	return strings.TrimSpace(name)
}

// queryHasAccessToken reports whether a raw query carries an access_token
// parameter (RFC 6750 §2.3) in any spelling an upstream might read: pairs
// split on "&" and ";", names percent-decoded ("+" is a space), and " " or
// "." read as "_" (as PHP does), ASCII case ignored (some frameworks bind
// query parameters case-insensitively). It allocates only for names that
// need decoding.
func queryHasAccessToken(q string) bool {
	for q != "" {
		var pair string
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, ""
		}
		name, _, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(name, "%+") {
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
		}
		if len(name) != len("access_token") {
			continue
		}
		if strings.EqualFold(name[:len("access")], "access") && (name[6] == '_' || name[6] == ' ' || name[6] == '.') &&
			strings.EqualFold(name[7:], "token") {
			return true
		}
	}
	return false
}
