#!/usr/bin/env bash
# contrib/deps.sh: install the Debian packages kinko needs to build and test,
# only those that are missing (apt-get; run as root). Sourced by test.sh/demo.sh.
kinko_install_deps() {
	local pkgs=(build-essential meson ninja-build pkg-config
		libfuse3-dev fuse3 libsodium-dev libargon2-dev libssl-dev libjansson-dev liburing-dev
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

# For the test suite's sshfs test (a vault on sshfs, served by a private sshd
# on 127.0.0.1 that the test starts itself): sshfs and the sshd binary. A
# newly installed openssh-server is neither started nor left enabled, so
# running the tests does not open an SSH service on the machine.
kinko_install_sshfs_test_deps() {
	local made_policy=0
	if dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed" ||
		[ "$(id -u)" -ne 0 ]; then
		kinko_install_deps sshfs openssh-client || true
		return 0
	fi
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	kinko_install_deps sshfs openssh-client openssh-server || true
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
	if command -v systemctl >/dev/null; then
		systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
	fi
	return 0
}
