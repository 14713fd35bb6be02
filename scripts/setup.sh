#!/usr/bin/env bash
# Installs what the engine, the test guests and the tests need on Debian/Ubuntu (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt_packages=(
  qemu-system-x86 qemu-system-arm qemu-system-gui qemu-utils qemu-user-static binfmt-support
  mmdebstrap debian-archive-keyring e2fsprogs cpio busybox-static openssh-client zstd xz-utils
  nix-bin
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: apt packages present (${#apt_packages[@]})"
