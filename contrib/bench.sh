#!/usr/bin/env bash
# contrib/bench.sh -- kinko vs its peers on one fixed workload, medians of interleaved rounds.
#
# Runs the shared workload (fsbench.sh) inside: the backing directory itself ("plain"),
# libfuse's no-crypto passthrough_ll example, gocryptfs, securefs and kinko, on an ext4
# directory and on a tmpfs, for ROUNDS interleaved rounds (round 1 runs every filesystem,
# then round 2 in reverse order, ...), with a fresh vault and a fresh mount per run. Then prints, per backing
# kind, the median of every metric and kinko's ratio to the best encrypted peer and to
# passthrough_ll, and kinko's daemon peak RSS while copying a large file into a mount on tmpfs.
# Needs root (mounts, drop_caches). Run with --help for the knobs.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: contrib/bench.sh [--quick] [--help]

Benchmarks kinko against plain / passthrough_ll / gocryptfs / securefs with the fsbench.sh
workload. Must run as root. Missing tools are installed with apt-get.

Options:
  --quick    smoke run: ROUNDS=1 SEQ_MB=128 NFILES=1000 RSS_MB=256 (env still overrides)
  --help     this text

Environment:
  ROUNDS=3                   interleaved rounds; the table shows the median per metric.
                             Even rounds run the filesystems in reverse order, so the
                             backing store's drift during a run favours none of them
  KINDS="ext4 tmpfs"         backing kinds: ext4 = directory on the root fs (loop-mounted
                             ext4 image of EXT4_IMG_GB GiB if that is not ext2/3/4), tmpfs
  EXT4_IMG=0                 1: ext4 is always a loop-mounted image made by mkfs.ext4 with
                             its defaults (a journal, as on a workstation). Without a
                             journal ext4's inode allocator steps over inodes freed in the
                             last seconds one by one, so small-file creation depends on
                             what the previous run removed; a loop image bounds
                             sequential writes by the disk under it (fsync goes through).
  FSES="plain passthrough gocryptfs securefs kinko"
                             (add kinko-noaudit: kinko with the audit log switched off,
                             a test-hooks build, to report the audit's cost)
  SEQ_MB RAND_MB RAND_SECS NFILES NDIRS SEED   passed through to fsbench.sh
  FSBENCH=<repo>/../shared/bench/fsbench.sh    the workload script
  KINKO_BIN                  use this kinko binary instead of building one
  KINKO_BUILD_DIR=<repo>/build-bench           where kinko is built (meson, release)
  KINKO_OPTS                 extra "-o" options for kinko mount (e.g. writeback_cache)
  URING                      unset: leave the kernel's fuse.enable_uring as it is (and
                             report it); 1 or 0: switch it on or off for the run and put
                             it back at the end. kinko uses FUSE over io_uring when it is
                             on; the peers (libfuse 3.14, go-fuse) use /dev/fuse either way
  RSS_MB=2048                size of the file copied into kinko on tmpfs for the peak-RSS
                             measurement (0 = skip)
  TMPFS_SIZE=3g  EXT4_IMG_GB=3
  BENCH_TMP=/var/tmp         where the work dir (and the ext4 backing dir) is created
  BENCH_OUT                  raw results TSV (default: /tmp/kinko-bench-DATE.tsv)
  RUN_TIMEOUT=1800           seconds allowed for one fsbench run

Output: raw results as TSV (kind fs round metric value unit; path printed), the tables on
stdout. For time metrics the ratios are peer_time / kinko_time, for throughput
kinko / peer, so a ratio > 1 always means kinko is better.
EOF
}

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  : "${ROUNDS:=1}" "${SEQ_MB:=128}" "${NFILES:=1000}" "${RSS_MB:=256}"
fi
: "${ROUNDS:=3}" "${KINDS:=ext4 tmpfs}" "${FSES:=plain passthrough gocryptfs securefs kinko}"
: "${RSS_MB:=2048}" "${TMPFS_SIZE:=3g}" "${EXT4_IMG_GB:=3}" "${RUN_TIMEOUT:=1800}"
: "${BENCH_TMP:=/var/tmp}"
for v in SEQ_MB RAND_MB RAND_SECS NFILES NDIRS SEED; do   # fsbench knobs: pass through
  if [ -n "${!v:-}" ]; then export "${v?}"; fi
