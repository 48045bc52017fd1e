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
# Peers: nginx and haproxy (Debian packages) in front of the same Go app,
# one worker process or thread each, keep-alive to the app, no logging,
# the same prefix stripped and X-Forwarded-* headers added; their ratio
# to direct is the bar for dais's.
# Last, the full path: a real `dais serve` (SQLite in a temporary
# directory, content in the sandbox) with the Flask example deployed
# through the v1 API with access type "all"; wrk against /content/<guid>/
# (authentication, content lookup, access check, then the proxy), with and
# without an API key, against the Flask example hit directly earlier in
# the same run (the sandboxed process is out of wrk's reach).
# Bounded: DAIS_BENCH_DURATION (default 5s) per wrk run, 23 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/proxy.txt
mkdir -p bench/results
for tool in wrk nginx haproxy; do
	PATH=$PATH:/usr/sbin command -v $tool >/dev/null || { echo "bench/proxy: $tool is needed (apt-get install wrk nginx haproxy)" >&2; exit 1; }
done
raw=$(DAIS_BENCH=1 go test -count=1 -run '^TestProxyBenchmark$' -v -timeout 10m ./server/process)
micro=$(go test -count=1 -run '^$' -bench 'BenchmarkProxyOverhead' -benchtime 2s ./server/process)
mu() { awk -v n="BenchmarkProxyOverhead/$1" '$1 ~ "^"n"(-[0-9]+)?$" {print $3}' <<<"$micro"; }
r() { awk -v k="$1" '$1 == "RESULT" && $2 == k {print $3}' <<<"$raw"; }
# serve_path prints the rows of the full-path section; on a failure it
# prints why and what it saw instead.
serve_path() (
	pid="" first=0 done=false runas=nobody
	# Not under /tmp: the sandbox gives content a private /tmp and masks
	# the data and configuration directories, which must exist outside it.
	tmp=$(mktemp -d /var/tmp/dais-proxy-bench.XXXXXX)
	trap 'if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$tmp"' EXIT
	id -u rstudio-connect >/dev/null 2>&1 && runas=rstudio-connect
	go build -o "$tmp/dais" ./server
	mkdir -p "$tmp/data"
	printf '[Server]\nDataDir = %s\n[HTTP]\nListen = 127.0.0.1:0\n[Applications]\nRunAs = %s\n[Python]\nExecutable = /usr/bin/python3\n' "$tmp/data" "$runas" >"$tmp/c.gcfg"
	if ! /usr/bin/python3 -c 'import flask, gunicorn' 2>/dev/null; then
		echo "dais serve, Flask app: (skipped: python3-flask or gunicorn not installed)"
		return
	fi
	"$tmp/dais" users add --config "$tmp/c.gcfg" --role publisher bench <<<'bench-password-1' >/dev/null
	key=$("$tmp/dais" keys create --config "$tmp/c.gcfg" --user bench 2>/dev/null | head -1)
	"$tmp/dais" serve --config "$tmp/c.gcfg" >"$tmp/serve.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do
		addr=$(sed -n 's/.*msg="dais ready" addr=\([^ ]*\).*/\1/p' "$tmp/serve.log")
		[[ -n $addr ]] && break
		sleep 0.1
	done
	[[ -n $addr ]] || { echo "dais serve: not ready:"; cat "$tmp/serve.log"; return; }
	api() { curl -sS -H "Authorization: Key $key" "$@"; }
	guid=$(api -d '{"name":"proxy-bench","access_type":"all"}' "http://$addr/__api__/v1/content" | jq -r .guid)
	tar -C examples/flask -czf "$tmp/bundle.tar.gz" .
	bid=$(api --data-binary "@$tmp/bundle.tar.gz" "http://$addr/__api__/v1/content/$guid/bundles" | jq -r .id)
	task=$(api -d "{\"bundle_id\":\"$bid\"}" "http://$addr/__api__/v1/content/$guid/deploy" | jq -r .task_id)
	while [[ $done != true ]]; do
		api "http://$addr/__api__/v1/tasks/$task?wait=5&first=$first" >"$tmp/task.json"
		first=$(jq -r .last "$tmp/task.json")
		done=$(jq -r .finished "$tmp/task.json")
		jq -r '.output[]' "$tmp/task.json" >>"$tmp/deploy.log"
	done
	if [[ $(jq -r .code "$tmp/task.json") != 0 ]]; then
		echo "dais serve, Flask app: deploy failed: $(jq -r .error "$tmp/task.json")"
		tail -5 "$tmp/deploy.log"
		return
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/content/$guid/hello")
	if [[ $code != 200 ]]; then
		echo "dais serve, Flask app: /content/$guid/hello answered $code"
		tail -5 "$tmp/serve.log"
		return
	fi
	# The sandboxed process listens in its own network namespace, out of
	# wrk's reach: the direct column is the same Flask example run directly
	# (no sandbox) earlier in this run; without it, no ratio.
	proxied="http://$addr/content/$guid/hello"
	sd="$(r flask_direct_rps) $(r flask_direct_p50_ms) $(r flask_direct_p99_ms)"
	ld="$(r flask_light_direct_rps) $(r flask_light_direct_p50_ms) $(r flask_light_direct_p99_ms)"
	[[ -n $(r flask_direct_rps) ]] || sd="none" ld="none"
	sp=$(wrkrun 2 32 "$proxied")
	sk=$(wrkrun 2 32 "$proxied" -H "Authorization: Key $key")
	lp=$(wrkrun 1 1 "$proxied")
	echo "dais serve (SQLite, sandbox), Flask app: auth + content lookup + access check + proxy; direct: the flask app rows above"
	row "  req/s, saturated (-c32)" "$sp" "$sd" rps
	row "  req/s, saturated, with an API key" "$sk" "$sd" rps
	row "  p99 ms, saturated (-c32, queueing)" "$sp" "$sd" p99
	row "  p50 ms, light load (-c1)" "$lp" "$ld" p50
	row "  p99 ms, light load (-c1): added p99" "$lp" "$ld" p99
)

