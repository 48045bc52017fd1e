#!/bin/bash
# Proxy benchmark: requests/s and p99 through dais's reverse proxy against
# the same app process hit directly (wrk, same run), for a Go app (worst
# case: the proxy's own cost dominates) and the Flask example under
# gunicorn (when python3-flask and gunicorn are installed); 500 WebSockets
# held open and echoing, through the proxy and direct; the first request
# to an app with no process running, against starting that process by hand.
# Bounded: DAIS_BENCH_DURATION (default 5s) per wrk run, 8 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/proxy.txt
mkdir -p bench/results
command -v wrk >/dev/null || { echo "bench/proxy: wrk is needed (apt-get install wrk)" >&2; exit 1; }
raw=$(DAIS_BENCH=1 go test -count=1 -run '^TestProxyBenchmark$' -v -timeout 10m ./server/process)
micro=$(go test -count=1 -run '^$' -bench 'BenchmarkProxyOverhead' -benchtime 2s ./server/process)
mu() { awk -v n="BenchmarkProxyOverhead/$1" '$1 ~ "^"n"(-[0-9]+)?$" {print $3}' <<<"$micro"; }
r() { awk -v k="$1" '$1 == "RESULT" && $2 == k {print $3}' <<<"$raw"; }
[[ -n $(r go_direct_rps) ]] || { echo "bench/proxy: no results:" >&2; echo "$raw" >&2; exit 1; }
{
	printf 'proxy, %s, %s CPUs, load %s (wrk -t2 -c32, %s per run)\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "${DAIS_BENCH_DURATION:-5s}"
	printf '%-28s %12s %12s %10s\n' measure proxy "direct (peer)" "ratio"
	for app in go flask; do
		if [[ -z $(r ${app}_direct_rps) ]]; then printf '%-28s (skipped: not installed)\n' "$app app"; continue; fi
		awk -v a="$app app req/s" -v p="$(r ${app}_proxy_rps)" -v d="$(r ${app}_direct_rps)" 'BEGIN {printf "%-28s %12.0f %12.0f %9.0f%%\n", a, p, d, 100*p/d}'
		awk -v a="$app app p99 ms" -v p="$(r ${app}_proxy_p99_ms)" -v d="$(r ${app}_direct_p99_ms)" 'BEGIN {printf "%-28s %12.2f %12.2f %+9.2fms\n", a, p, d, p-d}'
	done
	awk -v p="$(r ws_proxy_ok)" -v d="$(r ws_direct_ok)" 'BEGIN {printf "%-28s %12d %12d %10s\n", "500 WebSockets echoing ok", p, d, ""}'
	awk -v p="$(r ws_proxy_s)" -v d="$(r ws_direct_s)" 'BEGIN {printf "%-28s %12.2f %12.2f %9.2fx\n", "500 WebSockets total s", p, d, p/d}'
	awk -v p="$(mu proxy)" -v d="$(mu direct)" 'BEGIN {printf "%-28s %12.0f %12.0f %+9.0fus\n", "in-process app, us/request", p/1000, d/1000, (p-d)/1000}'
	awk -v p="$(r cold_proxy_ms)" -v d="$(r cold_direct_ms)" 'BEGIN {printf "%-28s %12.0f %12.0f %+9.0fms\n", "cold start, first answer ms", p, d, p-d}'
	echo "targets: proxy >= 80% of direct req/s, < 1 ms added p99 (2 shared CPUs: wrk, proxy and app compete)"
} | tee "$out"
