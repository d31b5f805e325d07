// Package version reports which caddy-mcpauth a binary was built with: the
// module version, the VCS revision, whether the checkout was modified, and
// the Go and Caddy versions, from runtime/debug.ReadBuildInfo. The server
// logs it at start; `mcpauth version` prints it.
//
// It depends only on the standard library (internal/archtest): the Caddy
// version is handed in by the caller, caddymodule.
package version
