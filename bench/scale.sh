#!/bin/bash
# dais serve as its database grows (bench/scale): SQLite, and PostgreSQL
# when DAIS_TEST_POSTGRES_URL is set, filled with 1,000 users in groups,
# 100 deployed Python apps (one running process each) and 100, 1,000 and
# 10,000 content items with permissions; at each size the API's content
# list, filtered and paged searches, a content request through the proxy
# with its access check, the dashboard's content list, a deploy, cold
# start to ready and the RSS of dais serve, each against the same measure
# at 100 items in the same run. Needs root (the apps run in the sandbox)
# and Debian's python3. Knobs: SCALE_BENCH_SIZES (100,1000,10000),
# SCALE_BENCH_APPS (100), SCALE_BENCH_N (requests per measure, 200).
# Bounded: about 10 minutes for both databases on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
[[ -f .tmp/test.env ]] && source .tmp/test.env
if [[ $(id -u) != 0 ]]; then
	echo "bench/scale.sh: needs root (content runs in the sandbox); skipped" | tee bench/results/scale.txt
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/scale-bench" ./bench/scale
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/dais" ./server
chmod 755 "$tmp" "$tmp/dais"
args=(-dais "$tmp/dais" -sizes "${SCALE_BENCH_SIZES:-100,1000,10000}" -apps "${SCALE_BENCH_APPS:-100}" -n "${SCALE_BENCH_N:-200}")
if [[ -n ${DAIS_TEST_POSTGRES_URL:-} ]]; then
	args+=(-postgres "$DAIS_TEST_POSTGRES_URL")
fi
timeout 1800 "$tmp/scale-bench" "${args[@]}" | tee bench/results/scale.txt
