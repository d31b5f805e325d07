#!/usr/bin/env bash
# pg-test.sh: a throwaway PostgreSQL cluster for the storage/pgstore tests.
#
# Usage:
#   eval "$(scripts/pg-test.sh start)"   # prints export lines on stdout
#   go test -race ./storage/pgstore/...
#   scripts/pg-test.sh stop              # uses $MCPAUTH_TEST_PG_DIR (or: stop <dir>)
#
#   scripts/pg-test.sh run go test -race ./storage/pgstore/...
#                                        # start, run the command, stop (exit code kept)
#
# When MCPAUTH_TEST_POSTGRES_DSN is already set, start prints it back and
# starts nothing; stop then does nothing. Otherwise start:
#   - finds the Debian server binaries (/usr/lib/postgresql/<ver>/bin, newest
#     first); when they are missing and we are root, runs
#     `apt-get update && apt-get install -y postgresql`;
#   - runs initdb in a fresh temporary directory as a non-root user (root:
#     the `postgres` system user, or a `mcpauth-pg` user created for it);
#   - starts the server on a free 127.0.0.1 port and on a unix socket inside
#     the temporary directory, password (SCRAM) authentication only, fsync off
#     (a test cluster: nothing in it needs to survive a crash;
#     MCPAUTH_TEST_PG_DURABLE=1 keeps the server's durable defaults, for
#     benchmarks);
#   - creates the database `mcpauth_test`;
#   - prints `export MCPAUTH_TEST_POSTGRES_DSN=...` and
#     `export MCPAUTH_TEST_PG_DIR=...`.
# Diagnostics go to stderr so that stdout can be eval'ed.
set -euo pipefail

log() { printf 'pg-test: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

find_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

ensure_bindir() {
	local d
	if d=$(find_bindir); then
		echo "$d"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin and not root: install the 'postgresql' package or set MCPAUTH_TEST_POSTGRES_DSN"
	fi
	log "installing PostgreSQL with apt-get (this takes a minute)"
	DEBIAN_FRONTEND=noninteractive apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
	d=$(find_bindir) || die "apt-get installed postgresql but no server binaries under /usr/lib/postgresql/*/bin"
	echo "$d"
}

# as_user runs a command as the cluster owner ($RUN_AS; empty: ourselves).
as_user() {
	if [[ -n "$RUN_AS" ]]; then
		runuser -u "$RUN_AS" -- "$@"
	else
		"$@"
	fi
}

free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}

cmd_start() {
	if [[ -n "${MCPAUTH_TEST_POSTGRES_DSN:-}" ]]; then
		log "MCPAUTH_TEST_POSTGRES_DSN already set; using it"
		printf 'export MCPAUTH_TEST_POSTGRES_DSN=%q\n' "$MCPAUTH_TEST_POSTGRES_DSN"
		return 0
	fi
	local bindir dir pass port attempt durability
	bindir=$(ensure_bindir)
	RUN_AS=""
	if [[ $(id -u) -eq 0 ]]; then
		if id postgres >/dev/null 2>&1; then
			RUN_AS=postgres
		else
			id mcpauth-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mcpauth-pg
			RUN_AS=mcpauth-pg
		fi
	fi
	dir=$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-pg.XXXXXXXX")
	chmod 0700 "$dir"
	[[ -n "$RUN_AS" ]] && chown "$RUN_AS" "$dir"
	pass=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$pass" >"$dir/pwfile"
	chmod 0600 "$dir/pwfile"
	[[ -n "$RUN_AS" ]] && chown "$RUN_AS" "$dir/pwfile"
	durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	if [[ "${MCPAUTH_TEST_PG_DURABLE:-}" == 1 ]]; then
		durability="" # server defaults: fsync on every commit (for benchmarks)
	fi
	log "initdb in $dir/data with $bindir"
	as_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pwfile" \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		as_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pwfile" \
			-E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	rm -f "$dir/pwfile"
	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		if as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
			-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir $durability -c max_connections=200" >&2; then
			break
		fi
		log "start on port $port failed (attempt $attempt)"
		port=""
		tail -n 5 "$dir/server.log" >&2 || true
	done
	[[ -n "$port" ]] || die "could not start PostgreSQL; see $dir/server.log"
	PGPASSWORD="$pass" "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c "CREATE DATABASE mcpauth_test" >&2 || die "could not create database"
	echo "$port" >"$dir/port"
	log "PostgreSQL running on 127.0.0.1:$port (data in $dir); stop with: $0 stop $dir"
	printf 'export MCPAUTH_TEST_POSTGRES_DSN=%q\n' "postgres://postgres:$pass@127.0.0.1:$port/mcpauth_test?sslmode=disable"
	printf 'export MCPAUTH_TEST_PG_DIR=%q\n' "$dir"
}

cmd_stop() {
	local dir="${1:-${MCPAUTH_TEST_PG_DIR:-}}" bindir
	if [[ -z "$dir" ]]; then
		log "nothing to stop (no directory given and MCPAUTH_TEST_PG_DIR unset)"
		return 0
	fi
	[[ -d "$dir/data" ]] || die "$dir is not a pg-test cluster directory"
	case "$dir" in
	*/mcpauth-pg.*) ;;
	*) die "refusing to remove $dir: not a pg-test directory" ;;
	esac
	bindir=$(find_bindir) || die "PostgreSQL binaries not found"
	RUN_AS=""
	if [[ $(id -u) -eq 0 ]]; then
		RUN_AS=$(stat -c %U "$dir/data")
	fi
	as_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || log "pg_ctl stop failed (already stopped?)"
	rm -rf -- "$dir"
	log "stopped and removed $dir"
}

cmd_run() {
	[[ $# -gt 0 ]] || die "usage: $0 run <command> [args...]"
	local exports rc=0 started=""
	[[ -z "${MCPAUTH_TEST_POSTGRES_DSN:-}" ]] && started=1
	exports=$(cmd_start)
	eval "$exports"
	"$@" || rc=$?
	if [[ -n "$started" ]]; then
		cmd_stop "$MCPAUTH_TEST_PG_DIR"
	fi
	return "$rc"
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
run) shift; cmd_run "$@" ;;
*)
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
