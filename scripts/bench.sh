#!/bin/bash
# Run every benchmark script under bench/ and collect their tables in
# bench/results/. Each script measures dais against a named peer in the same run.
set -uo pipefail
cd "$(dirname "$0")/.."
# What scripts/test-env.sh set up (the PostgreSQL URL for bench/store.sh, ...).
if [[ -f .tmp/test.env ]]; then
	set -a
	source .tmp/test.env
	set +a
fi
mkdir -p bench/results
status=0
for b in bench/*.sh; do
	[[ -x $b ]] || continue
	echo "== $b"
	if ! "$b"; then
		echo "bench: $b failed" >&2
		status=1
	fi
done
echo
echo "== results (bench/results/)"
for r in bench/results/*.txt; do
	[[ -e $r ]] && { echo "-- $r"; cat "$r"; }
done
exit $status
