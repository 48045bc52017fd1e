#!/bin/bash
# The Debian package (issue 19): its size against the binaries it holds, and
# the downtime of an upgrade (apt-get install of a newer package over a
# running dais with a deployed Plumber API: the old server's last /__ping__
# to the new one's first) against a plain `systemctl restart dais` on the
# same container, measured in the same run by e2e's TestDebianPackage
# (systemd as PID 1 in a Debian 12 container; docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/deb.txt
mkdir -p bench/results
tmp=$(mktemp -d /var/tmp/dais-bench-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

make -s build BIN="$tmp/bin" >/dev/null
go run ./packaging/cmd/mkdeb --bin "$tmp/bin" --out "$tmp" --version 1.0.0 >/dev/null
deb=$tmp/dais_1.0.0_amd64.deb
size=$(stat -c %s "$deb")
bins=$(du -cb "$tmp"/bin/* | tail -1 | cut -f1)
installed=$(dpkg-deb -f "$deb" Installed-Size)

DAIS_DEB_BENCH_OUT=$tmp/downtime.txt go test -count=1 -timeout 30m -run 'TestDebianPackage' ./e2e/ >"$tmp/test.log" 2>&1 ||
	{ tail -40 "$tmp/test.log" >&2; exit 1; }
up=$(awk '/^upgrade_ms/ {print $2}' "$tmp/downtime.txt")
re=$(awk '/^restart_ms/ {print $2}' "$tmp/downtime.txt")

{
	echo "# bench/deb.sh $(date -u +%FT%TZ), load average $(cut -d' ' -f1 /proc/loadavg)"
	printf '%-52s %12s\n' "measure" "value"
	printf '%-52s %9.1f MB\n' "package dais_<version>_amd64.deb (gzip)" "$(echo "$size/1000000" | bc -l)"
	printf '%-52s %9.1f MB\n' "the three binaries it holds" "$(echo "$bins/1000000" | bc -l)"
	printf '%-52s %9.2f\n' "package / binaries" "$(echo "$size/$bins" | bc -l)"
	printf '%-52s %9.1f MB\n' "installed size (dpkg)" "$(echo "$installed*1024/1000000" | bc -l)"
	printf '%-52s %9.2f s\n' "upgrade downtime (apt-get install newer .deb)" "$(echo "$up/1000" | bc -l)"
	printf '%-52s %9.2f s\n' "peer: systemctl restart dais, same container" "$(echo "$re/1000" | bc -l)"
	printf '%-52s %9.2f\n' "upgrade / restart" "$(echo "$up/$re" | bc -l)"
} | tee "$out"
