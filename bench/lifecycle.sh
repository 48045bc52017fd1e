#!/bin/bash
# Scheduler benchmark: one pass over 50 due schedules, claimed one by one
# with the store's compare-and-swap (safe when several servers share one
# PostgreSQL), against the naive peer measured in the same run: read the due
# schedules, then a plain UPDATE of each (what a one-server scheduler
# without a claim would do). SQLite always; PostgreSQL when
# DAIS_TEST_POSTGRES_URL is set. Bounded: DAIS_BENCH_RUNS passes (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/lifecycle.txt
runs=${DAIS_BENCH_RUNS:-20}
mkdir -p bench/results
raw=$(go test -run '^$' -bench 'RunDue' -benchtime "${runs}x" ./server/schedule)
echo "$raw" | awk -v runs="$runs" '
/^BenchmarkRunDue\// {
	split($1, p, "/"); db = p[2]; mode = p[3]; sub(/-[0-9]+$/, "", mode)
	for (i = 1; i <= NF; i++) if ($(i+1) == "µs/run") us[db "/" mode] = $i
	dbs[db] = 1
}
END {
	printf "scheduler pass, 50 due schedules, %d passes (µs per scheduled run)\n", runs
	printf "%-10s %12s %12s %8s\n", "database", "claim (CAS)", "naive peer", "ratio"
	for (db in dbs) {
		c = us[db "/claim"]; n = us[db "/naive"]
		printf "%-10s %12.1f %12.1f %7.2fx\n", db, c, n, (n > 0 ? c / n : 0)
	}
}' | tee "$out"
