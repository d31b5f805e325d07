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
