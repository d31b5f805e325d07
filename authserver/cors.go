package authserver

import (
	"net/http"
	"strings"
)

// CORS for the endpoints browser-based clients call directly (requirement
// 14): metadata, JWKS, token, revocation and registration. It is never used
// on /authorize, which is a top-level browser navigation. Credentials
// (cookies) are never allowed: clients authenticate with the Authorization
// header or form fields, which need no credentialed CORS, so
// Access-Control-Allow-Credentials is never sent, with "*" or otherwise.
type CORS struct {
	// AllowedOrigins are the origins ("https://app.example") allowed to call
	// the endpoints. Empty allows any origin ("*").
	AllowedOrigins []string
}

const (
	corsAllowMethods  = "GET, POST, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, mcp-protocol-version, DPoP"
	corsExposeHeaders = "WWW-Authenticate, DPoP-Nonce"
	corsMaxAge        = "600"
)

// Wrap returns h with CORS: it answers preflight requests (OPTIONS with
// Origin and Access-Control-Request-Method) itself with 204, or 403 for an
// origin that is not allowed, and adds Access-Control-Allow-Origin and
// Access-Control-Expose-Headers to the responses of allowed origins.
func (c CORS) Wrap(h http.Handler) http.Handler {
	allowed := make(map[string]bool, len(c.AllowedOrigins))
	for _, o := range c.AllowedOrigins {
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	anyOrigin := len(allowed) == 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		hdr := w.Header()
		allowOrigin := ""
		switch {
		case anyOrigin:
			allowOrigin = "*"
		default:
			hdr.Add("Vary", "Origin")
			if origin != "" && allowed[strings.ToLower(origin)] {
				allowOrigin = origin
			}
		}
		preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			hdr.Add("Vary", "Access-Control-Request-Method")
			hdr.Add("Vary", "Access-Control-Request-Headers")
			if allowOrigin == "" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			hdr.Set("Access-Control-Allow-Origin", allowOrigin)
			hdr.Set("Access-Control-Allow-Methods", corsAllowMethods)
			hdr.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			hdr.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if origin != "" && allowOrigin != "" {
			hdr.Set("Access-Control-Allow-Origin", allowOrigin)
			hdr.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		h.ServeHTTP(w, r)
	})
}
