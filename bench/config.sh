#!/bin/bash
# Configuration load benchmark: dais's config.Load of a file that sets every
# key (testdata/good.gcfg: scan with file:line provenance, per-key gcfg set,
# environment overlay, validation) against the peer, gopkg.in/gcfg.v1's
# ReadFileInto of the same file into the same struct (no provenance, no
# environment, no validation), measured in the same run. Also Render, the
# effective file dais-init writes. Bounded: a fixed 2000 iterations each.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/config.txt
mkdir -p bench/results
raw=$(go test -run '^$' -bench 'BenchmarkLoad$|BenchmarkGcfgReadFileInto$|BenchmarkRender$' -benchtime=2000x -benchmem ./server/config)
ns() { awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" {print $3}' <<<"$raw"; }
load=$(ns BenchmarkLoad) peer=$(ns BenchmarkGcfgReadFileInto) render=$(ns BenchmarkRender)
[[ -n $load && -n $peer && -n $render ]] || { echo "bench/config: could not read the benchmark output:" >&2; echo "$raw" >&2; exit 1; }
awk -v load="$load" -v peer="$peer" -v render="$render" -v when="$(date -u +%Y-%m-%dT%H:%MZ)" -v cpus="$(nproc)" 'BEGIN {
	printf "config load of testdata/good.gcfg (every key), %s, %s CPUs\n", when, cpus
	printf "%-40s %12s %10s\n", "measure", "us/op", "vs peer"
	printf "%-40s %12.1f %10s\n", "gcfg.ReadFileInto (peer)", peer / 1000, "1.00x"
	printf "%-40s %12.1f %9.2fx\n", "dais config.Load (+env, validation)", load / 1000, load / peer
	printf "%-40s %12.1f %10s\n", "dais config.Render", render / 1000, "-"
}' | tee "$out"
