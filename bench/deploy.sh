#!/bin/bash
# Deploy benchmark: a 10 MB static bundle from upload to live (POST the
# bundle, deploy, long-poll the task, first GET of the content answered)
# through the v1 API of a `dais serve` on 127.0.0.1, against the floor of
# any deploy: receiving the same bytes over HTTP (curl to a plain file
# server would do no less) plus `tar -xzf` of the archive, measured in the
# same run. Bounded: DAIS_BENCH_RUNS (default 5) runs, median reported.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/deploy.txt
runs=${DAIS_BENCH_RUNS:-5}
mkdir -p bench/results
for c in curl python3 tar; do command -v $c >/dev/null || { echo "bench/deploy: $c is needed" >&2; exit 1; }; done

tmp=$(mktemp -d /var/tmp/dais-bench-deploy.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
chmod 755 "$tmp"
go build -o "$tmp/dais" ./server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/dais.gcfg" <<EOF
[Server]
DataDir = $tmp/data
[HTTP]
Listen = 127.0.0.1:$port
EOF
"$tmp/dais" serve --config "$tmp/dais.gcfg" >"$tmp/serve.log" 2>&1 &
pid=$!
url=http://127.0.0.1:$port
for _ in $(seq 100); do curl -fs "$url/__ping__" >/dev/null 2>&1 && break; sleep 0.1; done
echo bench-password-1 | "$tmp/dais" users add --config "$tmp/dais.gcfg" --role publisher bench >/dev/null
key=$("$tmp/dais" keys create --config "$tmp/dais.gcfg" --user bench 2>/dev/null)

# A 10 MB static site: index.html plus incompressible assets, with its manifest.
site=$tmp/site
mkdir -p "$site/assets"
echo '<html><body><h1>bench</h1></body></html>' >"$site/index.html"
for i in $(seq 10); do head -c 1048576 /dev/urandom >"$site/assets/blob$i.bin"; done
python3 - "$site" <<'EOF'
import hashlib, json, os, sys
root = sys.argv[1]
files = {}
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        files[os.path.relpath(p, root)] = {"checksum": hashlib.md5(open(p, "rb").read()).hexdigest()}
json.dump({"version": 1, "metadata": {"appmode": "static", "primary_html": "index.html"}, "files": files},
          open(os.path.join(root, "manifest.json"), "w"))
EOF
tar -czf "$tmp/site.tar.gz" -C "$site" .
size=$(stat -c %s "$tmp/site.tar.gz")

# field NAME: the value of a top-level string, number or boolean field of
# the JSON on stdin (no interpreter start-up inside the timed loop).
field() { sed -nE 's/.*"'"$1"'":"?([^",}]*)"?[,}].*/\1/p'; }
now() { date +%s%N; }
dais_ms=() floor_ms=()
for r in $(seq "$runs"); do
	guid=$(curl -fs -H "Authorization: Key $key" -X POST "$url/__api__/v1/content" -d "{\"name\":\"site$r\",\"access_type\":\"all\"}" | field guid)
	t0=$(now)
	bid=$(curl -fs -H "Authorization: Key $key" -X POST --data-binary @"$tmp/site.tar.gz" "$url/__api__/v1/content/$guid/bundles" | field id)
	task=$(curl -fs -H "Authorization: Key $key" -X POST "$url/__api__/v1/content/$guid/deploy" -d "{\"bundle_id\":\"$bid\"}" | field task_id)
	first=0
	while :; do
		t=$(curl -fs -H "Authorization: Key $key" "$url/__api__/v1/tasks/$task?wait=10&first=$first")
		[[ $(field finished <<<"$t") == true ]] && break
		first=$(field last <<<"$t")
	done
	[[ $(field code <<<"$t") == 0 ]] || { echo "bench/deploy: deploy failed: $t" >&2; exit 1; }
	curl -fs "$url/content/$guid/" | grep -q bench
	t1=$(now)
	dais_ms+=($(((t1 - t0) / 1000000)))

	# The floor: the same bytes over HTTP to 127.0.0.1 (dais's own ping
	# endpoint discards them) and tar -xzf.
	rm -rf "$tmp/x"; mkdir "$tmp/x"
	t0=$(now)
	curl -s -o /dev/null -X POST --data-binary @"$tmp/site.tar.gz" "$url/__ping__" || true
	tar -xzf "$tmp/site.tar.gz" -C "$tmp/x"
	t1=$(now)
	floor_ms+=($(((t1 - t0) / 1000000)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(median "${dais_ms[@]}")
f=$(median "${floor_ms[@]}")
{
	printf 'deploy, %s, %s CPUs, load %s, %d runs, median\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "$runs"
	printf '%-44s %10s %14s %8s\n' measure dais "floor (peer)" ratio
	awk -v d="$d" -v f="$f" -v s="$size" 'BEGIN {printf "%-44s %8d ms %11d ms %7.2fx\n", sprintf("10 MB static bundle (%.1f MB gz), upload to live", s/1048576), d, f, d/f}'
	echo "floor: the same bytes POSTed over 127.0.0.1 + tar -xzf; dais adds the store, checksums (md5 of every file), the task log and the switch"
	echo "runs (dais ms): ${dais_ms[*]}; floor ms: ${floor_ms[*]}"
} | tee "$out"
