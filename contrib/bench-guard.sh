#!/usr/bin/env bash
# contrib/bench-guard.sh -- cost of the removable-media guard on sequential reads.
#
# Reads a SIZE_MB file through a kinko mount with dd (page cache dropped before each
# run), ROUNDS interleaved rounds of: guard off (mount with KINKO_TEST_NO_GUARD=1, no
# guard service) and guard on (the mount's open-time check + `kinko guard` watching a
# tmpfs declared removable). Prints the median MB/s of each and the ratio on/off.
# Needs root and a test-hooks build (KINKO_BIN, default build/src/kinko).
set -euo pipefail
cd "$(dirname "$0")/.."
KINKO_BIN=${KINKO_BIN:-$PWD/build/src/kinko}
ROUNDS=${ROUNDS:-5}
SIZE_MB=${SIZE_MB:-512}
if [ "${1:-}" = "--help" ]; then sed -n '2,8p' "$0"; exit 0; fi

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/kinko-bench-guard-XXXXXX")
gpid=
cleanup() {
	[ -n "$gpid" ] && kill "$gpid" 2>/dev/null && wait "$gpid" 2>/dev/null
	fusermount3 -u "$work/mnt" 2>/dev/null || true
	umount "$work/media" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
export KINKO_RUN_DIR=$work/run KINKO_STATE_DIR=$work/state KINKO_GUARD_SOCKET=$work/guard.sock
mkdir -m 700 "$work/run"; mkdir "$work/state" "$work/mnt" "$work/media"
mount -t tmpfs tmpfs "$work/media"
printf 'removable_paths = %s\n' "$work/media" >"$work/kinko.conf"
echo 'Corr3ct-Horse!battery' >"$work/pw"
"$KINKO_BIN" init "$work/vault" --user alice --password-file "$work/pw" >/dev/null

mnt() { "$KINKO_BIN" mount "$work/vault" "$work/mnt" --user alice --password-file "$work/pw" \
	--config "$work/kinko.conf"; }
mnt
dd if=/dev/urandom of="$work/mnt/main/big" bs=1M count="$SIZE_MB" status=none
fusermount3 -u "$work/mnt"

run() { # $1 = on|off -> MB/s
	if [ "$1" = off ]; then KINKO_TEST_NO_GUARD=1 mnt; else mnt; fi
	sync; echo 3 >/proc/sys/vm/drop_caches
	local out
	out=$(LC_ALL=C dd if="$work/mnt/main/big" of=/dev/null bs=1M 2>&1 | tail -1)
	fusermount3 -u "$work/mnt"
	# "536870912 bytes (537 MB, 512 MiB) copied, 1.234 s, 435 MB/s"
	awk -v b="$(echo "$out" | awk '{print $1}')" -v s="$(echo "$out" | sed 's/.*copied, \([0-9.]*\) s.*/\1/')" \
		'BEGIN { printf "%.1f\n", b / s / 1e6 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

offs=(); ons=()
for r in $(seq "$ROUNDS"); do
	offs+=("$(run off)")
	"$KINKO_BIN" guard --config "$work/kinko.conf" -f 2>"$work/guard.log" & gpid=$!
	for _ in $(seq 50); do grep -q started: "$work/guard.log" 2>/dev/null && break; sleep 0.1; done
	ons+=("$(run on)")
	kill "$gpid"; wait "$gpid" 2>/dev/null || true; gpid=
	echo "round $r: off ${offs[-1]} MB/s, on ${ons[-1]} MB/s"
done
moff=$(printf '%s\n' "${offs[@]}" | median)
mon=$(printf '%s\n' "${ons[@]}" | median)
echo "median: guard off $moff MB/s, guard on $mon MB/s, ratio on/off $(awk -v a="$mon" -v b="$moff" 'BEGIN { printf "%.3f", a / b }')"
