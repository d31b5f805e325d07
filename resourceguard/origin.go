package resourceguard

import (
	"errors"
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

func (g *Guard) setOrigins(res *url.URL, allowed, cors []string) error {
	g.ownOrigin = serializeOrigin(res.Scheme, res.Host)
	g.origins = map[string]bool{}
	if len(allowed) == 0 {
		g.origins[g.ownOrigin] = true
	}
	for _, o := range allowed {
		if o == "*" {
			g.anyOrigin = true
			continue
		}
		so, err := parseOrigin(o)
		if err != nil {
			return err
		}
		g.origins[so] = true
	}
	// CORS origins are allowed by the Origin check too: a preflight answered
	// for an origin must not be followed by a 403 for the same origin.
	for _, o := range cors {
		if o == "*" {
			return errors.New("resourceguard: CORS origin \"*\" is refused (it would disable the DNS-rebinding defence); list the origins")
		}
		so, err := parseOrigin(o)
		if err != nil {
			return err
		}
		g.origins[so] = true
		if g.corsOrigins == nil {
			g.corsOrigins = map[string]bool{}
		}
		g.corsOrigins[so] = true
	}
	return nil
}

// corsAllowed reports whether origin o gets CORS headers: one of
// CORSOrigins when they are set, else any allowed origin (Config.CORS).
func (g *Guard) corsAllowed(o string) bool {
	if !g.originAllowed(o) {
		return false
	}
	if g.corsOrigins == nil {
		return true
	}
	if g.corsOrigins[o] {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && g.corsOrigins[serializeOrigin(u.Scheme, u.Host)]
}

func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("resourceguard: allowed origin %q is not an http(s) origin", o)
	}
	return serializeOrigin(u.Scheme, u.Host), nil
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
	values := r.Header["Origin"] // canonical key
	if len(values) == 0 {
		return nil
	}
	if len(values) == 1 && g.originAllowed(values[0]) {
		return nil
	}
	g.log.Debug("resourceguard: origin refused")
	return &Challenge{Status: http.StatusForbidden, Description: "origin not allowed", outcome: OutcomeOriginRefused}
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

// CORS response headers of the guarded endpoint (requirement 27).
const (
	corsAllowMethods  = "GET, POST, DELETE, OPTIONS"
	corsExposeHeaders = "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version, DPoP-Nonce"
	// corsDefaultAllowHeaders answers a preflight that names no header.
	corsDefaultAllowHeaders = "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, DPoP"
	// corsParamPrefix is the prefix of the MCP 2026-07-28 Mcp-Param-<name>
	// headers: Access-Control-Allow-Headers cannot name a prefix, so the
	// requested ones are echoed.
	corsParamPrefix = "mcp-param-"
	// maxCORSRequestHeaders bounds how many requested names are echoed.
	maxCORSRequestHeaders = 64
)

// corsAllowedHeaders are the request headers (lower case) an MCP client in
// a browser may send: the MCP transport's and authorization's headers.
var corsAllowedHeaders = map[string]bool{
	"authorization": true, "content-type": true, "accept": true, "last-event-id": true,
	"mcp-session-id": true, "mcp-protocol-version": true, "mcp-method": true, "mcp-name": true, "dpop": true,
}

// AllowRequestHeaders returns the value of Access-Control-Allow-Headers for
// a preflight's Access-Control-Request-Headers values: the requested names
// that are allowed (corsAllowedHeaders, or an Mcp-Param-* name), lower case,
// deduplicated, in request order. A name that is not allowed is left out, so
// the browser refuses the request. No request header gives the default list.
func AllowRequestHeaders(requested []string) string {
	if len(requested) == 0 {
		return corsDefaultAllowHeaders
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range requested {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.Trim(name, " \t"))
			if name == "" || seen[name] || !isToken(name) {
				continue
			}
			if !corsAllowedHeaders[name] && (!strings.HasPrefix(name, corsParamPrefix) || len(name) == len(corsParamPrefix)) {
				continue
			}
			seen[name] = true
			out = append(out, name)
			if len(out) == maxCORSRequestHeaders {
				return strings.Join(out, ", ")
			}
		}
	}
	return strings.Join(out, ", ")
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// ServeCORS adds CORS response headers for an allowed Origin when CORS is on
// (Config.CORS or Config.CORSOrigins), and answers a preflight request itself
// (reporting true). Preflights carry no credentials, so they are answered
// before any token check; the actual request is then checked as usual.
// Credentials (cookies) are never allowed, so the origin is echoed and
// Access-Control-Allow-Credentials is never sent.
func (g *Guard) ServeCORS(w http.ResponseWriter, r *http.Request) bool {
	if !g.cors {
		return false
	}
	values := r.Header["Origin"] // canonical key
	if len(values) != 1 || !g.corsAllowed(values[0]) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", values[0])
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	if allow := AllowRequestHeaders(r.Header.Values("Access-Control-Request-Headers")); allow != "" {
		h.Set("Access-Control-Allow-Headers", allow)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
