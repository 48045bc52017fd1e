#!/bin/bash
# Store benchmark: the store's hot paths (API key lookup on every API
# request, content by guid, appending a deploy log line, claiming a due
# schedule) on SQLite and, when DAIS_TEST_POSTGRES_URL is set, PostgreSQL.
# Peer, same run, same database: the bare statement as a prepared
# database/sql query (raw key lookup; raw single-row INSERT for writes).
# Bounded: a fixed 300 iterations per measure.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/store.txt
mkdir -p bench/results
raw=$(go test -run '^$' -bench 'BenchmarkStore' -benchtime=300x ./server/store)
ns() { awk -v n="BenchmarkStore/$1" '$1 ~ "^"n"(-[0-9]+)?$" {print $3}' <<<"$raw"; }
[[ -n $(ns sqlite/APIKeyByHash) ]] || { echo "bench/store: could not read the benchmark output:" >&2; echo "$raw" >&2; exit 1; }
{
	printf 'store hot paths, %s, %s CPUs, load %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
	printf '%-8s %-26s %10s %-22s %10s\n' dialect operation us/op peer "vs peer"
	for d in sqlite postgres; do
		[[ -n $(ns $d/APIKeyByHash) ]] || { printf '%-8s (skipped: DAIS_TEST_POSTGRES_URL not set)\n' "$d"; continue; }
		for op in APIKeyByHash:raw/APIKeyByHash ContentByGUID:raw/APIKeyByHash AppendTaskOutput:raw/InsertLine ClaimSchedule:raw/InsertLine; do
			o=${op%%:*} p=${op#*:}
			label="raw 1-row select"; [[ $p == raw/InsertLine ]] && label="raw 1-row insert"
			awk -v d="$d" -v o="$o" -v p="$label" -v a="$(ns $d/$o)" -v b="$(ns $d/$p)" 'BEGIN {
				printf "%-8s %-26s %10.1f %-22s %9.2fx\n", d, o, a / 1000, p, a / b }'
		done
	done
} | tee "$out"
