#!/usr/bin/env bash
# Installs what the engine, the test guests, the tests and the demo need on Debian 12 / Ubuntu (run
# as root), makes the other guest architecture runnable through binfmt_misc, then checks that every
# command a later step runs is there. Idempotent; prints one line when nothing was missing.
# Node.js 20+ and npm are not installed here (Debian 12's nodejs is 18).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# mkfs.ext4, update-binfmts live in sbin, which a non-root PATH may lack.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# command  package  who runs it
needs=(
  "qemu-system-x86_64  qemu-system-x86   x86_64 guests (tests, KVM probe)"
  "qemu-system-aarch64 qemu-system-arm   aarch64 guests (tests, npm run demo)"
  "qemu-img            qemu-utils        the runners' qcow2 overlays, guest builder"
  "qemu-aarch64-static qemu-user-static  arm64 chroot of the aarch64 guest build (binfmt_misc)"
  "qemu-x86_64-static  qemu-user-static  amd64 chroot of the x86_64 guest build on an arm64 host"
  "update-binfmts      binfmt-support    guest builder, this script: binfmt_misc registration"
  "arch-test           arch-test         mmdebstrap's check of a foreign architecture"
  "mmdebstrap          mmdebstrap        guest root file systems, the fresh-root test"
  "mkfs.ext4           e2fsprogs         guest disk images"
  "cpio                cpio              guest initrds, the fixture flake's builder"
  "gzip                gzip              guest initrds"
  "xz                  xz-utils          .ko.xz kernel modules in guest initrds"
  "zstd                zstd              .ko.zst kernel modules in guest initrds"
  "ssh-keygen          openssh-client    guest keys, engine tests"
  "ssh                 openssh-client    npm run bench"
  "nix                 nix-bin           --flake, the flake tests"
  "nix-instantiate     nix-bin           .nix parse tests"
  "python3             python3           npm run demo (its HTTP server)"
  "pgrep               procps            integration tests (QEMU left behind?)"
  "flock               util-linux        guest cache locks, flake tests"
  "unshare             util-linux        the fresh-root test, the host-step tests (private mount namespaces)"
  "sudo                sudo              the host-step tests (the action's privileged writes: sudo -n install)"
  "tar                 tar               @actions/cache (the store cache round trip)"
  "setsid              util-linux        npm run demo (node in a session of its own)"
  "mount               mount             binfmt_misc"
)
# Packages without a command of their own: mmdebstrap verifies the Debian archive with it (Ubuntu
# hosts do not have it).
extra_packages=(debian-archive-keyring)

# ---- install -------------------------------------------------------------------------------------
packages=()
for n in "${needs[@]}"; do
  read -r _ pkg _ <<<"$n"
  packages+=("$pkg")
done
packages+=("${extra_packages[@]}")
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: must run as root to install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- binfmt_misc: the other guest architecture -------------------------------------------------
# The guest builder registers it too (a registration does not survive a reboot without systemd);
# here it makes the preflight below meaningful.
host=$(uname -m)
foreign=()
for a in x86_64 aarch64; do [ "$a" = "$host" ] || foreign+=("$a"); done
deb_arch() { case "$1" in x86_64) echo amd64 ;; aarch64) echo arm64 ;; esac; }
fmt=/proc/sys/fs/binfmt_misc
for a in "${foreign[@]}"; do
  [ -e "$fmt/register" ] || mount -t binfmt_misc binfmt_misc "$fmt" 2>/dev/null || true
  if [ -e "$fmt/register" ] && [ ! -e "$fmt/qemu-$a" ] && command -v update-binfmts >/dev/null; then
    update-binfmts --enable "qemu-$a" >/dev/null 2>&1 || true
  fi
  if [ -e "$fmt/qemu-$a" ] && ! grep -q '^enabled' "$fmt/qemu-$a"; then
    echo 1 >"$fmt/qemu-$a" 2>/dev/null || true
  fi
done

# ---- preflight -----------------------------------------------------------------------------------
problems=()
for n in "${needs[@]}"; do
  read -r cmd pkg why <<<"$n"
  # qemu-<other arch>-static only matters when that architecture is foreign here.
  case "$cmd" in
    qemu-aarch64-static) [[ " ${foreign[*]} " == *" aarch64 "* ]] || continue ;;
    qemu-x86_64-static) [[ " ${foreign[*]} " == *" x86_64 "* ]] || continue ;;
  esac
  command -v "$cmd" >/dev/null 2>&1 || problems+=("missing command $cmd (package $pkg; needed by: $why)")
done
if command -v arch-test >/dev/null 2>&1; then
  for a in "${foreign[@]}"; do
    d=$(deb_arch "$a")
    out=$(arch-test "$d" 2>&1 || true)
    [ "$out" = "$d: ok" ] || problems+=("$d binaries do not run here (arch-test $d: ${out:-no output}):" \
      "  binfmt_misc must be mounted on $fmt and qemu-$a registered (update-binfmts --enable qemu-$a," \
      "  package qemu-user-static); the $a guest build (mmdebstrap --arch=$d) needs it")
  done
fi
if [ "${#problems[@]}" -gt 0 ]; then
  printf 'setup: %s\n' "${problems[@]}" >&2
  echo "setup: FAILED: the machine lacks what the guest builds, the tests or the demo run" >&2
  exit 1
fi

# Not installed here: npm ci and every later step need Node.js 20+ with npm.
node_version=$(node -p 'process.versions.node' 2>/dev/null || echo none)
if [ "${node_version%%.*}" = none ] || [ "${node_version%%.*}" -lt 20 ] || ! command -v npm >/dev/null; then
  echo "setup: warning: npm ci and what follows need Node.js 20+ and npm (found node $node_version," \
    "npm $(command -v npm || echo none)); Debian 12's own nodejs is 18" >&2
fi
echo "setup: ok (${#packages[@]} packages; ${foreign[*]} binaries run through binfmt_misc)"
