#!/bin/bash
# bench/init.sh: dais-init against tini and dumb-init (Debian packages) and
# the Go floor (bench/initfloor: a static Go program that finds the command
# in PATH, forks, execs and waits, nothing more), measured in the same run
# on the same machine:
#   - reaping N orphans (default 10,000): time from their exit until none is left
#   - signal forwarding latency, p50 and p99 (round trip kill -> child echo)
#   - wall time of `init -- true` (hyperfine)
#   - peak RSS (VmHWM) of the init while a child runs (started, idle)
# The Go floor neither reaps nor forwards: it has the last two rows only.
# Needs root (PID namespaces via unshare), tini, dumb-init, hyperfine, jq, Go.
# Knobs: BENCH_ORPHANS (10000), BENCH_SIGNALS (2000), BENCH_RUNS (100).
set -euo pipefail
cd "$(dirname "$0")/.."
ORPHANS=${BENCH_ORPHANS:-10000}
SIGNALS=${BENCH_SIGNALS:-2000}
RUNS=${BENCH_RUNS:-100}
OUT=bench/results/init.txt
mkdir -p bench/results

for tool in tini dumb-init hyperfine jq unshare go; do
	command -v "$tool" >/dev/null || { echo "bench/init.sh: $tool is missing: apt-get install tini dumb-init hyperfine jq util-linux" >&2; exit 1; }
done
if [[ $(id -u) != 0 ]]; then
	echo "bench/init.sh: needs root (it runs each init as PID 1 of a new PID namespace)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# As make builds dais-init (INIT_LDFLAGS: asynchronous preemption off).
ldflags=$(sed -n 's/^INIT_LDFLAGS := //p' Makefile)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/dais-init" ./entrypoint
CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$tmp/testchild" ./entrypoint/testchild
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/initfloor" ./bench/initfloor
INIT=$tmp/dais-init
FLOOR=$tmp/initfloor
CHILD=$tmp/testchild

# Each init in group-forwarding mode (tini -g; dumb-init's default), and as
# a subreaper (-s) where it is not PID 1.
declare -A reap_cmd=(
	[dais-init]="$INIT --"
	[tini]="tini --"
	[dumb-init]="dumb-init"
)
declare -A sig_cmd=(
	[dais-init]="$INIT --"
	[tini]="tini -s -g --"
	[dumb-init]="dumb-init"
)
declare -A rss_cmd=(
	[dais-init]="$INIT --"
	[tini]="tini -s -g --"
	[dumb-init]="dumb-init"
	[go-floor]="$FLOOR"
)
names=(dais-init tini dumb-init)
declare -A reap p50 p99 rss wall

# Wall time first, while the machine is as quiet as it gets (reaping
# 10,000 orphans leaves a load average in the hundreds behind it), and in
# rounds that take turns: hyperfine runs one command's runs together, so
# that a load that changes during the run would favour the later ones.
# Each peer's figure is the median of the rounds' means.
echo "bench/init.sh: wall time of init -- true, $RUNS runs each in 5 rounds taking turns" >&2
declare -A cmdline=([dais-init]="$INIT -- true" [tini]="tini -s -- true" [dumb-init]="dumb-init true" [go-floor]="$FLOOR true")
per=$(((RUNS + 4) / 5))
for round in 1 2 3 4 5; do
	for n in "${names[@]}" go-floor; do
		hyperfine -N --warmup 5 --runs "$per" --export-json "$tmp/wall-$n-$round.json" -n "$n" "${cmdline[$n]}" >/dev/null 2>&1 ||
			hyperfine --warmup 5 --runs "$per" --export-json "$tmp/wall-$n-$round.json" -n "$n" "${cmdline[$n]}" >/dev/null
	done
done
for n in "${names[@]}" go-floor; do
	wall[$n]=$(for round in 1 2 3 4 5; do jq -r '.results[0].mean * 1000' "$tmp/wall-$n-$round.json"; done | sort -g | sed -n 3p)
done
for n in "${names[@]}" go-floor; do
	# The median of 5 starts.
	rss[$n]=$(for i in 1 2 3 4 5; do "$CHILD" rsswith ${rss_cmd[$n]} "$CHILD" sigecho; done | sort -n | sed -n 3p)
done

for n in "${names[@]}"; do
	echo "bench/init.sh: $n: reaping $ORPHANS orphans" >&2
	r=$(timeout 900 unshare --pid --fork --mount-proc ${reap_cmd[$n]} "$CHILD" orphans "$ORPHANS" wait)
	reap[$n]=$(awk '/^gone/ {print $2}' <<<"$r")
	echo "bench/init.sh: $n: signal latency over $SIGNALS signals" >&2
	r=$(timeout 300 "$CHILD" latency "$SIGNALS" ${sig_cmd[$n]} "$CHILD" sigecho)
	p50[$n]=$(awk '{print $2}' <<<"$r")
	p99[$n]=$(awk '{print $4}' <<<"$r")
done
reap[go-floor]=- p50[go-floor]=- p99[go-floor]=-

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { # metric, then its value for dais-init, tini, dumb-init, go-floor
	local m=$1; shift
	printf "%-30s %10s %10s %10s %10s %8s %8s %8s\n" "$m" "$1" "$2" "$3" "$4" "$(ratio "$1" "$2")" "$(ratio "$1" "$3")" "$(ratio "$1" "$4")"
}
{
	echo "dais-init vs tini $(dpkg-query -W -f='${Version}' tini 2>/dev/null || true) and dumb-init $(dpkg-query -W -f='${Version}' dumb-init 2>/dev/null || true), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
	echo "ratios are dais-init / peer: below 1.00 means dais-init is faster or smaller; go-floor: fork, exec, wait and nothing else"
	printf "%-30s %10s %10s %10s %10s %8s %8s %8s\n" metric dais-init tini dumb-init go-floor "vs tini" "vs dumb" "vs floor"
	row "reap $ORPHANS orphans (s)" "${reap[dais-init]}" "${reap[tini]}" "${reap[dumb-init]}" -
	row "signal round trip p50 (us)" "${p50[dais-init]}" "${p50[tini]}" "${p50[dumb-init]}" -
	row "signal round trip p99 (us)" "${p99[dais-init]}" "${p99[tini]}" "${p99[dumb-init]}" -
	row "wall time init -- true (ms)" "$(printf %.2f "${wall[dais-init]}")" "$(printf %.2f "${wall[tini]}")" "$(printf %.2f "${wall[dumb-init]}")" "$(printf %.2f "${wall[go-floor]}")"
	row "peak RSS with a child (KiB)" "${rss[dais-init]}" "${rss[tini]}" "${rss[dumb-init]}" "${rss[go-floor]}"
} | tee "$OUT"
