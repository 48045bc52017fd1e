#!/bin/bash
# Container benchmarks of the dais image (DAIS_IMAGE, default dais:latest):
#   - `docker run` to the first 200 from /__ping__ (a fresh /data each run),
#   - `docker stop` of an idle server to its exit,
#   - the image size.
# Peer, measured in the same run: a bare container of the base image
# (BASE_IMAGE, default dais-base:bookworm) whose shell PID 1 opens nothing and
# exits on TERM: the floor Docker itself sets for start and stop. Posit
# Connect's own image is about 3-4 GB (a stated figure, not measured here).
# Usage: bench/docker.sh [RUNS]   (default 5; bounded: each wait <= 60 s)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
image=${DAIS_IMAGE:-dais:latest}
base=${BASE_IMAGE:-dais-base:bookworm}
out=bench/results/docker.txt
mkdir -p bench/results
for img in "$image" "$base"; do
	docker image inspect "$img" >/dev/null 2>&1 || { echo "bench/docker: image $img missing: run make image" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "bench/docker: curl is needed on the host (apt-get install curl)" >&2; exit 1; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
tmp=$(mktemp -d /tmp/dais-bench-docker.XXXXXX)
cids=()
cleanup() {
	for c in "${cids[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# median of the numbers given
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:int((a[NR/2]+a[NR/2+1])/2)}'; }

# ms from $1 (ms since the epoch) to the container's State.FinishedAt: when
# its process exited, leaving out the engine's teardown after that.
exited_ms() { echo $(($(date -d "$(docker inspect -f '{{.State.FinishedAt}}' "$2")" +%s%N) / 1000000 - $1)); }

dais_start=() dais_stop=() peer_start=() peer_stop=() dais_exit=() peer_exit=()
for i in $(seq "$runs"); do
	# dais: run -> first /__ping__ 200 (busy-polled every 20 ms)
	mkdir -p "$tmp/data$i"
	t0=$(now_ms)
	cid=$(docker run -d --cap-add SYS_ADMIN -p 127.0.0.1::3939 -v "$tmp/data$i:/data" "$image")
	cids+=("$cid")
	port=$(docker port "$cid" 3939/tcp | head -1 | sed 's/.*://')
	ok=
	while (($(now_ms) - t0 < 60000)); do
		if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/__ping__" 2>/dev/null; then ok=1; break; fi
		sleep 0.02
	done
	[[ -n $ok ]] || { echo "bench/docker: dais did not answer /__ping__ within 60 s:" >&2; docker logs "$cid" 2>&1 | tail -20 >&2; exit 1; }
	dais_start+=($(($(now_ms) - t0)))
	t0=$(now_ms)
	docker stop -t 30 "$cid" >/dev/null
	dais_stop+=($(($(now_ms) - t0)))
	dais_exit+=($(exited_ms "$t0" "$cid"))
	code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
	[[ $code == 0 ]] || echo "bench/docker: warning: dais exited $code on docker stop" >&2
	docker rm -f "$cid" >/dev/null

	# peer: a bare container of the base image, ready when its first output appears
	t0=$(now_ms)
	cid=$(docker run -d "$base" sh -c 'trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done')
	cids+=("$cid")
	until docker logs "$cid" 2>/dev/null | grep -q ready; do
		(($(now_ms) - t0 < 60000)) || { echo "bench/docker: peer container never started" >&2; exit 1; }
		sleep 0.02
	done
	peer_start+=($(($(now_ms) - t0)))
	t0=$(now_ms)
	docker stop -t 30 "$cid" >/dev/null
	peer_stop+=($(($(now_ms) - t0)))
	peer_exit+=($(exited_ms "$t0" "$cid"))
	docker rm -f "$cid" >/dev/null
done

ds=$(median "${dais_start[@]}") dp=$(median "${dais_stop[@]}")
ps=$(median "${peer_start[@]}") pp=$(median "${peer_stop[@]}")
de=$(median "${dais_exit[@]}") pe=$(median "${peer_exit[@]}")
size=$(docker image inspect -f '{{.Size}}' "$image")
bsize=$(docker image inspect -f '{{.Size}}' "$base")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2fx", a/b; else print "n/a" }'; }
{
	echo "bench/docker.sh: $image, $runs runs, median, $(date -u +%FT%TZ), $(nproc) cores"
	printf '%-34s %12s %22s %8s\n' "measure" "dais" "peer" "ratio"
	printf '%-34s %10s ms %19s ms %8s\n' "docker run -> /__ping__ 200" "$ds" "$ps" "$(ratio "$ds" "$ps")"
	printf '%-34s %10s ms %19s ms %8s\n' "docker stop (idle) -> returned" "$dp" "$pp" "$(ratio "$dp" "$pp")"
	printf '%-34s %10s ms %19s ms %8s\n' "docker stop (idle) -> process exit" "$de" "$pe" "$(ratio "$de" "$pe")"
	printf '%-34s %10s MB %16s MB base %8s\n' "image size" "$((size / 1000000))" "$((bsize / 1000000))" "$(ratio "$size" "$bsize")"
	printf '%-34s %10s MB %16s MB     %8s\n' "image size vs Posit Connect (stated)" "$((size / 1000000))" "~3500" "$(ratio "$size" 3500000000)"
	echo "peer: a bare $base container (shell PID 1, exits on TERM): Docker's own floor"
	echo "dais runs: start ${dais_start[*]} ms; stop ${dais_stop[*]} ms; exit ${dais_exit[*]} ms"
} | tee "$out"