done

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
FSBENCH=${FSBENCH:-"$REPO/../shared/bench/fsbench.sh"}
KINKO_BUILD_DIR=${KINKO_BUILD_DIR:-"$REPO/build-bench"}
BENCH_OUT=${BENCH_OUT:-"/tmp/kinko-bench-$(date +%Y%m%d-%H%M%S).tsv"}
PASSWORD="Vq7-tLm9#pRz2-wXk4"   # no user id inside: kinko rejects that
METRICS="seq_write_MBps seq_read_MBps rand_rw_4k_iops small_create_s small_lsR_s small_readall_s small_rm_s"

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
die() { echo "bench.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mounts tmpfs/loop, drops caches)"
[ -f "$FSBENCH" ] || die "workload not found: $FSBENCH (set FSBENCH=...)"
FSBENCH=$(cd "$(dirname "$FSBENCH")" && pwd)/$(basename "$FSBENCH")   # the runs cd to /
case "$ROUNDS" in ''|*[!0-9]*|0) die "ROUNDS must be a positive integer" ;; esac
for k in $KINDS; do case "$k" in ext4|tmpfs) ;; *) die "unknown kind '$k'" ;; esac; done
for f in $FSES; do
  case "$f" in plain|passthrough|gocryptfs|securefs|kinko|kinko-noaudit) ;; *) die "unknown fs '$f'" ;; esac
done
PATH="$PATH:/usr/sbin:/sbin"   # mkfs.ext4, losetup for non-login root shells
has_fs() { case " $FSES " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- dependencies (apt-get)
install_missing() {
  local pkgs=() c
  declare -A pkg_of=([fio]=fio [python3]=python3 [fusermount3]=fuse3 [timeout]=coreutils
                     [pgrep]=procps [gcc]=gcc [pkg-config]=pkg-config
                     [gocryptfs]=gocryptfs [securefs]=securefs [meson]=meson [ninja]=ninja-build
                     [mkfs.ext4]=e2fsprogs [losetup]=mount)
  local need=(fio python3 fusermount3 timeout pgrep)
  has_fs passthrough && need+=(gcc pkg-config)
  has_fs gocryptfs && need+=(gocryptfs)
  has_fs securefs && need+=(securefs)
  if { has_fs kinko || has_fs kinko-noaudit; } && [ -z "${KINKO_BIN:-}" ]; then need+=(meson ninja gcc pkg-config); fi
  case " $KINDS " in *" ext4 "*) need+=(mkfs.ext4 losetup) ;; esac
  for c in "${need[@]}"; do
    command -v "$c" >/dev/null 2>&1 || pkgs+=("${pkg_of[$c]}")
  done
  if has_fs passthrough; then
    if ! pkg-config --exists fuse3 2>/dev/null || ! ptll_example_dir >/dev/null; then
      pkgs+=(libfuse3-dev)
    fi
  fi
  [ "${#pkgs[@]}" -eq 0 ] && return 0
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  command -v apt-get >/dev/null 2>&1 || die "missing tools and no apt-get: ${pkgs[*]}"
  log "installing: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || log "apt-get update failed (trying install anyway)"
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 \
    || die "apt-get install ${pkgs[*]} failed"
}

ptll_example_dir() {
  local d
  for d in /usr/share/doc/libfuse3-dev/examples /usr/share/doc/fuse3/examples; do
    if [ -f "$d/passthrough_ll.c" ] || [ -f "$d/passthrough_ll.c.gz" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# ---------------------------------------------------------------- cleanup bookkeeping
WORK=""
URING_OLD=""   # fuse.enable_uring before URING= changed it (put back on exit)
URING_PARAM=/sys/module/fuse/parameters/enable_uring
MOUNTS=()      # everything we mounted, unmounted in reverse order on exit
PIDS=()        # background processes we started

is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

fuse_umount() {   # MNT: unmount a FUSE mount, lazily if it is stuck
  local mnt=$1 i
  is_mounted "$mnt" || return 0
  fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null
  for ((i = 0; i < 100; i++)); do is_mounted "$mnt" || return 0; sleep 0.1; done
  log "unmount of $mnt is stuck: lazy unmount"
  fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
  ! is_mounted "$mnt"
}

wait_pid_exit() {  # PID [tenths]
  local pid=$1 n=${2:-100}
  while [ "$n" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; n=$((n - 1)); done
  ! kill -0 "$pid" 2>/dev/null
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$? i m p
  trap - EXIT INT TERM
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${MOUNTS[$i]}
    is_mounted "$m" || continue
    case "$(awk -v m="$m" '$5 == m { print $9 }' /proc/self/mountinfo | tail -n1)" in
      fuse*) fuse_umount "$m" ;;
      *) umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ;;
    esac
  done
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null; wait_pid_exit "$p" 30 || kill -9 "$p" 2>/dev/null; fi
  done
  if [ -n "$URING_OLD" ]; then echo "$URING_OLD" > "$URING_PARAM" 2>/dev/null || log "WARNING: could not put $URING_PARAM back to $URING_OLD"; fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if awk -v w="$WORK/" 'index($5, w) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
      log "WARNING: something is still mounted under $WORK; not removing it"
    else
      rm -rf --one-file-system "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup
install_missing

if [ -n "${URING:-}" ]; then
  case "$URING" in 0|1) ;; *) die "URING must be 0 or 1" ;; esac
  [ -w "$URING_PARAM" ] || die "URING=$URING: this kernel has no $URING_PARAM (FUSE over io_uring needs Linux 6.14+)"
  URING_OLD=$(cat "$URING_PARAM")
  echo "$URING" > "$URING_PARAM" || die "cannot write $URING_PARAM"