# wrkrun THREADS CONNS URL [wrk args]: "rps p50_ms p99_ms", or "fail <why>".
wrkrun() {
	local t=$1 c=$2 url=$3 o
	shift 3
	o=$(wrk "-t$t" "-c$c" "-d${DAIS_BENCH_DURATION:-5s}" --latency "$@" "$url" 2>&1)
	if grep -q 'Non-2xx\|Socket errors' <<<"$o"; then
		echo "fail $(grep 'Non-2xx\|Socket errors' <<<"$o" | tr '\n' ' ')"
		return
	fi
	if ! grep -q 'Requests/sec' <<<"$o"; then
		echo "fail $(head -3 <<<"$o" | tr '\n' ' ')"
		return
	fi
	awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
		/Requests\/sec/ {r = $2} $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
		END {print r, p50, p99}' <<<"$o"
}

# row LABEL "PROXY" "DIRECT" rps|p50|p99; DIRECT "none": no direct
# figure, so no ratio.
row() {
	if [[ $2 == fail* || $3 == fail* ]]; then
		printf '%-44s failed:%s\n' "$1" "$( [[ $2 == fail* ]] && echo "${2#fail}" || echo "${3#fail}")"
		return
	fi
	awk -v a="$1" -v p="$2" -v d="$3" -v k="$4" 'BEGIN {
		split(p, P, " "); split(d, D, " "); i = (k == "rps") ? 1 : (k == "p50") ? 2 : 3
		if (d == "none" || D[i] + 0 <= 0) {
			if (k == "rps") printf "%-44s %12.0f %12s %10s\n", a, P[i], "-", "-"
			else printf "%-44s %12.3f %12s %10s\n", a, P[i], "-", "-"
		} else if (k == "rps") printf "%-44s %12.0f %12.0f %9.0f%%\n", a, P[i], D[i], 100 * P[i] / D[i]
		else printf "%-44s %12.3f %12.3f %+8.3fms\n", a, P[i], D[i], P[i] - D[i] }'
}

