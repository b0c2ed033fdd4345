#!/usr/bin/env bash
# contrib/test.sh [--sanitize] [meson test args...]
# Installs what is missing (Debian packages), builds kinko from scratch in a
# fresh build directory and runs the whole `meson test` suite (unit, fuzz
# replays, integration tests that mount real FUSE filesystems; needs root and
# /dev/fuse for the integration suite). --sanitize builds with ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
. contrib/deps.sh

sanitize=0
if [ "${1:-}" = "--sanitize" ]; then sanitize=1; shift; fi
if [ "${1:-}" = "--help" ]; then sed -n '2,6p' "$0"; exit 0; fi

kinko_install_deps
kinko_install_sshfs_test_deps

build=build-test
opts=(-Dtests=true -Dtest_hooks=true --buildtype=debugoptimized)
if [ "$sanitize" = 1 ]; then
	build=build-test-asan
	opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
	export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
rm -rf "$build"
meson setup "$build" "${opts[@]}" >/dev/null
ninja -C "$build"

rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 \
	--timeout-multiplier "$([ "$sanitize" = 1 ] && echo 4 || echo 2)" "$@" || rc=$?

# one plain summary line for humans and CI ("N passed, N failed")
log="$build/meson-logs/testlog.json"
if [ -f "$log" ]; then
	python3 - "$log" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(f"{ok} passed, {fail} failed, {skip} skipped")
PY
fi
exit "$rc"
