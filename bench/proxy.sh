#!/bin/bash
# Proxy benchmark: requests/s and latency through dais's reverse proxy
# against the same app process hit directly (wrk, same run), for
#   - a trivial Go app: it answers in microseconds, so its rows show the
#     proxy's own per-request cost, not what a real app sees;
#   - the Flask (gunicorn), FastAPI (uvicorn) and Plumber examples, launched
#     as dais launches them (skipped, with the reason, when not installed).
# Each is run at saturation (wrk -t2 -c32: req/s; that p99 is queueing) and
# at light load (wrk -t1 -c1: the "added p99" row, the latency the proxy
# adds to one request). Then 500 WebSockets held open and echoing, through
# the proxy and direct; the first request to an app with no process
# running, against starting that process by hand.
# Bounded: DAIS_BENCH_DURATION (default 5s) per wrk run, 16 runs.
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
	printf 'proxy, %s, %s CPUs, load %s (%s per wrk run; wrk, proxy and app share the CPUs)\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "${DAIS_BENCH_DURATION:-5s}"
	printf '%-44s %12s %12s %10s\n' measure proxy "direct (peer)" "ratio"
	for app in go flask fastapi plumber; do
		label="$app app"
		[[ $app == go ]] && label="go app (trivial: the proxy's own cost)"
		if [[ -z $(r ${app}_direct_rps) ]]; then
			printf '%-44s (skipped: %s)\n' "$label" "$(awk -v a="$app" '$1 == "SKIP" && $2 == a {$1 = $2 = ""; sub(/^ +/, ""); print}' <<<"$raw")"
			continue
		fi
		echo "$label"
		awk -v a="  req/s, saturated (-c32)" -v p="$(r ${app}_proxy_rps)" -v d="$(r ${app}_direct_rps)" 'BEGIN {printf "%-44s %12.0f %12.0f %9.0f%%\n", a, p, d, 100*p/d}'
		awk -v a="  p99 ms, saturated (-c32, queueing)" -v p="$(r ${app}_proxy_p99_ms)" -v d="$(r ${app}_direct_p99_ms)" 'BEGIN {printf "%-44s %12.2f %12.2f %+8.2fms\n", a, p, d, p-d}'
		awk -v a="  p50 ms, light load (-c1)" -v p="$(r ${app}_light_proxy_p50_ms)" -v d="$(r ${app}_light_direct_p50_ms)" 'BEGIN {printf "%-44s %12.3f %12.3f %+8.3fms\n", a, p, d, p-d}'
		awk -v a="  p99 ms, light load (-c1): added p99" -v p="$(r ${app}_light_proxy_p99_ms)" -v d="$(r ${app}_light_direct_p99_ms)" 'BEGIN {printf "%-44s %12.3f %12.3f %+8.3fms\n", a, p, d, p-d}'
	done
	awk -v p="$(r ws_proxy_ok)" -v d="$(r ws_direct_ok)" 'BEGIN {printf "%-44s %12d %12d %10s\n", "500 WebSockets echoing ok", p, d, ""}'
	awk -v p="$(r ws_proxy_s)" -v d="$(r ws_direct_s)" 'BEGIN {printf "%-44s %12.2f %12.2f %9.2fx\n", "500 WebSockets total s", p, d, p/d}'
	awk -v p="$(mu proxy)" -v d="$(mu direct)" 'BEGIN {printf "%-44s %12.1f %12.1f %+8.1fus\n", "in-process app, us/request (Go benchmark)", p/1000, d/1000, (p-d)/1000}'
	awk -v p="$(r cold_proxy_ms)" -v d="$(r cold_direct_ms)" 'BEGIN {printf "%-44s %12.0f %12.0f %+8.0fms\n", "cold start, first answer ms", p, d, p-d}'
	echo "targets: proxy >= 80% of direct req/s (saturated); < 1 ms added p99 (light load)"
	echo "the go app rows are the worst case: a real app's own work hides most of the proxy's cost"
} | tee "$out"
