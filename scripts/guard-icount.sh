#!/usr/bin/env bash
# Instructions the resource guard executes per request, counted by valgrind
# (callgrind) in BenchmarkWrapMCP's serveBench: a deterministic figure for
# judging a change to the guard's hot path on a machine whose timings drift
# (BENCHMARKS.md). The guard's cost is a workload's count minus its
# -unguarded count. valgrind runs SHA-256 with AVX2 instead of the SHA
# extensions most servers have, so the token hash counts more than it costs.
#
#   scripts/guard-icount.sh [workload ...]   (default: call-json, list-json)
#   MCPAUTH_ICOUNT_N=2000                     requests per workload
#   MCPAUTH_ICOUNT_CACHE=1                    also simulate the data caches
#
# With MCPAUTH_ICOUNT_CACHE=1, callgrind also simulates a 32 KiB L1 and a
# 1 MiB last-level data cache, and the script prints the last-level read
# misses per request: the lines of memory a request reads that were not
# cached, which is what 1,000 distinct tokens cost beyond one (their cache
# entries). The small last level stands in for the share of a real cache
# that a whole server leaves the guard; the figure compares code, it does
# not predict a machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "guard-icount: valgrind is required (apt-get install valgrind)" >&2; exit 1; }
n=${MCPAUTH_ICOUNT_N:-2000}
cachesim=()
[ "${MCPAUTH_ICOUNT_CACHE:-}" = 1 ] && cachesim=(--cache-sim=yes --D1=32768,8,64 --LL=1048576,16,64)
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(call-json list-json)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/rg.test" ./resourceguard
cd resourceguard # the test binary's working directory, as go test runs it
for w in "${workloads[@]}"; do
	for v in unguarded 1 1000; do
		name="$w-$v"
		# One P, no collector and no async preemption: callgrind follows one
		# goroutine's stack, and the count is the same from run to run.
		out=$(GOGC=off GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind "${cachesim[@]}" \
			--toggle-collect='*resourceguard.serveBench*' --callgrind-out-file="$tmp/cg.out" \
			"$tmp/rg.test" -test.run '^$' -test.bench "^BenchmarkWrapMCP/$name\$" -test.benchtime "${n}x" -test.v 2>&1) || {
			echo "$out" | tail -20 >&2
			exit 1
		}
		# "Collected : Ir [Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw]"
		collected=$(echo "$out" | sed -n 's/.*Collected : \([0-9 ]*\).*/\1/p')
		ir=$(echo "$collected" | awk '{print $1}')
		dlmr=$(echo "$collected" | awk '{print $8}')
		calls=$(echo "$out" | sed -n 's/.*serveBench calls: \([0-9]*\).*/\1/p' | tail -1)
		if [ -z "$ir" ] || [ -z "$calls" ] || [ "$calls" -eq 0 ]; then
			echo "guard-icount: no count for $name" >&2
			echo "$out" | tail -20 >&2
			exit 1
		fi
		per=$((ir / calls))
		misses=""
		if [ ${#cachesim[@]} -gt 0 ]; then
			[ -n "$dlmr" ] || { echo "guard-icount: no cache figures for $name" >&2; exit 1; }
			misses=$(awk -v m="$dlmr" -v c="$calls" 'BEGIN { printf ", %.2f LL read misses/request", m / c }')
		fi
		if [ "$v" = unguarded ]; then
			base=$per
			printf '%-24s %8d instructions/request%s\n' "$name" "$per" "$misses"
		else
			printf '%-24s %8d instructions/request (guard: %d)%s\n' "$name" "$per" "$((per - base))" "$misses"
		fi
	done
done
