package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/mcpauth/caddy-mcpauth/authserver"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

// Checks made while the Caddyfile is adapted (requirement 33): what would
// break sign-in silently is refused with the Caddyfile file:line of the
// directive, and what can be derived from the site's address is.

// siteOrigin is one address of the site block a directive is in.
type siteOrigin struct {
	text               string // as written
	scheme, host, port string // host "" for a catch-all address (":8080")
}

// origin is the address as an origin (scheme://host[:port], default ports
// left out), "" when it has no concrete host.
func (o siteOrigin) origin() string {
	if o.host == "" || strings.Contains(o.host, "*") || strings.Contains(o.host, "{") {
		return ""
	}
	h := o.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if o.port != "" && !(o.scheme == "https" && o.port == "443") && !(o.scheme == "http" && o.port == "80") {
		h += ":" + o.port
	}
	return o.scheme + "://" + h
}

// matchesHost reports whether the address serves host (a wildcard label
// matches one label; a catch-all address matches every host).
func (o siteOrigin) matchesHost(host string) bool {
	switch {
	case o.host == "" || strings.Contains(o.host, "{"):
		return true
	case strings.HasPrefix(o.host, "*."):
		_, rest, ok := strings.Cut(host, ".")
		return ok && strings.EqualFold(rest, o.host[2:])
	}
	return strings.EqualFold(o.host, host)
}

// siteAddresses returns the addresses of the site block that h's directive
// is in. httpcaddyfile does not export the enclosing block to directives, so
// its keys are read with reflection (read only); when that is not possible
// (another Caddy layout, a named route) ok is false and nothing is derived
// (TestGuardResourceFromSiteAddress pins the layout).
func siteAddresses(h httpcaddyfile.Helper) (out []siteOrigin, ok bool) {
	if h.IsNamedRoute() {
		return nil, false
	}
	keys := reflect.ValueOf(h).FieldByName("parentBlock").FieldByName("Keys")
	if !keys.IsValid() || keys.Kind() != reflect.Slice || keys.Len() == 0 {
		return nil, false
	}
	for i := range keys.Len() {
		text := keys.Index(i).FieldByName("Text")
		if !text.IsValid() || text.Kind() != reflect.String {
			return nil, false
		}
		a, err := httpcaddyfile.ParseAddress(text.String())
		if err != nil {
			return nil, false
		}
		scheme := a.Scheme
		if scheme == "" {
			scheme = "https"
			if a.Port == "80" {
				scheme = "http"
			}
		}
		out = append(out, siteOrigin{text: text.String(), scheme: scheme, host: strings.ToLower(a.Host), port: a.Port})
	}
	return out, true
}

// adaptedApp is the global mcp_auth block as adapted so far (nil when the
// Caddyfile has none).
func adaptedApp(h httpcaddyfile.Helper) *App {
	v, ok := h.Option("mcp_auth").(httpcaddyfile.App)
	if !ok {
		return nil
	}
	var a App
	if json.Unmarshal(v.Value, &a) != nil {
		return nil
	}
	return &a
}

// concrete reports whether s has no placeholder (its value is known at
// adaptation).
func concrete(s string) bool { return s != "" && !strings.Contains(s, "{") }

// issuerURL parses the app's issuer when it is known at adaptation.
func issuerURL(a *App) *url.URL {
	if a == nil || !concrete(a.Issuer) {
		return nil
	}
	u, err := url.Parse(strings.TrimRight(a.Issuer, "/"))
	if err != nil || u.Host == "" {
		return nil
	}
	return u
}

// noAppAdvice is the error of a directive that needs the global mcp_auth
// block when the Caddyfile has none.
func noAppAdvice(pos, directive, alt string) error {
	return fmt.Errorf("%s: %s needs an authorization server, and this Caddyfile has no global mcp_auth block: "+
		"add `{ mcp_auth { issuer https://<this site> … } }` at the top (served by mcp_auth_server on the issuer's site)%s", pos, directive, alt)
}

