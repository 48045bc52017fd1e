#!/bin/bash
# make reliability: the reliability battery (issue 23; e2e/reliability_test.go
# and the cases it lists) against the image $DAIS_IMAGE, light and heavy
# cases one after another, in under 10 minutes. Its table replaces the one in
# docs/reliability.md between the "results" markers; the full log is kept in
# .tmp/reliability/log.txt. Run it as root to include the full data volume on
# a loop device (skipped, with the reason in the table, otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -f .tmp/test.env ]]; then
	set -a
	source .tmp/test.env
	set +a
fi
dir=.tmp/reliability
mkdir -p "$dir"
rm -f "$dir/table.md"
load_before=$(uptime | sed 's/.*load average: //')
start=$(date +%s)
DAIS_RELIABILITY=1 DAIS_RELIABILITY_OUT="$PWD/$dir/table.md" \
	go test -count=1 -timeout 15m -v -run '^TestReliability$' ./e2e >"$dir/log.txt" 2>&1
status=$?
elapsed=$(($(date +%s) - start))
load_after=$(uptime | sed 's/.*load average: //')
grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL)\s' "$dir/log.txt"
if [[ ! -s $dir/table.md ]]; then
	echo "reliability: the battery wrote no table; see $dir/log.txt" >&2
	tail -50 "$dir/log.txt" >&2
	exit 1
fi
cgroup=v1
[[ -f /sys/fs/cgroup/cgroup.controllers ]] && cgroup=v2
who=root
[[ $(id -u) -ne 0 ]] && who="not root (the loop-device case is skipped)"
{
	echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') on commit $(git describe --tags --always --dirty 2>/dev/null),"
	echo "image \`${DAIS_IMAGE:-dais:latest}\`, Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null),"
	echo "cgroup $cgroup, $(nproc) CPUs, as $who; load average $load_before before and"
	echo "$load_after after (other work shares this machine); the battery took ${elapsed} s, exit status $status."
	echo
	cat "$dir/table.md"
} >"$dir/section.md"
python3 - "$dir/section.md" <<'PY'
import sys
section = open(sys.argv[1]).read()
doc = open("docs/reliability.md").read()
begin, end = "<!-- BEGIN results (scripts/reliability.sh writes this part) -->\n", "<!-- END results -->"
i, j = doc.index(begin) + len(begin), doc.index(end)
open("docs/reliability.md", "w").write(doc[:i] + section + doc[j:])
PY
echo "reliability: table written into docs/reliability.md (${elapsed} s)"
exit $status
