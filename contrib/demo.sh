#!/usr/bin/env bash
# contrib/demo.sh: install what is missing, build kinko, create a demo vault
# ./demo/vault with the user "demo", mount it at ./demo/mnt, write sample files
# (Japanese names included) and show the plaintext view beside the ciphertext.
# Run as root on Debian 12 (FUSE needs /dev/fuse). Re-running starts afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
. contrib/deps.sh
if [ "${1:-}" = "--help" ]; then sed -n '2,5p' "$0"; exit 0; fi

kinko_install_deps
if [ ! -f build-demo/build.ninja ]; then
	meson setup build-demo --buildtype=release -Dtests=false >/dev/null
fi
ninja -C build-demo >/dev/null || { ninja -C build-demo; exit 1; }
KINKO=$PWD/build-demo/src/kinko

if grep -qs " $PWD/demo/mnt " /proc/self/mountinfo; then
	"$KINKO" umount demo/mnt
	sleep 0.5
fi
rm -rf demo
mkdir -p demo/mnt
umask 077
# demo only: a real deployment types the password at the prompt
echo 'Kinko-Passw0rd!2026' > demo/password
"$KINKO" init demo/vault --user demo --password-file demo/password --compartment 給付
"$KINKO" mount demo/vault demo/mnt --user demo --password-file demo/password

C=demo/mnt/給付
mkdir -p "$C/2026年度/申請書"
printf '氏名,個人番号\n山田太郎,(sample)\n' > "$C/2026年度/申請書/扶養親族申告書_山田太郎.csv"
echo "kinko demo: this text is stored encrypted" > "$C/readme.txt"
printf 'long names work too\n' > "$C/2026年度/国民健康保険被保険者資格取得届出書の記入例と添付書類一覧についての説明資料最終版.txt"
ln -s readme.txt "$C/link-to-readme"
dd if=/dev/urandom of="$C/2026年度/scan.bin" bs=64k count=16 status=none

echo
echo "== plaintext view (the mount): demo/mnt"
(cd demo/mnt && find . -mindepth 1 | sort)
echo
echo "== readme.txt through the mount:"
cat "$C/readme.txt"
echo
echo "== ciphertext on disk: demo/vault"
(cd demo/vault && find . -mindepth 1 | sort | sed -n 1,40p)
echo
echo "== the same file on disk (first bytes):"
f=$(find demo/vault/data -type f -size +0 ! -name 'kinko.*' -print -quit)
head -c 64 "$f" | xxd
echo
echo "Mounted. Unmount with:  $KINKO umount $PWD/demo/mnt"
echo "Mount again with:       $KINKO mount $PWD/demo/vault $PWD/demo/mnt --user demo"
echo "                        (password: $(cat demo/password); demo only)"
