#!/usr/bin/env bash
# Runs every test of caddy-mcpauth: static checks, unit and conformance
# tests (bbolt and a real PostgreSQL), fuzz seed corpora, and the end-to-end
# tests against a real Caddy process with real clients (x/oauth2, the MCP Go
# and TypeScript SDKs, the MCP conformance suite, headless Chromium).
#
# It installs what the tests need (npm packages from the lockfile, Debian's
# chromium and postgresql when missing and running as root) and fails with a
# clear message when it cannot; it never skips a part silently.
#
#   scripts/test.sh            # everything, with -race
#   MCPAUTH_TEST_POSTGRES_DSN=postgres://… scripts/test.sh   # use an existing server
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
# Tests that need an installed component fail instead of skipping.
export MCPAUTH_TEST_STRICT=1
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is required (https://go.dev/dl/); Go 1.26 or later"

step "installing test dependencies"
scripts/test-deps.sh

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './e2e/node/*'))
[[ -z "$unformatted" ]] || die "gofmt would change: $unformatted"

step "go vet"
go vet ./...

step "staticcheck"
if ! command -v staticcheck >/dev/null; then
	GOBIN="$(go env GOPATH)/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	export PATH="$(go env GOPATH)/bin:$PATH"
fi
staticcheck ./...

step "deployment examples (Dockerfile, systemd unit)"
scripts/check-deploy.sh

step "starting PostgreSQL for the pgstore tests"
eval "$(scripts/pg-test.sh start)"
[[ -n "${MCPAUTH_TEST_PG_DIR:-}" ]] && trap 'scripts/pg-test.sh stop "$MCPAUTH_TEST_PG_DIR"' EXIT

step "go test -race ./... (unit, conformance, fuzz seeds, end-to-end)"
export MCPAUTH_E2E_ARTIFACTS="${MCPAUTH_E2E_ARTIFACTS:-$PWD/test-artifacts}"
mkdir -p "$MCPAUTH_E2E_ARTIFACTS"
go test -race -count=1 -timeout 40m ./...
