#!/bin/bash
# Sandbox spawn latency (p50/p99) and sandboxes started per second: dais's
# sandbox (dais-sandbox-exec pre-started as the server does, cold, and a
# cold re-exec of dais) against bubblewrap doing
# the same namespaces, masks and binds, in the same run. Needs root and bwrap
# (Debian: bubblewrap). Bounded: about 200 spawns, each after a 50 ms settle
# (-settle), + 3 s per peer.
# Env: SANDBOX_BENCH_N (default 200), SANDBOX_BENCH_RUN_AS (default nobody).
# Arguments go to the benchmark: e.g. -only 'pre-started' -outbound=false.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
if [[ $(id -u) != 0 ]]; then
	echo "bench/sandbox.sh: needs root (namespaces, mounts); skipped" | tee bench/results/sandbox.txt
	exit 0
fi
if ! command -v bwrap >/dev/null; then
	echo "bench/sandbox.sh: bwrap not found: apt-get install bubblewrap" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Static, as the Makefile builds bin/dais (no dynamic loader on each start).
# Built as the Makefile builds them.
flags=(-trimpath -ldflags '-s -w')
CGO_ENABLED=0 go build "${flags[@]}" -o "$tmp/sandbox-bench" ./bench/sandbox
CGO_ENABLED=0 go build "${flags[@]}" -tags dais_sandbox_exec -o "$tmp/dais-sandbox-exec" ./server/sandbox/cmd/dais-sandbox-exec
CGO_ENABLED=0 go build "${flags[@]}" -o "$tmp/dais" ./server
args=(-n "${SANDBOX_BENCH_N:-200}" -run-as "${SANDBOX_BENCH_RUN_AS:-nobody}" -helper "$tmp/dais-sandbox-exec" -dais "$tmp/dais")
# The binaries must be readable by the content user: nothing else needed,
# /bin/true is what runs inside.
chmod 755 "$tmp" "$tmp"/*
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee bench/results/sandbox.txt
timeout 600 "$tmp/sandbox-bench" "${args[@]}" "$@" | tee -a bench/results/sandbox.txt
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a bench/results/sandbox.txt