// checkServerSite refuses mcp_auth_server without the global block, or on
// a site that does not serve the issuer's host (clients fetch the metadata
// and endpoints at the issuer's origin, so they would never reach it).
func checkServerSite(h httpcaddyfile.Helper, pos string) error {
	app := adaptedApp(h)
	if app == nil {
		return noAppAdvice(pos, "mcp_auth_server", "")
	}
	iu := issuerURL(app)
	sites, ok := siteAddresses(h)
	if iu == nil || !ok {
		return nil
	}
	for _, s := range sites {
		if s.matchesHost(iu.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%s: mcp_auth_server is on a site that does not serve the issuer's host %s (issuer %s): clients look for the authorization server at the issuer's origin; "+
		"put mcp_auth_server in the `%s { … }` site, or set mcp_auth's issuer to this site's URL", pos, iu.Hostname(), app.Issuer, iu.Host)
}

// checkGuard completes and checks an mcp_protect of the Caddyfile: without
// an issuer it needs the global mcp_auth block; without a resource on a
// site that is not the issuer's, the resource is the site's address plus the
// endpoint path (or, when the site has several addresses, it must be
// given); the scopes it requires must be ones the authorization server
// offers (or implied by one), and every method_scope key must name an MCP
// method.
func checkGuard(h httpcaddyfile.Helper, g *Guard, pos string) error {
	for key := range g.MethodScopes {
		if why := resourceguard.CheckMethodScopeKey(key); why != "" {
			return fmt.Errorf("%s: mcp_protect: method_scope %s: %s; a rule that matches no request never requires its scopes", pos, key, why)
		}
	}
	app := adaptedApp(h)
	ours := g.Issuer == "" || (app != nil && strings.TrimRight(g.Issuer, "/") == strings.TrimRight(app.Issuer, "/"))
	if g.Issuer == "" && app == nil {
		return noAppAdvice(pos, "mcp_protect", ", or set `issuer <url>` in this mcp_protect block to accept the tokens of an external authorization server (then `resource` too)")
	}
	if g.Resource == "" {
		if err := deriveResource(h, g, app, ours, pos); err != nil {
			return err
		}
	}
	if ours && app != nil {
		return checkGuardScopes(g, app, pos)
	}
	return nil
}

// deriveResource sets g.Resource from the site's address when the site does
// not serve the issuer's origin (which is the default at provision).
func deriveResource(h httpcaddyfile.Helper, g *Guard, app *App, ours bool, pos string) error {
	sites, ok := siteAddresses(h)
	if !ok {
		return nil
	}
	var origins []string
	for _, s := range sites {
		if o := s.origin(); o != "" && !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	if ours {
		iu := issuerURL(app)
		if iu == nil {
			return nil
		}
		for _, s := range sites {
			if s.matchesHost(iu.Hostname()) {
				return nil // the default: the issuer's origin + path
			}
		}
	}
	if len(origins) == 1 && len(sites) == 1 {
		g.Resource = origins[0] + g.Path
		return nil
	}
	texts := make([]string, len(sites))
	for i, s := range sites {
		texts[i] = s.text
	}
	why := "the site's addresses (" + strings.Join(texts, ", ") + ") do not name one origin"
	if ours {
		why += " and none is the issuer's host"
	}
	return fmt.Errorf("%s: mcp_protect needs `resource <url>` here: %s; give the exact URL clients use for this MCP endpoint (e.g. https://mcp.example.com%s), "+
		"which its metadata and the tokens' audience name", pos, why, g.Path)
}

// checkGuardScopes refuses a required scope (scopes, method_scope) that no
// token of this authorization server can carry.
func checkGuardScopes(g *Guard, app *App, pos string) error {
	offered := append(slices.Clone(app.Scopes), authserver.ScopeOfflineAccess)
	// A scope is obtainable when offered or implied by an obtainable one.
	obtainable := map[string]bool{}
	queue := slices.Clone(offered)
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if obtainable[s] {
			continue
		}
		obtainable[s] = true
		queue = append(queue, g.ScopeHierarchy[s]...)
	}
	list := strings.Join(app.Scopes, " ")
	if list == "" {
		list = "none"
	}
	check := func(where string, scopes []string) error {
		for _, s := range scopes {
			if !obtainable[s] {
				return fmt.Errorf("%s: mcp_protect: %s requires scope %q, which the mcp_auth scopes list does not offer (offered: %s), so no token could ever pass; "+
					"add it to `mcp_auth { scopes … }`, or correct its spelling", pos, where, s, list)
			}
		}
		return nil
	}
	if err := check("scopes", g.Scopes); err != nil {
		return err
	}
	keys := make([]string, 0, len(g.MethodScopes))
	for k := range g.MethodScopes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := check("method_scope "+k, g.MethodScopes[k]); err != nil {
			return err
		}
	}
	return nil
}
