package caddymodule

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpauth/caddy-mcpauth/internal/discovery"
	"github.com/mcpauth/caddy-mcpauth/resourceguard"
)

func init() {
	caddy.RegisterModule(ServerHandler{})
	httpcaddyfile.RegisterHandlerDirective("mcp_auth_server", parseServerHandler)
	httpcaddyfile.RegisterDirectiveOrder("mcp_auth_server", httpcaddyfile.Before, "basic_auth")
}

// ServerHandler serves the `mcp_auth` app's authorization server endpoints
// (metadata, JWKS, /authorize, /token, /revoke, /register) and its hosted
// login pages on a site. Every discovery path of the issuer's origin
// answers JSON: the metadata, or a JSON 404 (requirement 28; see
// discovery.go). Every other request passes to the next handler.
//
// Caddyfile:
//
//	mcp_auth_server
type ServerHandler struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (ServerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_auth_server",
		New: func() caddy.Module { return new(ServerHandler) },
	}
}

// Provision finds the mcp_auth app.
func (h *ServerHandler) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx, "mcp_auth_server")
	if err != nil {
		return err
	}
	h.app = app
	return nil
}

// ServeHTTP serves the authorization server and login routes.
func (h *ServerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.app.login.Handles(r) {
		h.app.login.ServeHTTP(w, r)
		return nil
	}
	srv, err := h.app.Server()
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	if srv.Handles(r) {
		srv.ServeHTTP(w, r)
		return nil
	}
	p := r.URL.Path
	switch {
	case discovery.PRMFamily(p):
		// Protected resource metadata is the guards' (mcp_protect later on
		// this site); a path none of them serves here is a JSON 404.
		if !h.app.prmRegistry().ServedElsewhere(p, r.Host, hostOf(h.app.Issuer)) {
			resourceguard.WriteNotFound(w, r)
			return nil
		}
		resourceguard.PrepareUpstream(r, nil, resourceguard.IdentityHeaders{})
		return nextOrNotFound(w, r, next)
	case discovery.Appended(p):
		// Not the product's path, but never Caddy's empty 200 either.
		return nextOrNotFound(w, r, next)
	}
	return next.ServeHTTP(w, r)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *ServerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("mcp_auth_server takes no options; configure the global mcp_auth block")
	}
	return nil
}

func parseServerHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var s ServerHandler
	if err := s.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if err := checkServerSite(h, fmt.Sprintf("%s:%d", h.File(), h.Line())); err != nil {
		return nil, err
	}
	return &s, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ServerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ServerHandler)(nil)
	_ caddyfile.Unmarshaler       = (*ServerHandler)(nil)
)
