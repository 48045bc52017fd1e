#!/bin/bash
# dais serve: cold start to the first 200 from /__ping__ (empty SQLite;
# empty PostgreSQL when DAIS_TEST_POSTGRES_URL is set), idle RSS, and
# /__ping__ and an authenticated API read (GET /__api__/v1/user with a key)
# under load with wrk (Debian: wrk). Peer, in the same run: a bare Go
# net/http server answering /__ping__. Bounded: ~10 cold starts per store
# and three 5 s wrk runs. Env: SERVE_BENCH_N (cold starts, default 10),
# SERVE_BENCH_SECONDS (per wrk run, default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[[ -f .tmp/test.env ]] && source .tmp/test.env
go build -o "$tmp/serve-bench" ./bench/serve
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/dais" ./server
args=(-dais "$tmp/dais" -n "${SERVE_BENCH_N:-10}" -d "${SERVE_BENCH_SECONDS:-5}s")
if [[ -n ${DAIS_TEST_POSTGRES_URL:-} ]]; then
	args+=(-postgres "$DAIS_TEST_POSTGRES_URL")
fi
timeout 600 "$tmp/serve-bench" "${args[@]}" | tee bench/results/serve.txt
