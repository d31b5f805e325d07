package resourceguard

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Origin validation (MCP transport specification, "Security Warning": servers
// MUST validate the Origin header to prevent DNS rebinding attacks).
//
// A request without an Origin header (every non-browser client) passes. A
// request with one passes only when the origin is in AllowedOrigins, or, when
// that list is empty, equals the resource's own origin. "null" is never
// allowed; "*" in AllowedOrigins allows every origin.

func (g *Guard) setOrigins(res *url.URL, allowed []string) error {
	g.ownOrigin = serializeOrigin(res.Scheme, res.Host)
	g.origins = map[string]bool{}
	if len(allowed) == 0 {
		g.origins[g.ownOrigin] = true
		return nil
	}
	for _, o := range allowed {
		if o == "*" {
			g.anyOrigin = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("resourceguard: allowed origin %q is not an http(s) origin", o)
		}
		g.origins[serializeOrigin(u.Scheme, u.Host)] = true
	}
	return nil
}

// serializeOrigin lower-cases scheme and host and drops the default port, as
// browsers serialize origins.
func serializeOrigin(scheme, host string) string {
	scheme = strings.ToLower(scheme)
	host = strings.ToLower(host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

func (g *Guard) checkOrigin(r *http.Request) *Challenge {
	values := r.Header.Values("Origin")
	if len(values) == 0 {
		return nil
	}
	if len(values) == 1 && g.originAllowed(values[0]) {
		return nil
	}
	g.log.Debug("resourceguard: origin refused")
	return &Challenge{Status: http.StatusForbidden, Description: "origin not allowed"}
}

func (g *Guard) originAllowed(o string) bool {
	if g.anyOrigin {
		return true
	}
	if o == "" || o == "null" {
		return false
	}
	if g.origins[o] {
		return true
	}
	// Tolerate a non-canonical spelling (upper case, default port).
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false
	}
	return g.origins[serializeOrigin(u.Scheme, u.Host)]
}

// ServeCORS adds CORS response headers for an allowed Origin when the CORS
// option is on, and answers a preflight request itself (reporting true).
// Preflights carry no credentials, so they are answered before any token
// check; the actual request is then checked as usual.
func (g *Guard) ServeCORS(w http.ResponseWriter, r *http.Request) bool {
	if !g.cors {
		return false
	}
	values := r.Header.Values("Origin")
	if len(values) != 1 || !g.originAllowed(values[0]) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", values[0])
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