fi
URING_STATE="fuse.enable_uring: $(cat "$URING_PARAM" 2>/dev/null || echo "absent (kernel < 6.14)")"
log "$URING_STATE"

mkdir -p "$BENCH_TMP" || die "cannot create $BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/kinko-bench.XXXXXX") || die "mktemp failed"
mkdir -p "$WORK/bin" "$WORK/logs" "$WORK/mnt" "$WORK/out"
PWFILE="$WORK/password"
printf '%s\n' "$PASSWORD" > "$PWFILE"
chmod 600 "$PWFILE"
log "work dir $WORK"

# kinko
KINKO=""; KINKO_REV=""
hooks=false; has_fs kinko-noaudit && hooks=true
if has_fs kinko || has_fs kinko-noaudit; then
  if [ -n "${KINKO_BIN:-}" ]; then
    [ -x "$KINKO_BIN" ] || die "KINKO_BIN=$KINKO_BIN is not executable"
    KINKO=$(cd "$(dirname "$KINKO_BIN")" && pwd)/$(basename "$KINKO_BIN")
  else
    log "building kinko (release) in $KINKO_BUILD_DIR"
    # werror=false: a benchmark build must not fail on an -O3-only warning
    if [ -f "$KINKO_BUILD_DIR/build.ninja" ]; then
      meson configure "$KINKO_BUILD_DIR" -Dbuildtype=release -Dwerror=false \
        -Dtest_hooks=$hooks >"$WORK/logs/meson.log" 2>&1
    else
      meson setup "$KINKO_BUILD_DIR" "$REPO" --buildtype=release -Dwerror=false -Dtests=false \
        -Dtest_hooks=$hooks >"$WORK/logs/meson.log" 2>&1
    fi || { tail -n 30 "$WORK/logs/meson.log" >&2; die "meson setup failed"; }
    ninja -C "$KINKO_BUILD_DIR" src/kinko >"$WORK/logs/ninja.log" 2>&1 \
      || { tail -n 30 "$WORK/logs/ninja.log" >&2; die "kinko build failed"; }
    KINKO="$KINKO_BUILD_DIR/src/kinko"
    KINKO_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null)
  fi
  log "kinko: $KINKO"
fi

# passthrough_ll from the libfuse examples (compiled into the temp dir, never into the repo)
if has_fs passthrough; then
  exdir=$(ptll_example_dir) || die "libfuse3 passthrough_ll example not found"
  for f in passthrough_ll.c passthrough_helpers.h; do
    if [ -f "$exdir/$f" ]; then cp "$exdir/$f" "$WORK/bin/$f"
    elif [ -f "$exdir/$f.gz" ]; then gzip -dc "$exdir/$f.gz" > "$WORK/bin/$f"
    fi
  done
  # shellcheck disable=SC2046  # pkg-config output must word-split
  gcc -O2 -Wall -o "$WORK/bin/passthrough_ll" "$WORK/bin/passthrough_ll.c" \
      $(pkg-config --cflags --libs fuse3) >"$WORK/logs/ptll-build.log" 2>&1 \
    || { cat "$WORK/logs/ptll-build.log" >&2; die "building passthrough_ll failed"; }
  PTLL="$WORK/bin/passthrough_ll"
