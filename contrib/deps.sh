#!/usr/bin/env bash
# contrib/deps.sh: install the Debian packages kinko needs to build and test,
# only those that are missing (apt-get; run as root). Sourced by test.sh/demo.sh.
kinko_install_deps() {
	local pkgs=(build-essential meson ninja-build pkg-config
		libfuse3-dev fuse3 libsodium-dev libargon2-dev libssl-dev libjansson-dev
		libcmocka-dev libinih-dev python3 python3-pytest attr acl rsync xxd openssl util-linux
		"$@")
	local missing=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "kinko: installing ${missing[*]}"
		if [ "$(id -u)" -ne 0 ]; then
			echo "kinko: missing packages and not root: run as root or install: ${missing[*]}" >&2
			return 1
		fi
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	fi
	if [ ! -e /dev/fuse ]; then
		modprobe fuse 2>/dev/null || true
	fi
}
