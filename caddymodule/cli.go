package caddymodule

import (
	"errors"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/mcpauth/caddy-mcpauth/internal/opscli"
	"github.com/mcpauth/caddy-mcpauth/internal/version"
)

// The operator CLI lives in internal/opscli; this registers it with Caddy
// and hands it what only Caddy knows.

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mcpauth",
		Usage: "clients|users|audit|keys|backup|migrate-store|version|doctor ...",
		Short: "Operates the mcp_auth app of a running server (clients, users, audit, keys)",
		Long: `
Operates the mcp_auth app of a running caddy-mcpauth through its admin API
(the bbolt store is locked by the running process, so these commands never
open it themselves; only migrate-store and backup --db do, offline).

  mcpauth clients list|show <id>|disable <id>|enable <id>|revoke <id>
  mcpauth users add <email> [--name N] [--password-stdin]
  mcpauth users list|disable <id>|enable <id>|set-password <id>|revoke-sessions <id>
  mcpauth audit tail [--limit N] [--type T] [--client-id ID] [--since 24h]
  mcpauth keys list|rotate
  mcpauth backup <file>           (a consistent copy of the live bbolt store)
  mcpauth version                 (the plugin's version and VCS revision)
  mcpauth doctor <mcp-url>        (replays each major client's discovery and
                                  sign-in preflight against a site; no admin API)
  mcpauth migrate-store --from bbolt:<path> --to postgres:env:<VAR>
                                  (offline: stop the server first; also postgres -> bbolt)

A user may be named by id or email. Passwords are read from --password-stdin,
else the MCPAUTH_PASSWORD environment variable, else prompted on the
terminal; never from the command line.

The admin address is --address, else CADDY_ADMIN, else localhost:2019 (as
for 'caddy reload'). --json prints the API's JSON instead of a table.
`,
		CobraFunc: func(cmd *cobra.Command) { opscli.Setup(cmd, cliConfig(opscli.Env{})) },
	})
}

// cliConfig is the CLI's view of this Caddy: its default admin address,
// its address syntax, where the mcp_auth admin routes live, its version.
func cliConfig(env opscli.Env) opscli.Config {
	return opscli.Config{
		DefaultAdmin: caddy.DefaultAdminListen,
		APIPrefix:    adminPrefix,
		ResolveAdmin: adminEndpoint,
		Version:      PluginVersion,
		Env:          env,
	}
}

// adminEndpoint parses an admin address as Caddy's admin listener does.
func adminEndpoint(addr string) (opscli.AdminEndpoint, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return opscli.AdminEndpoint{}, err
	}
	if na.PortRangeSize() > 1 {
		return opscli.AdminEndpoint{}, errors.New("a port range is not one address")
	}
	if na.IsUnixNetwork() {
		// Drop the socket permission bits (unix//path|0220).
		return opscli.AdminEndpoint{Network: na.Network, Address: strings.SplitN(na.Host, "|", 2)[0], Unix: true}, nil
	}
	return opscli.AdminEndpoint{Network: na.Network, Address: na.JoinHostPort(0)}, nil
}

// PluginVersion reports the plugin's version and revision (logged at start,
// printed by `mcpauth version`).
func PluginVersion() version.Info {
	s, _ := caddy.Version()
	return version.Plugin(s)
}
