// Package config is the JSON configuration model of caddy-mcpauth and its
// builders: the `mcp_auth` app's and the `mcp_protect` guard's JSON fields
// (with their defaults and validation), and the functions that turn them
// into the domain packages' configurations (authserver.Config, idp.Config,
// resourceguard.Config, the signing keys' and the CIMD fetcher's).
//
// It holds no Caddy module: caddymodule embeds App and Guard in its module
// types, gathers what only Caddy has (the logger, the shared store pool,
// the placeholder replacer, the metrics registry, the admin config) and
// hands it to the builders as plain values and functions. So the JSON shape
// is defined here once, and the rules can be tested without Caddy.
//
// Duration has caddy.Duration's JSON semantics, so the JSON is unchanged.
//
// Imports: the domain packages (authserver, idp, resourceguard, storage,
// internal/...) and the standard library; never Caddy
// (internal/archtest enforces it).
package config