fi

# backing directories
has_journal() {   # DIR: its ext2/3/4 file system has a jbd2 journal
  local dev
  dev=$(findmnt -no SOURCE -T "$1" 2>/dev/null) || return 1
  dev=$(basename "$(readlink -f "$dev")")
  compgen -G "/proc/fs/jbd2/$dev-*" >/dev/null
}
declare -A BACK
setup_kind() {
  local kind=$1 d t
  case "$kind" in
    ext4)
      d="$WORK/ext4"; mkdir -p "$d"
      t=$(stat -f -c %T "$d")
      # EXT4_IMG=1: a journaled image, as on a workstation (see --help)
      if [ "${EXT4_IMG:-0}" = 1 ]; then
        t="$t (EXT4_IMG=1)"
      elif ! has_journal "$d"; then
        log "ext4 backing: $d has no journal (EXT4_IMG=1 for a journaled image)"
      fi
      case "$t" in
        ext2/ext3|ext4|ext2|ext3) log "ext4 backing: $d (root fs, type $t)" ;;
        *)
          log "ext4 backing: $d is on '$t': using a ${EXT4_IMG_GB} GiB loop-mounted ext4 image"
          truncate -s "${EXT4_IMG_GB}G" "$WORK/ext4.img" || return 1
          mkfs.ext4 -q -F "$WORK/ext4.img" >"$WORK/logs/mkfs.log" 2>&1 || return 1
          mount -o loop "$WORK/ext4.img" "$d" || return 1
          MOUNTS+=("$d")
          ;;
      esac
      ;;
    tmpfs)
      d="$WORK/tmpfs"; mkdir -p "$d"
      mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0700" kinko-bench "$d" || return 1
      MOUNTS+=("$d")
      log "tmpfs backing: $d (size $TMPFS_SIZE)"
      ;;
  esac
  BACK[$kind]=$d
}

wait_mount() {   # MNT [PID]: wait up to 30 s for MNT to appear; fail early if PID dies
  local mnt=$1 pid=${2:-} n=300
  while [ "$n" -gt 0 ]; do
    is_mounted "$mnt" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1; n=$((n - 1))
  done
  return 1
}

kinko_pid() {    # MNT -> pid of the kinko daemon serving it (KINKO_BIN may be named otherwise)
  pgrep -f -- "$(basename "$KINKO") mount .*${1}( |\$)" | head -n1
}

# mount_fs FS BASE MNT LOG: sets TARGET (dir to run the workload in) and DPID (daemon pid)
mount_fs() {
  local fs=$1 base=$2 mnt=$3 lg=$4 opts=()
  TARGET=""; DPID=""
  case "$fs" in
    plain)
      mkdir -p "$base/plain" && TARGET="$base/plain"; return
      ;;
    passthrough)
      mkdir -p "$base/src" "$mnt" || return 1
      "$PTLL" -f -o "source=$base/src" "$mnt" >>"$lg" 2>&1 &
      DPID=$!; PIDS+=("$DPID"); MOUNTS+=("$mnt")
      wait_mount "$mnt" "$DPID" || return 1
      ;;
    gocryptfs)
      mkdir -p "$base/cipher" "$mnt" || return 1
      gocryptfs -init -q -passfile "$PWFILE" "$base/cipher" >>"$lg" 2>&1 || return 1
      MOUNTS+=("$mnt")
      gocryptfs -q -passfile "$PWFILE" "$base/cipher" "$mnt" >>"$lg" 2>&1 || return 1
      wait_mount "$mnt" || return 1
      DPID=$(pgrep -f -- "gocryptfs .*${mnt}( |\$)" | head -n1)
      ;;
    securefs)
      mkdir -p "$base/cipher" "$mnt" || return 1
      securefs create --pass "$PASSWORD" "$base/cipher" >>"$lg" 2>&1 || return 1
      securefs mount --pass "$PASSWORD" "$base/cipher" "$mnt" >>"$lg" 2>&1 &
      DPID=$!; PIDS+=("$DPID"); MOUNTS+=("$mnt")
      wait_mount "$mnt" "$DPID" || return 1
      ;;
    kinko|kinko-noaudit)
      mkdir -p "$mnt" || return 1
      "$KINKO" init "$base/vault" --user bench --password-file "$PWFILE" --compartment main \
        >>"$lg" 2>&1 || return 1
      # the workload reads thousands of files in seconds: exactly what the anomaly
      # lock is for (kinko-lock(1)); the benchmark measures the file system instead
      for k in anomaly.files_limit anomaly.read_mib_limit; do
        "$KINKO" policy set "$k" 0 --vault "$base/vault" --as bench --password-file "$PWFILE" \
          >>"$lg" 2>&1 || return 1
      done
      [ -n "${KINKO_OPTS:-}" ] && opts=(-o "$KINKO_OPTS")
      MOUNTS+=("$mnt")
      if [ "$fs" = kinko-noaudit ]; then
        KINKO_TEST_NO_AUDIT=1 "$KINKO" mount "$base/vault" "$mnt" --user bench \
          --password-file "$PWFILE" "${opts[@]}" >>"$lg" 2>&1 || return 1
      else
        "$KINKO" mount "$base/vault" "$mnt" --user bench --password-file "$PWFILE" "${opts[@]}" \
          >>"$lg" 2>&1 || return 1
      fi
      wait_mount "$mnt" || return 1
      DPID=$(kinko_pid "$mnt")
      [ -d "$mnt/main" ] || return 1
      TARGET="$mnt/main"; return 0
      ;;
  esac
  TARGET="$mnt"
}

