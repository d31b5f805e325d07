#!/usr/bin/env bash
# Checks the deployment examples with the tools that are installed, and says
# which checks it ran: the Dockerfile with hadolint (if on PATH; Docker is not
# needed), the systemd unit with systemd-analyze verify (if on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v hadolint >/dev/null 2>&1; then
	hadolint Dockerfile
	echo "check-deploy: Dockerfile passes hadolint"
else
	echo "check-deploy: hadolint not installed; Dockerfile syntax not checked"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants the ExecStart binary to exist: check a copy that runs /bin/true.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	sed 's|/usr/local/bin/caddy-mcpauth|/bin/true|g' examples/systemd/caddy-mcpauth.service >"$tmp/caddy-mcpauth.service"
	out=$(systemd-analyze verify "$tmp/caddy-mcpauth.service" 2>&1) || { echo "$out" >&2; exit 1; }
	if [ -n "$out" ]; then echo "$out" >&2; echo "check-deploy: systemd-analyze warns about the unit" >&2; exit 1; fi
	echo "check-deploy: examples/systemd/caddy-mcpauth.service passes systemd-analyze verify"
else
	echo "check-deploy: systemd-analyze not installed; unit not checked"
fi
