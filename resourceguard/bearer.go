package resourceguard

import (
	"net/http"
	"strings"
)

// maxTokenLen bounds an access token; longer ones are refused before any
// parsing. Real JWT access tokens are well under 4 KiB.
const maxTokenLen = 16 << 10

// bearerToken extracts the access token (RFC 6750 §2.1). Only the
// Authorization request header field is supported (bearer_methods_supported:
// ["header"]); a token in the query string (§2.3) or two Authorization
// headers is a malformed request.
func (g *Guard) bearerToken(r *http.Request) (string, *Challenge) {
	if q := r.URL.RawQuery; q != "" && queryHasAccessToken(q) {
		// 401, not §3.1's 400: the challenge (with resource_metadata) tells
		// the client where to get a token and how to send it, and a 401 is
		// what MCP clients act on; the error code still says why.
		return "", &Challenge{Status: http.StatusUnauthorized, Error: ErrorInvalidRequest,
			Description: "access tokens are accepted only in the Authorization header", Scopes: g.baseScopes}
	}
	values := r.Header["Authorization"] // canonical key: Values would canonicalize it on every request
	switch len(values) {
	case 0:
		return "", &Challenge{Status: http.StatusUnauthorized, Scopes: g.baseScopes}
	case 1:
	default:
		return "", invalidRequest("more than one Authorization header")
	}
	// The token's characters are checked on a cache miss (verified): a
	// cached token is one that passed that check, and the scan of its
	// ~800 bytes need not run on every request.
	tok, kind := splitScheme(values[0], "bearer")
	switch kind {
	case BearerOK:
		return tok, nil
	case BearerOtherScheme:
		return "", &Challenge{Status: http.StatusUnauthorized, Scopes: g.baseScopes}
	default:
		return "", invalidToken("malformed bearer token")
	}
}

// BearerResult classifies an Authorization header value.
type BearerResult int

const (
	// BearerOK: "Bearer <b64token>".
	BearerOK BearerResult = iota
	// BearerOtherScheme: another authentication scheme (or an empty value).
	BearerOtherScheme
	// BearerMalformed: the Bearer scheme with a missing or invalid token.
	BearerMalformed
)

// ParseBearer parses an Authorization header value per RFC 6750 §2.1:
//
//	credentials = "Bearer" 1*SP b64token
//	b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// The scheme is case-insensitive (RFC 9110 §11.1). Tokens longer than 16 KiB
// are malformed.
func ParseBearer(v string) (string, BearerResult) {
	return parseScheme(v, "bearer")
}

// parseScheme is ParseBearer for the (lower-case) scheme: Bearer, or DPoP
// (RFC 9449 §7.1: the same token68 syntax).
func parseScheme(v, scheme string) (string, BearerResult) {
	rest, kind := splitScheme(v, scheme)
	if kind == BearerOK && !validB64Token(rest) {
		return "", BearerMalformed
	}
	return rest, kind
}

// splitScheme is parseScheme without the check of the token's characters
// (validB64Token): the caller must make it before the token is trusted.
func splitScheme(v, scheme string) (string, BearerResult) {
	v = strings.Trim(v, " \t")
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", BearerOtherScheme
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", BearerMalformed
	}
	if rest[0] != ' ' {
		if isTokenChar(rest[0]) {
			return "", BearerOtherScheme // e.g. "BearerX abc": a different scheme name
		}
		return "", BearerMalformed
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" || len(rest) > maxTokenLen {
		return "", BearerMalformed
	}
	return rest, BearerOK
}

func validB64Token(s string) bool {
	// A table, not a chain of comparisons: every request's token (about
	// 800 bytes for a JWT) goes through this before the cache lookup.
	i := 0
	for ; i < len(s) && b64TokenChar[s[i]]; i++ {
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64TokenChar: the token68 characters of RFC 9110 §11.2 before the
// padding (ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/").
var b64TokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// isTokenChar: tchar of RFC 9110 §5.6.2.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
