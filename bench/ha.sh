#!/bin/bash
# Several nodes (issue 18): requests per second through haproxy to the
# Plumber and Flask examples with two dais nodes and with one (the other
# stopped), and the time from `docker kill` of a node until every new
# request succeeds, measured by e2e's TestHABench on the compose profile ha
# (PostgreSQL, dais1, dais2, haproxy; docs/ha.md). On this 2-core machine
# two nodes share the same two cores with haproxy, PostgreSQL and wrk, so
# two nodes cannot double one: the ratio says how much a second node adds
# here, not on two machines.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/ha.txt
mkdir -p bench/results
tmp=$(mktemp -d /var/tmp/dais-bench-ha.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
make -s image >/dev/null
DAIS_HA_BENCH_OUT=$tmp/ha.txt go test -count=1 -timeout 30m -run 'TestHABench' ./e2e/ >"$tmp/test.log" 2>&1 ||
	{ tail -40 "$tmp/test.log" >&2; exit 1; }
{
	echo "# bench/ha.sh $(date -u +%FT%TZ), load average $(cut -d' ' -f1 /proc/loadavg), $(nproc) CPUs"
	cat "$tmp/ha.txt"
} | tee "$out"
