#!/bin/bash
# Package cache benchmark: the deploy of the Flask and the Plumber example
# to new content, from upload to the first answer of the app, with the
# runtime package cache empty (the first deploy of those requirements:
# the environment is created and every package checked in the sandbox)
# against the same deploy right after (the environment copied from the
# cache), measured in the same run, through the container (DAIS_IMAGE,
# default dais:latest). Bounded: DAIS_BENCH_RUNS (default 3) pairs per
# example, medians reported.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/cache.txt
runs=${DAIS_BENCH_RUNS:-3}
image=${DAIS_IMAGE:-dais:latest}
mkdir -p bench/results
for c in curl docker tar; do command -v $c >/dev/null || { echo "bench/cache: $c is needed" >&2; exit 1; }; done

tmp=$(mktemp -d /var/tmp/dais-bench-cache.XXXXXX)
cid=
cleanup() { [[ -n $cid ]] && docker rm -f "$cid" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/data"
cid=$(docker run -d --cap-add SYS_ADMIN -p 127.0.0.1::3939 -v "$tmp/data:/data" \
	--label org.opencontainers.image.title=dais-bench-cache "$image")
port=$(docker port "$cid" 3939/tcp | head -1 | sed 's/.*://')
url=http://127.0.0.1:$port
for _ in $(seq 600); do curl -fs "$url/__ping__" >/dev/null 2>&1 && break; sleep 0.1; done
mkkey() {
	echo "bench-password-$1" | docker exec -i "$cid" dais users add --role "$2" "$1" >/dev/null
	docker exec "$cid" dais keys create --user "$1" 2>/dev/null
}
key=$(mkkey bench publisher)
admin=$(mkkey benchadmin administrator)
for ex in flask plumber; do tar -czf "$tmp/$ex.tar.gz" -C "examples/$ex" .; done

field() { sed -nE 's/.*"'"$1"'":"?([^",}]*)"?[,}].*/\1/p'; }
now() { date +%s%N; }
wait_task() { # key task
	local first=0 t
	while :; do
		t=$(curl -fs -H "Authorization: Key $1" "$url/__api__/v1/tasks/$2?wait=10&first=$first")
		[[ $(field finished <<<"$t") == true ]] && break
		first=$(field last <<<"$t")
	done
	[[ $(field code <<<"$t") == 0 ]] || { echo "bench/cache: task failed: $t" >&2; exit 1; }
}
# deploy NAME EXAMPLE: milliseconds from upload to the app's first answer.
deploy() {
	local guid bid task t0 t1
	guid=$(curl -fs -H "Authorization: Key $key" -X POST "$url/__api__/v1/content" -d "{\"name\":\"$1\",\"access_type\":\"all\"}" | field guid)
	t0=$(now)
	bid=$(curl -fs -H "Authorization: Key $key" -X POST --data-binary @"$tmp/$2.tar.gz" "$url/__api__/v1/content/$guid/bundles" | field id)
	task=$(curl -fs -H "Authorization: Key $key" -X POST "$url/__api__/v1/content/$guid/deploy" -d "{\"bundle_id\":\"$bid\"}" | field task_id)
	wait_task "$key" "$task"
	curl -fs "$url/content/$guid/hello" | grep -q hello
	t1=$(now)
	echo $(((t1 - t0) / 1000000))
}
# clear: empty every runtime cache (administrators; one task per runtime).
clear_caches() {
	local list lang ver task
	list=$(curl -fs -H "Authorization: Key $admin" "$url/__api__/v1/system/caches/runtime")
	while read -r lang ver; do
		[[ -z $lang ]] && continue
		task=$(curl -fs -H "Authorization: Key $admin" -X DELETE "$url/__api__/v1/system/caches/runtime" \
			-d "{\"language\":\"$lang\",\"version\":\"$ver\",\"image_name\":\"Local\",\"dry_run\":false}" | field task_id)
		wait_task "$admin" "$task"
	done < <(grep -oE '"language":"[^"]+","version":"[^"]+"' <<<"$list" | sed -E 's/"language":"([^"]+)","version":"([^"]+)"/\1 \2/')
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A cold warm
for ex in flask plumber; do
	c=() w=()
	for r in $(seq "$runs"); do
		clear_caches
		c+=($(deploy "$ex-cold-$r" "$ex"))
		w+=($(deploy "$ex-warm-$r" "$ex"))
	done
	cold[$ex]="${c[*]}" warm[$ex]="${w[*]}"
done
{
	printf 'package cache, %s, %s CPUs, load %s, %d runs, median, %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "$runs" "$image"
	printf '%-40s %12s %14s %8s\n' measure "cache empty" "second deploy" ratio
	for ex in flask plumber; do
		c=$(median ${cold[$ex]}) w=$(median ${warm[$ex]})
		awk -v n="$ex example, upload to first answer" -v c="$c" -v w="$w" 'BEGIN {printf "%-40s %9d ms %11d ms %7.2fx\n", n, c, w, c/w}'
	done
	echo "cache empty: the environment is created and every requirement checked (Python: a venv and a check of requirements.txt; R: every package of the manifest) in the sandbox; second deploy: the same requirements, the environment copied from the runtime cache"
	for ex in flask plumber; do echo "runs $ex (ms): cache empty ${cold[$ex]}; second ${warm[$ex]}"; done
} | tee "$out"
