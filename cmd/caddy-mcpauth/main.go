// Command caddy-mcpauth is Caddy with its standard modules and the
// caddy-mcpauth modules (mcp_auth app, mcp_auth_server and
// mcp_resource_guard handlers) compiled in.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The caddy-mcpauth modules.
	_ "github.com/mcpauth/caddy-mcpauth/caddymodule"
)

func main() {
	caddycmd.Main()
}