umount_fs() {    # FS MNT DPID
  local fs=$1 mnt=$2 pid=$3
  [ "$fs" = plain ] && return 0
  if [ "${fs%-noaudit}" = kinko ] && is_mounted "$mnt"; then "$KINKO" umount "$mnt" >/dev/null 2>&1; fi
  fuse_umount "$mnt" || log "WARNING: could not unmount $mnt"
  if [ -n "$pid" ]; then wait_pid_exit "$pid" 100 || log "WARNING: $fs daemon $pid still running"; fi
}

printf 'kind\tfs\tround\tmetric\tvalue\tunit\n' > "$BENCH_OUT" || die "cannot write $BENCH_OUT"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$BENCH_OUT"; }

run_one() {      # KIND FS ROUND
  local kind=$1 fs=$2 r=$3 base mnt lg out rc
  base="${BACK[$kind]}/r$r-$fs"
  mnt="$WORK/mnt/$kind-$fs-r$r"
  lg="$WORK/logs/$kind-$fs-r$r.log"
  out="$WORK/out/$kind-$fs-r$r.out"
  mkdir -p "$base"
  log "round $r/$ROUNDS  $kind  $fs"
  if ! mount_fs "$fs" "$base" "$mnt" "$lg" || [ -z "$TARGET" ]; then
    log "FAIL: $fs did not mount on $kind (round $r); log:"
    sed 's/^/    /' "$lg" 2>/dev/null | tail -n 15 >&2
    record "$kind" "$fs" "$r" mount_ok 0 bool
    umount_fs "$fs" "$mnt" "${DPID:-}"
    rm -rf --one-file-system "$base"
    return 0
  fi
  record "$kind" "$fs" "$r" mount_ok 1 bool
  # in the background + wait, so that INT/TERM reach our trap at once; timeout(1) runs
  # fsbench in its own process group and forwards a TERM from cleanup to all of it
  (cd / && exec timeout "$RUN_TIMEOUT" bash "$FSBENCH" "$TARGET") >"$out" 2>>"$lg" &
  local bp=$!
  PIDS+=("$bp")
  wait "$bp"
  rc=$?
  [ "$rc" -eq 0 ] || { log "FAIL: fsbench exited $rc on $kind/$fs round $r"; tail -n 5 "$lg" >&2; }
  record "$kind" "$fs" "$r" fsbench_rc "$rc" code
  awk -v k="$kind" -v f="$fs" -v r="$r" 'NF == 3 { printf "%s\t%s\t%s\t%s\t%s\t%s\n", k, f, r, $1, $2, $3 }' \
    "$out" >> "$BENCH_OUT"
  sed 's/^/    /' "$out" | grep -E " ($(echo "$METRICS small_verify" | tr ' ' '|')) " >&2
  umount_fs "$fs" "$mnt" "${DPID:-}"
  rm -rf --one-file-system "$base"
}

# ---------------------------------------------------------------- the rounds
for kind in $KINDS; do setup_kind "$kind" || die "cannot set up backing kind $kind"; done
log "workload $FSBENCH  ROUNDS=$ROUNDS KINDS='$KINDS' FSES='$FSES'" \
    "SEQ_MB=${SEQ_MB:-default} NFILES=${NFILES:-default}"
