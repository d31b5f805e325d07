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
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "guard-icount: valgrind is required (apt-get install valgrind)" >&2; exit 1; }
n=${MCPAUTH_ICOUNT_N:-2000}
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
		out=$(GOGC=off GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
			--toggle-collect='*resourceguard.serveBench*' --callgrind-out-file="$tmp/cg.out" \
			"$tmp/rg.test" -test.run '^$' -test.bench "^BenchmarkWrapMCP/$name\$" -test.benchtime "${n}x" -test.v 2>&1) || {
			echo "$out" | tail -20 >&2
			exit 1
		}
		ir=$(echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
		calls=$(echo "$out" | sed -n 's/.*serveBench calls: \([0-9]*\).*/\1/p' | tail -1)
		if [ -z "$ir" ] || [ -z "$calls" ] || [ "$calls" -eq 0 ]; then
			echo "guard-icount: no count for $name" >&2
			echo "$out" | tail -20 >&2
			exit 1
		fi
		per=$((ir / calls))
		if [ "$v" = unguarded ]; then
			base=$per
			printf '%-24s %8d instructions/request\n' "$name" "$per"
		else
			printf '%-24s %8d instructions/request (guard: %d)\n' "$name" "$per" "$((per - base))"
		fi
	done
done
