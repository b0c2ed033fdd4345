#!/usr/bin/env bash
# contrib/bench-rekey.sh -- kinko key rekey against a plain copy of the same bytes.
#
# Fills a fresh vault with SEQ_MB MiB in 8 large files and NFILES small files (through a
# real mount), unmounts, rotates the compartment and times `kinko key rekey` (its own
# --json seconds, caches dropped first). On the same backing directory it times the plain
# filesystem doing the same I/O: reading every ciphertext file and writing a copy
# (`cp -a` then `sync`, caches dropped first). Prints MB/s of both and rekey's ratio
# (plain copy seconds / rekey seconds: 1.0 = disk speed). Needs root (mount, drop_caches).
set -euo pipefail

if [ "${1:-}" = "--help" ]; then
	cat <<'EOF'
usage: contrib/bench-rekey.sh [--help]
Environment: KINKO_BIN (default build/src/kinko), KINDS="ext4 tmpfs", SEQ_MB=512,
             NFILES=2000, ROUNDS=3, BENCH_TMP=/var/tmp, TMPFS_SIZE=3g
EOF
	exit 0
fi
cd "$(dirname "$0")/.."
K=${KINKO_BIN:-$PWD/build/src/kinko}
KINDS=${KINDS:-"ext4 tmpfs"}
SEQ_MB=${SEQ_MB:-512}
NFILES=${NFILES:-2000}
ROUNDS=${ROUNDS:-3}
PW='Corr3ct-Horse!battery'

drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

one() { # $1 = work dir; prints "plain_s rekey_s bytes"
	local w=$1 v=$1/vault m=$1/mnt
	export KINKO_STATE_DIR=$w/state
	printf '%s\n' "$PW" > "$w/pw"
	"$K" init "$v" --user bench --password-file "$w/pw" >/dev/null
	mkdir -p "$m"
	"$K" mount "$v" "$m" --user bench --password-file "$w/pw"
	for i in 1 2 3 4 5 6 7 8; do
		head -c $((SEQ_MB * 1048576 / 8)) /dev/urandom > "$m/main/big$i"
	done
	mkdir "$m/main/small"
	for i in $(seq 1 "$NFILES"); do head -c $((RANDOM % 16384 + 1)) /dev/urandom > "$m/main/small/f$i"; done
	fusermount3 -u "$m"
	local comp
	comp=$(ls "$v/data")
	drop
	local t0 t1
	t0=$(date +%s.%N)
	cp -a "$v/data/$comp" "$w/plain-copy"
	sync
	t1=$(date +%s.%N)
	rm -rf "$w/plain-copy"
	"$K" key rotate main --vault "$v" --as bench --password-file "$w/pw" >/dev/null
	drop
	local out
	out=$("$K" key rekey main --vault "$v" --as bench --password-file "$w/pw" --json --no-progress)
	python3 - "$t0" "$t1" "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[3])
print(float(sys.argv[2]) - float(sys.argv[1]), r["seconds"], r["bytes"])
PY
}

for kind in $KINDS; do
	for round in $(seq 1 "$ROUNDS"); do
		base=${BENCH_TMP:-/var/tmp}
		w=$(mktemp -d "$base/kinko-rekey-XXXXXX")
		if [ "$kind" = tmpfs ]; then mount -t tmpfs -o size="${TMPFS_SIZE:-3g}" tmpfs "$w"; fi
		res=$(one "$w")
		read -r plain rekey bytes <<<"$res"
		python3 -c "
p, r, b = $plain, $rekey, $bytes
print(f'$kind round $round: {b/2**20:.0f} MiB  plain copy {p:.2f} s ({b/p/1e6:.0f} MB/s)  rekey {r:.2f} s ({b/r/1e6:.0f} MB/s)  rekey/plain speed {p/r:.2f}')"
		if [ "$kind" = tmpfs ]; then umount "$w"; fi
		rm -rf "$w"
	done
done