# Even rounds run the filesystems in reverse order: the backing store drifts during
# a run (a journal-less ext4 steps over every inode freed in the last minute when it
# allocates one, so small-file creation slows as the runs before it delete their
# trees), and a fixed order would always charge the drift to the last filesystem.
REVERSED=$(printf '%s\n' $FSES | tac | tr '\n' ' ')
for ((r = 1; r <= ROUNDS; r++)); do
  order=$FSES; (( r % 2 == 0 )) && order=$REVERSED
  for kind in $KINDS; do
    for fs in $order; do run_one "$kind" "$fs" "$r"; done
  done
done

# ---------------------------------------------------------------- kinko peak RSS on tmpfs
RSS_LINE=""
if has_fs kinko && [ "$RSS_MB" -gt 0 ]; then
  log "peak RSS: copying a $RSS_MB MiB file into kinko on tmpfs"
  rd="$WORK/rss"; mkdir -p "$rd" "$WORK/mnt/rss"
  rlg="$WORK/logs/rss.log"
  if mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0700" kinko-bench-rss "$rd"; then
    MOUNTS+=("$rd")
    dd if=/dev/urandom of="$WORK/rss-src.dat" bs=1M count="$RSS_MB" status=none
    if mount_fs kinko "$rd" "$WORK/mnt/rss" "$rlg" && [ -n "$DPID" ]; then
      hwm0=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status")
      t0=$(date +%s.%N)
      if cp --sparse=never "$WORK/rss-src.dat" "$TARGET/big.dat" && sync; then
        t1=$(date +%s.%N)
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status")
        if cmp -s "$WORK/rss-src.dat" "$TARGET/big.dat"; then ok=1; else ok=0; fi
        RSS_LINE=$(awk -v h="$hwm" -v h0="$hwm0" -v mb="$RSS_MB" -v a="$t0" -v b="$t1" -v ok="$ok" \
          'BEGIN { printf "kinko daemon peak RSS (VmHWM) copying %d MiB into a mount on tmpfs: %.1f MiB (after mount: %.1f MiB; copy %.1f s = %.0f MB/s; read-back %s)", mb, h/1024, h0/1024, b-a, mb*1048576/1e6/(b-a), ok ? "ok" : "MISMATCH" }')
        record tmpfs kinko rss peak_rss_MiB "$(awk -v h="$hwm" 'BEGIN{printf "%.1f", h/1024}')" MiB
        record tmpfs kinko rss rss_after_mount_MiB "$(awk -v h="$hwm0" 'BEGIN{printf "%.1f", h/1024}')" MiB
        record tmpfs kinko rss rss_copy_verify "$ok" bool
      else
        RSS_LINE="kinko peak RSS: FAIL (copy of $RSS_MB MiB failed)"
      fi
      rm -f "$TARGET/big.dat"
    else
      RSS_LINE="kinko peak RSS: FAIL (mount failed)"; tail -n 10 "$rlg" >&2
    fi
    umount_fs kinko "$WORK/mnt/rss" "${DPID:-}"
    rm -f "$WORK/rss-src.dat"
    umount "$rd" || umount -l "$rd"
  else
    RSS_LINE="kinko peak RSS: FAIL (cannot mount tmpfs)"
  fi
fi

# ---------------------------------------------------------------- report
echo
echo "kinko bench: ROUNDS=$ROUNDS SEQ_MB=${SEQ_MB:-512} RAND_MB=${RAND_MB:-128} NFILES=${NFILES:-5000}" \
     "NDIRS=${NDIRS:-300}  $(date -u +%Y-%m-%dT%H:%MZ)"
[ -n "${KINKO:-}" ] && echo "kinko: $KINKO  $("$KINKO" --version 2>/dev/null | head -n1)${KINKO_REV:+  (git $KINKO_REV)}"
echo "$URING_STATE (Y: kinko's requests go through io_uring; the peers' through /dev/fuse)"
python3 "$SCRIPT_DIR/bench/report.py" "$BENCH_OUT" "$ROUNDS" "$KINDS" "$FSES" "$METRICS"
report_rc=$?
[ -n "$RSS_LINE" ] && { echo; echo "$RSS_LINE"; }
echo
echo "raw results: $BENCH_OUT"
exit "$report_rc"
