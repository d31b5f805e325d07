package caddymodule

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpauth/caddy-mcpauth/internal/adminapi"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// adminPrefix is where the operator routes live on Caddy's admin endpoint.
const adminPrefix = adminapi.Prefix

// AdminAPI serves the operator routes of the `mcp_auth` app on Caddy's admin
// endpoint (module `admin.api.mcp_auth`, loaded automatically), under
// /mcp_auth/: clients, users, audit, keys and backup (the routes, and what
// each does, are internal/adminapi's). The admin endpoint is as trusted as
// Caddy's own /config API: keep it on localhost or a unix socket.
type AdminAPI struct {
	h      *adminapi.Handler
	appErr error
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_auth",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision finds the mcp_auth app of the config being loaded. A config
// without one still loads; the routes then answer 404.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	v, err := ctx.AppIfConfigured("mcp_auth")
	if err != nil {
		a.appErr = err
		return nil
	}
	app, ok := v.(*App)
	if !ok || app.store == nil {
		a.appErr = errors.New("mcp_auth app is not provisioned")
		return nil
	}
	h, err := newAdminHandler(app, ctx.Slogger())
	if err != nil {
		a.appErr = err
		return nil
	}
	a.h = h
	return nil
}

// newAdminHandler builds the admin API of app: its store, authorization
// server (built on first use), hosted login and signing keys. Operator
// actions are logged by the app's logger, failures of the API by log.
func newAdminHandler(app *App, log *slog.Logger) (*adminapi.Handler, error) {
	return adminapi.New(adminapi.Config{
		Store: app.store,
		Clients: func() (adminapi.Clients, error) {
			s, err := app.Server()
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		Accounts:     app.login,
		Keys:         app.keys,
		Logger:       log,
		ActionLogger: app.slogger,
	})
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// serve answers one admin request; refusals become caddy.APIError, which
// Caddy's admin endpoint sends as {"error": message} with its status.
func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if a.h == nil {
		msg := "mcp_auth app is not configured"
		if a.appErr != nil && !errors.Is(a.appErr, caddy.ErrNotConfigured) {
			msg = "mcp_auth app is unavailable"
		}
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("mcp_auth: %s", msg)}
	}
	err := a.h.Serve(w, r)
	if ae, ok := errors.AsType[*adminapi.Error](err); ok {
		return caddy.APIError{HTTPStatus: ae.Status, Err: ae.Err}
	}
	return err
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