# peer_rows: nginx and haproxy in front of the same Go app (one worker or
# thread, keep-alive to the app, no logging), each against direct as dais
# is, then dais's ratio over the better peer's (1.00 or more: as good).
peer_rows() {
	local best=0 name k
	for name in nginx haproxy; do
		echo "$name (peer), same go app"
		awk -v a="  req/s, saturated (-c32)" -v p="$(r go_${name}_rps)" -v d="$(r go_direct_rps)" 'BEGIN {printf "%-44s %12.0f %12.0f %9.0f%%\n", a, p, d, 100*p/d}'
		awk -v a="  proxy CPU us per request, saturated" -v p="$(r go_${name}_cpu_us)" 'BEGIN {printf "%-44s %12.0f\n", a, p}'
		awk -v a="  p50 ms, light load (-c1)" -v p="$(r go_light_${name}_p50_ms)" -v d="$(r go_light_direct_p50_ms)" 'BEGIN {printf "%-44s %12.3f %12.3f %+8.3fms\n", a, p, d, p-d}'
		awk -v a="  p99 ms, light load (-c1): added p99" -v p="$(r go_light_${name}_p99_ms)" -v d="$(r go_light_direct_p99_ms)" 'BEGIN {printf "%-44s %12.3f %12.3f %+8.3fms\n", a, p, d, p-d}'
	done
	for k in rps light_rps; do
		awk -v a="dais / better peer, $( [[ $k == rps ]] && echo 'req/s saturated' || echo 'req/s light load')" \
			-v p="$(r go_${k/rps/proxy_rps})" -v n="$(r go_${k/rps/nginx_rps})" -v h="$(r go_${k/rps/haproxy_rps})" \
			'BEGIN {b = (n > h) ? n : h; w = (n > h) ? "nginx" : "haproxy"; printf "%-44s %12.0f %12.0f %9.2fx  (%s)\n", a, p, b, p/b, w}'
	done
}

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
		awk -v a="  proxy CPU us per request, saturated" -v p="$(r ${app}_proxy_cpu_us)" 'BEGIN {printf "%-44s %12.0f\n", a, p}'
		awk -v a="  p99 ms, saturated (-c32, queueing)" -v p="$(r ${app}_proxy_p99_ms)" -v d="$(r ${app}_direct_p99_ms)" 'BEGIN {printf "%-44s %12.2f %12.2f %+8.2fms\n", a, p, d, p-d}'
		awk -v a="  p50 ms, light load (-c1)" -v p="$(r ${app}_light_proxy_p50_ms)" -v d="$(r ${app}_light_direct_p50_ms)" 'BEGIN {printf "%-44s %12.3f %12.3f %+8.3fms\n", a, p, d, p-d}'
		awk -v a="  p99 ms, light load (-c1): added p99" -v p="$(r ${app}_light_proxy_p99_ms)" -v d="$(r ${app}_light_direct_p99_ms)" 'BEGIN {printf "%-44s %12.3f %12.3f %+8.3fms\n", a, p, d, p-d}'
		[[ $app == go ]] && peer_rows
	done
	awk -v p="$(r ws_proxy_ok)" -v d="$(r ws_direct_ok)" 'BEGIN {printf "%-44s %12d %12d %10s\n", "500 WebSockets echoing ok", p, d, ""}'
	awk -v p="$(r ws_proxy_s)" -v d="$(r ws_direct_s)" 'BEGIN {printf "%-44s %12.2f %12.2f %9.2fx\n", "500 WebSockets total s", p, d, p/d}'
	awk -v p="$(mu proxy)" -v d="$(mu direct)" 'BEGIN {printf "%-44s %12.1f %12.1f %+8.1fus\n", "in-process app, us/request, 2 at once", p/1000, d/1000, (p-d)/1000}'
	awk -v p="$(mu serial/proxy)" -v d="$(mu serial/direct)" 'BEGIN {printf "%-44s %12.1f %12.1f %+8.1fus\n", "in-process app, us/request, 1 at once", p/1000, d/1000, (p-d)/1000}'
	awk -v p="$(r cold_proxy_ms)" -v d="$(r cold_direct_ms)" 'BEGIN {printf "%-44s %12.0f %12.0f %+8.0fms\n", "cold start, first answer ms", p, d, p-d}'
	echo "targets: proxy >= 80% of direct req/s (saturated); < 1 ms added p99 (light load)"
	echo "the go app rows are the worst case: a real app's own work hides most of the proxy's cost"
	serve_path
} | tee "$out"
