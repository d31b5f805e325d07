#!/usr/bin/env bash
# Builds a Caddy binary with the caddy-mcpauth modules.
# With xcaddy installed it uses xcaddy (the usual way to build Caddy with
# plugins); without it, it builds ./cmd/caddy-mcpauth with `go build`, which
# produces the same set of modules. It says which one it used.
#
#   ./xcaddy.sh [output]      (default output: ./caddy-mcpauth)
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-./caddy-mcpauth}"
caddy_version="$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)"
if command -v xcaddy >/dev/null 2>&1; then
	echo "xcaddy.sh: building with xcaddy (Caddy ${caddy_version}) -> ${out}"
	xcaddy build "${caddy_version}" --output "${out}" --with "github.com/mcpauth/caddy-mcpauth=."
else
	echo "xcaddy.sh: xcaddy not found; building with go build ./cmd/caddy-mcpauth (Caddy ${caddy_version}) -> ${out}"
	go build -trimpath -o "${out}" ./cmd/caddy-mcpauth
fi
"${out}" version
