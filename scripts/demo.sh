#!/usr/bin/env bash
# The demo: builds caddy-mcpauth and the sample MCP server, starts both with
# Caddyfile.example (embedded bbolt under .demo/, nothing else to install),
# and prints the MCP URL and a demo account. Ctrl-C stops both.
#
# Before anything starts it checks that the demo's ports are free (the HTTP
# port, the sample server's port and Caddy's admin address): a second demo,
# or anything else listening there, makes it exit with an error instead of
# sharing a port. `scripts/demo.sh --check-ports` runs only that check.
set -euo pipefail
cd "$(dirname "$0")/.."

export MCPAUTH_DEMO_PORT="${MCPAUTH_DEMO_PORT:-8080}"
export MCPAUTH_DEMO_UPSTREAM_PORT="${MCPAUTH_DEMO_UPSTREAM_PORT:-9000}"
export MCPAUTH_DEMO_ADMIN="${MCPAUTH_DEMO_ADMIN:-localhost:2019}"

# in_use HOST PORT: something accepts TCP connections there.
in_use() {
	local host=$1 port=$2 h
	if [ "$host" = localhost ] || [ -z "$host" ]; then set -- 127.0.0.1 ::1; else set -- "$host"; fi
	for h in "$@"; do
		if (exec 3<>"/dev/tcp/$h/$port") 2>/dev/null; then return 0; fi
	done
	return 1
}

check_ports() {
	local busy=0 admin_host=${MCPAUTH_DEMO_ADMIN%:*} admin_port=${MCPAUTH_DEMO_ADMIN##*:}
	admin_host=${admin_host#[}; admin_host=${admin_host%]}
	if in_use localhost "$MCPAUTH_DEMO_PORT"; then
		echo "demo.sh: port $MCPAUTH_DEMO_PORT (the demo's HTTP port) is already in use — is another demo running? Stop it or set MCPAUTH_DEMO_PORT." >&2
		busy=1
	fi
	if in_use 127.0.0.1 "$MCPAUTH_DEMO_UPSTREAM_PORT"; then
		echo "demo.sh: port $MCPAUTH_DEMO_UPSTREAM_PORT (the sample MCP server) is already in use — stop what listens there or set MCPAUTH_DEMO_UPSTREAM_PORT." >&2
		busy=1
	fi
	if in_use "$admin_host" "$admin_port"; then
		echo "demo.sh: the admin address $MCPAUTH_DEMO_ADMIN is already in use (another Caddy?) — stop it or set MCPAUTH_DEMO_ADMIN." >&2
		busy=1
	fi
	return $busy
}

if [ "${1:-}" = --check-ports ]; then
	check_ports || exit 1
	echo "demo.sh: ports $MCPAUTH_DEMO_PORT, $MCPAUTH_DEMO_UPSTREAM_PORT and $MCPAUTH_DEMO_ADMIN are free"
	exit 0
fi
check_ports || exit 1
command -v go >/dev/null || { echo "demo.sh: Go 1.26 or later is required" >&2; exit 1; }

export MCPAUTH_DEMO_DIR="${MCPAUTH_DEMO_DIR:-$PWD/.demo}"
export MCPAUTH_DEMO_PASSWORD="${MCPAUTH_DEMO_PASSWORD:-demo-password}"
mkdir -p "$MCPAUTH_DEMO_DIR/bin"

echo "demo: building caddy-mcpauth and the sample MCP server (the first build takes a few minutes)…"
go build -o "$MCPAUTH_DEMO_DIR/bin/caddy-mcpauth" ./cmd/caddy-mcpauth
go build -o "$MCPAUTH_DEMO_DIR/bin/todo" ./examples/todo
# Again right before starting: the build can take minutes.
check_ports || exit 1

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
