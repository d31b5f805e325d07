// Package caddymodule is the only Caddy-aware package of caddy-mcpauth: a
// thin adapter that turns Caddy config into the domain packages' configs.
//
//   - App `mcp_auth` (global option `mcp_auth { … }`) owns the store (bbolt
//     shared across reloads through a caddy.UsagePool, or PostgreSQL), the
//     signing keys, the authorization server and the hosted login.
//   - Handler `http.handlers.mcp_auth_server` (directive `mcp_auth_server`)
//     serves the authorization server's endpoints and login pages on a site.
//   - Handler `http.handlers.mcp_resource_guard` (directive `mcp_protect`)
//     makes the routes after it an OAuth protected resource.
//
// The JSON config of App and Guard is package config's (config.App and
// config.Guard, embedded, so the JSON is flat): its defaults, validation and
// the builders of the domain configs live there. This package gathers what
// only Caddy has (logger, store pool, placeholder replacer, metrics
// registry, admin config, Caddy's storage) and hands it to them.
//
// The Caddyfile is parsed in caddyfile.go: every block is a table of the
// typed subdirective setters of cfparse.go, which check argument counts and
// word the errors in one place.
//
// Nothing here decides an OAuth rule: that lives in authserver,
// resourceguard and idp.
package caddymodule
