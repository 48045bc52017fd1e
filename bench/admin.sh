#!/bin/bash
# Backup/restore benchmark: `dais backup` of a data directory (a SQLite
# database of 2000 content rows plus 40 MB of bundles: 20 incompressible
# 1 MB tarballs and 20 MB of HTML output) against `tar -czf` of the same
# directory (the naive backup: no consistent database snapshot, no
# checksums), and `dais restore` (verify every sha256, then write) against
# `tar -xzf`, measured in the same run. Bounded: DAIS_BENCH_RUNS (default 3)
# runs, median reported.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/admin.txt
runs=${DAIS_BENCH_RUNS:-3}
mkdir -p bench/results
for c in tar python3; do command -v $c >/dev/null || { echo "bench/admin: $c is needed" >&2; exit 1; }; done

tmp=$(mktemp -d /var/tmp/dais-bench-admin.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/dais" ./server
cat >"$tmp/dais.gcfg" <<EOF
[Server]
DataDir = $tmp/data
EOF
echo bench-password-1 | "$tmp/dais" users add --config "$tmp/dais.gcfg" --role publisher bench >/dev/null
python3 - "$tmp/data" <<'EOF'
import os, sqlite3, sys, time, uuid
root = sys.argv[1]
db = sqlite3.connect(os.path.join(root, "db", "dais.db"))
uid = db.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
cols = [r[1] for r in db.execute("PRAGMA table_info(content)")]
now = int(time.time() * 1e6)
for i in range(2000):
    row = {"guid": str(uuid.uuid4()), "name": "c%d" % i, "title": "Content %d" % i, "owner_id": uid,
           "access_type": "acl", "created_at": now, "updated_at": now}
    row = {k: v for k, v in row.items() if k in cols}
    db.execute("INSERT INTO content (%s) VALUES (%s)" % (",".join(row), ",".join("?" * len(row))), list(row.values()))
db.commit()
for i in range(20):
    d = os.path.join(root, "apps", str(i + 1), "1")
    os.makedirs(os.path.join(d, "out"), exist_ok=True)
    open(os.path.join(d, "bundle.tar.gz"), "wb").write(os.urandom(1 << 20))
    open(os.path.join(d, "out", "index.html"), "w").write(("<p>row %d</p>\n" % i) * 80000)
EOF
size=$(du -sm "$tmp/data" | cut -f1)

now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b_ms=() t_ms=() r_ms=() x_ms=()
for r in $(seq "$runs"); do
	rm -f "$tmp/b.tar.gz" "$tmp/t.tar.gz"
	t0=$(now); "$tmp/dais" backup --config "$tmp/dais.gcfg" --out "$tmp/b.tar.gz" >/dev/null 2>&1; t1=$(now)
	tar -czf "$tmp/t.tar.gz" -C "$tmp" data; t2=$(now)
	b_ms+=($(( (t1 - t0) / 1000000 ))) t_ms+=($(( (t2 - t1) / 1000000 )))
	# Restore into a fresh place each time.
	cat >"$tmp/r.gcfg" <<EOF
[Server]
DataDir = $tmp/restored$r
EOF
	t0=$(now); "$tmp/dais" restore --config "$tmp/r.gcfg" --from "$tmp/b.tar.gz" --yes >/dev/null 2>&1; t1=$(now)
	mkdir -p "$tmp/x$r" && tar -xzf "$tmp/t.tar.gz" -C "$tmp/x$r"; t2=$(now)
	r_ms+=($(( (t1 - t0) / 1000000 ))) x_ms+=($(( (t2 - t1) / 1000000 )))
	rm -rf "$tmp/restored$r" "$tmp/x$r"
done
b=$(median "${b_ms[@]}") t=$(median "${t_ms[@]}") rr=$(median "${r_ms[@]}") x=$(median "${x_ms[@]}")
{
	echo "bench/admin: ${size} MB data directory (SQLite, 2000 content rows, 40 MB bundles and output), median of $runs runs, $(date -u +%FT%TZ)"
	printf '%-44s %8s %10s\n' "operation" "ms" "vs peer"
	printf '%-44s %8d %10s\n' "dais backup (snapshot + sha256 manifest)" "$b" "$(awk "BEGIN{printf \"%.2fx\", $b/$t}")"
	printf '%-44s %8d %10s\n' "peer: tar -czf of the directory" "$t" "1.00x"
	printf '%-44s %8d %10s\n' "dais restore (verify, then write)" "$rr" "$(awk "BEGIN{printf \"%.2fx\", $rr/$x}")"
	printf '%-44s %8d %10s\n' "peer: tar -xzf" "$x" "1.00x"
	echo "backup size: dais $(stat -c %s "$tmp/b.tar.gz") bytes, tar $(stat -c %s "$tmp/t.tar.gz") bytes"
} | tee "$out"
