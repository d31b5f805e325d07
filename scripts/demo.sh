#!/usr/bin/env bash
# The demo: builds caddy-mcpauth and the sample MCP server, starts both with
# Caddyfile.example (embedded bbolt under .demo/, nothing else to install),
# and prints the MCP URL and a demo account. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "demo.sh: Go 1.26 or later is required" >&2; exit 1; }

export MCPAUTH_DEMO_PORT="${MCPAUTH_DEMO_PORT:-8080}"
export MCPAUTH_DEMO_UPSTREAM_PORT="${MCPAUTH_DEMO_UPSTREAM_PORT:-9000}"
export MCPAUTH_DEMO_DIR="${MCPAUTH_DEMO_DIR:-$PWD/.demo}"
export MCPAUTH_DEMO_PASSWORD="${MCPAUTH_DEMO_PASSWORD:-demo-password}"
mkdir -p "$MCPAUTH_DEMO_DIR/bin"

echo "demo: building caddy-mcpauth and the sample MCP server (the first build takes a few minutes)…"
go build -o "$MCPAUTH_DEMO_DIR/bin/caddy-mcpauth" ./cmd/caddy-mcpauth
go build -o "$MCPAUTH_DEMO_DIR/bin/todo" ./examples/todo

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$MCPAUTH_DEMO_DIR/bin/todo" -addr "127.0.0.1:$MCPAUTH_DEMO_UPSTREAM_PORT" >"$MCPAUTH_DEMO_DIR/todo.log" 2>&1 &
pids+=($!)
"$MCPAUTH_DEMO_DIR/bin/caddy-mcpauth" run --config Caddyfile.example --adapter caddyfile >"$MCPAUTH_DEMO_DIR/caddy.log" 2>&1 &
pids+=($!)

base="http://localhost:$MCPAUTH_DEMO_PORT"
for i in $(seq 1 100); do
	if curl -fsS "$base/.well-known/oauth-authorization-server" >/dev/null 2>&1; then break; fi
	if ! kill -0 "${pids[1]}" 2>/dev/null; then echo "demo: caddy-mcpauth exited; see $MCPAUTH_DEMO_DIR/caddy.log" >&2; tail -n 20 "$MCPAUTH_DEMO_DIR/caddy.log" >&2; exit 1; fi
	sleep 0.2
done
curl -fsS "$base/.well-known/oauth-authorization-server" >/dev/null || { echo "demo: server did not come up; see $MCPAUTH_DEMO_DIR/caddy.log" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/mcp")

cat <<MSG

  caddy-mcpauth demo is running.

  MCP server URL (paste into your MCP client):  $base/mcp
  Demo account:                                 demo@example.com / $MCPAUTH_DEMO_PASSWORD

  Unauthenticated POST $base/mcp answers $status (401 with a WWW-Authenticate challenge is right).
  Authorization server metadata: $base/.well-known/oauth-authorization-server
  Protected resource metadata:   $base/.well-known/oauth-protected-resource/mcp
  Logs: $MCPAUTH_DEMO_DIR/caddy.log, $MCPAUTH_DEMO_DIR/todo.log     State: $MCPAUTH_DEMO_DIR/mcpauth.db

  Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
