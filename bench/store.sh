#!/bin/bash
# Store benchmark: the store's hot paths (API key lookup on every API
# request, content by guid, appending a deploy log line, claiming a due
# schedule) on SQLite and, when DAIS_TEST_POSTGRES_URL is set, PostgreSQL.
# Peer, same run, same database: the bare statement as a prepared
# database/sql query (raw key lookup; raw single-row INSERT for writes).
# Also opening the store (new: creates and migrates; existing: checks the
# schema version) against sql.Open+Ping of the same file.
# Bounded: a fixed 300 iterations per measure (30 for opening), best of 3.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/store.txt
mkdir -p bench/results
raw=$(go test -run '^$' -bench 'BenchmarkStore' -benchtime=300x -count=3 ./server/store
	go test -run '^$' -bench 'BenchmarkOpenSQLite' -benchtime=30x -count=3 ./server/store)
# The best of three runs: the machine may be shared.
ns() { awk -v n="Benchmark$1" '$1 ~ "^"n"(-[0-9]+)?$" && (m == "" || $3 < m) {m = $3} END {print m}' <<<"$raw"; }
[[ -n $(ns Store/sqlite/APIKeyByHash) && -n $(ns OpenSQLite/raw) ]] || { echo "bench/store: could not read the benchmark output:" >&2; echo "$raw" >&2; exit 1; }
{
	printf 'store hot paths, %s, %s CPUs, load %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
	printf '%-8s %-26s %10s %-22s %10s\n' dialect operation us/op peer "vs peer"
	for d in sqlite postgres; do
		[[ -n $(ns Store/$d/APIKeyByHash) ]] || { printf '%-8s (skipped: DAIS_TEST_POSTGRES_URL not set)\n' "$d"; continue; }
		for op in APIKeyByHash:raw/APIKeyByHash ContentByGUID:raw/APIKeyByHash AppendTaskOutput:raw/InsertLine ClaimSchedule:raw/InsertLine; do
			o=${op%%:*} p=${op#*:}
			label="raw 1-row select"; [[ $p == raw/InsertLine ]] && label="raw 1-row insert"
			awk -v d="$d" -v o="$o" -v p="$label" -v a="$(ns Store/$d/$o)" -v b="$(ns Store/$d/$p)" 'BEGIN {
				printf "%-8s %-26s %10.1f %-22s %9.2fx\n", d, o, a / 1000, p, a / b }'
		done
	done
	for o in new existing; do
		awk -v o="$o" -v a="$(ns OpenSQLite/$o)" -v b="$(ns OpenSQLite/raw)" 'BEGIN {
			printf "%-8s %-26s %10.1f %-22s %9.2fx\n", "sqlite", "OpenSQLite (" o ")", a / 1000, "sql.Open+Ping", a / b }'
	done
} | tee "$out"
