#!/usr/bin/env bash
# Proves scripts/setup.sh on a minimal Debian 12 root instead of this (warm) machine: a
# `mmdebstrap --variant=minbase bookworm` chroot with Node 20 copied in the way a fresh machine
# would have it (/usr/local/bin), the project bind-mounted read-only (node_modules included) and
# this host's apt archive cache bind-mounted (downloads are shared). Inside the chroot:
#
#   1. bash scripts/setup.sh                      (installs, then its preflight)
#   2. bash scripts/setup.sh again                (idempotent: one line, no apt)
#   3. arch-test arm64, then mmdebstrap's own foreign-architecture check for arm64 (the first step
#      of the aarch64 guest build; binfmt_misc is kernel-global, registered from the host)
#   4. QEMU with the test guests' devices and the engine's -display none (no GUI packages)
#   5. python3's http.server (the demo's network-stage server)
#   6. node dist/cli/index.js validate --dry-run --flake .#nixos-vm-aarch64
#   7. with --boot only: the demo's aarch64 guest (this host's cached build, bind-mounted read-only)
#      validated with boot,ssh inside the chroot (about a minute more)
#
#   scripts/test-fresh-root.sh [--setup PATH] [--boot]    PATH: the setup script to prove (default ours)
#
# Runs as root. Everything happens in a private mount namespace (the mounts vanish with it) and a
# temp dir under $TMPDIR that is removed on every exit. The minbase tarball is cached under
# ${NVV_CACHE_DIR:-~/.cache/nixos-vm-validate}/fresh-root/, keyed by a hash of its recipe.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${NVV_CACHE_DIR:-$HOME/.cache/nixos-vm-validate}/fresh-root
SUITE=bookworm
VARIANT=minbase
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "[fresh-root] $*" >&2; }
die() { echo "[fresh-root] FAIL: $*" >&2; exit 1; }

# ---- the recipe ------------------------------------------------------------------------------------

# host_suite_uri SUITE: the URI this machine's apt uses for SUITE (deb822 or one-line sources).
host_suite_uri() {
    local suite=$1 f url=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        url=$(awk -v s="$suite" '
            /^[[:space:]]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
            END { if (uri != "" && hit) print uri }' "$f" | head -n1)
        [ -n "$url" ] && break
    done
    if [ -z "$url" ]; then
        url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            sed -E 's/\[[^]]*\]//' | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }')
    fi
    echo "$url"
}

# The sources of a fresh Debian 12 (release, updates, security), from this machine's mirrors so that
# the versions match its apt cache. NVV_DEBIAN_MIRROR overrides the first two, as for the guests.
recipe_sources() {
    local main security
    main=${NVV_DEBIAN_MIRROR:-$(host_suite_uri "$SUITE")}
    main=${main:-http://deb.debian.org/debian}
    security=$(host_suite_uri "$SUITE-security")
    security=${security:-http://deb.debian.org/debian-security}
    echo "deb $main $SUITE main"
    echo "deb $main $SUITE-updates main"
    echo "deb $security $SUITE-security main"
}

recipe_key() {
    { echo "fresh-root-v1 $VARIANT $SUITE $(uname -m)"; recipe_sources; } | sha256sum | cut -c1-16
}

# ensure_tarball: prints the cached minbase tarball, building it (once per recipe) if needed.
ensure_tarball() {
    local key tar tmp
    key=$(recipe_key)
    tar=$CACHE/$VARIANT-$SUITE-$key.tar
    mkdir -p "$CACHE"
    (
        flock 9
        if [ ! -f "$tar" ]; then
            log "building the $VARIANT $SUITE tarball (once per recipe) → $tar"
            tmp=$CACHE/.tmp-$$.tar
            trap 'rm -f "$tmp"' EXIT
            mapfile -t sources < <(recipe_sources)
            mmdebstrap --quiet --mode=root --variant="$VARIANT" "$SUITE" "$tmp" "${sources[@]}"
            mv "$tmp" "$tar"
            trap - EXIT
            find "$CACHE" -maxdepth 1 -name "$VARIANT-*.tar" ! -name "$(basename "$tar")" -delete
        fi
    ) 9>"$CACHE/.lock"
    echo "$tar"
}

# ---- clean-up --------------------------------------------------------------------------------------

# kill_chroot_processes ROOT: every process whose root directory is ROOT.
kill_chroot_processes() {
    local root=$1 p pids=()
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
    done
    [ ${#pids[@]} = 0 ] && return 0
    log "killing processes left in the chroot: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

# remove_work DIR: unmounts what this mount namespace has below DIR (deepest first), then removes it
# without crossing into a file system that is still mounted there.
remove_work() {
    local dir=$1 mnt
    [ -d "$dir" ] || return 0
    kill_chroot_processes "$dir/root"
    awk -v d="$dir/" 'index($5 "/", d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$dir"
}

# Leftovers of runs killed hard: their owner is gone (a dir without one yet is a run starting up,
# unless it is an hour old).
remove_stale_work() {
    local d pid
    for d in "${TMPDIR:-/tmp}"/nvv-fresh-root.*; do
        [ -d "$d" ] || continue
        if [ -f "$d/owner" ]; then
            pid=$(cat "$d/owner")
            ! kill -0 "$pid" 2>/dev/null || continue
        else
            [ -n "$(find "$d" -maxdepth 0 -mmin +60)" ] || continue
        fi
        log "removing the leftover $d"
        remove_work "$d"
    done
}

# ---- inside the mount namespace -----------------------------------------------------------------

in_chroot() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root PATH="$PATH_IN" LANG=C.UTF-8 TERM=dumb "$@"
}

step() {
    STEP=$1
    STEP_T0=$SECONDS
    log "── $STEP"
}
step_done() { log "   ok ($((SECONDS - STEP_T0)) s)"; }
indent() { sed 's/^/   /' >&2; }

inside() {
    WORK=$1 SETUP_IN=$2 NPM_DIR=$3 GUESTS=$4
    ROOT=$WORK/root
    mount -t proc proc "$ROOT/proc"
    mount -t sysfs -o ro sysfs "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    mount --bind "$REPO" "$ROOT/project"
    mount -o remount,bind,ro "$ROOT/project"
    mount --bind /var/cache/apt/archives "$ROOT/var/cache/apt/archives"
    mount --bind "$NPM_DIR" "$ROOT/usr/local/lib/node_modules/npm"
    mount -o remount,bind,ro "$ROOT/usr/local/lib/node_modules/npm"
    if [ -n "$GUESTS" ]; then
        # Same path inside (the runners name their disk images by absolute path).
        mkdir -p "$ROOT$GUESTS"
        mount --bind "$GUESTS" "$ROOT$GUESTS"
        mount -o remount,bind,ro "$ROOT$GUESTS"
    fi
    trap 'kill_chroot_processes "$ROOT"' EXIT

    local out
    step "node and npm as on a fresh Debian 12 with Node 20"
    in_chroot sh -c 'node --version && npm --version' | indent
    in_chroot sh -c '! command -v qemu-system-x86_64 && ! command -v mmdebstrap && ! command -v arch-test' \
        >/dev/null || die "the chroot is not minimal"
    step_done

    step "bash $SETUP_IN (first run)"
    in_chroot bash -c "cd /project && bash $SETUP_IN" 2>&1 | indent ||
        die "$SETUP_IN failed on a minimal $SUITE root"
    step_done

    step "bash $SETUP_IN again (idempotent, quiet, no apt)"
    out=$(in_chroot bash -c "cd /project && bash $SETUP_IN" 2>&1) || die "second run failed: $out"
    echo "$out" | indent
    [ "$(wc -l <<<"$out")" = 1 ] || die "the second run printed more than one line"
    ! grep -qi 'install' <<<"$out" || die "the second run installed something"
    step_done

    step "arch-test arm64, then mmdebstrap's foreign-architecture check (aarch64 guest build)"
    out=$(in_chroot arch-test arm64 2>&1) || true
    echo "$out" | indent
    [ "$out" = "arm64: ok" ] || die "arch-test arm64 printed '$out' (mmdebstrap --arch=arm64 needs 'arm64: ok')"
    # The check runs before anything is downloaded; the empty mirror then stops mmdebstrap early.
    out=$(in_chroot mmdebstrap --mode=root --variant=essential --arch=arm64 --simulate \
        "$SUITE" /dev/null "deb file:///nonexistent $SUITE main" 2>&1) || true
    grep -E '^(I|E): .*(arm64|arch-test|qemu)' <<<"$out" | indent || true
    grep -q 'arm64 cannot be executed natively, but transparently using qemu-user binfmt emulation' \
        <<<"$out" || die "mmdebstrap's foreign-architecture check did not pass for arm64"
    step_done

    step "QEMU with the test guests' devices, -display none"
    local qmp='{"execute":"qmp_capabilities"}
{"execute":"quit"}'
    # shellcheck disable=SC2054 # QEMU's commas
    local common=(-nodefaults -display none -S -qmp stdio -m 256 -device virtio-rng-pci
        -netdev user,id=n0 -device virtio-net-pci,netdev=n0
        -virtfs local,path=/tmp,security_model=none,mount_tag=xchg)
    out=$(in_chroot timeout 60 qemu-system-x86_64 -machine accel=tcg -cpu max "${common[@]}" \
        -device virtio-keyboard -usb -device usb-tablet,bus=usb-bus.0 <<<"$qmp" 2>&1) ||
        die "qemu-system-x86_64 did not start: $out"
    out=$(in_chroot timeout 60 qemu-system-aarch64 -machine virt,gic-version=max,accel=tcg -cpu max \
        "${common[@]}" -device virtio-keyboard -device virtio-gpu-pci -device usb-ehci,id=usb0 \
        -device usb-kbd -device usb-tablet <<<"$qmp" 2>&1) ||
        die "qemu-system-aarch64 did not start: $out"
    in_chroot qemu-img --version | head -n1 | indent
    step_done

    step "python3 http.server (npm run demo's network-stage server)"
    in_chroot python3 -c 'import http.server, socket' || die "python3 cannot run the demo's server"
    step_done

    step "node dist/cli/index.js validate --dry-run --flake .#nixos-vm-aarch64"
    out=$(in_chroot bash -c 'cd /project && node dist/cli/index.js validate --dry-run \
        --flake .#nixos-vm-aarch64 --system aarch64-linux --out /tmp/nvv-dry-run' 2>&1) ||
        die "the dry run failed: $out"
    grep -E 'uses /usr/bin/nix|binfmt|accelerator' <<<"$out" | indent
    grep -q '^Plan (dry run' <<<"$out" || die "the dry run printed no plan: $out"
    grep -q 'uses /usr/bin/nix (Nix ' <<<"$out" || die "the dry run found no nix: $out"
    step_done

    [ -n "$GUESTS" ] || return 0
    step "the demo's aarch64 guest: validate --stages boot,ssh"
    out=$(in_chroot bash -c "cd /project && NVV_CACHE_DIR=${GUESTS%/guests} \
        bash tests/fixtures/guest/build.sh --arch aarch64 --variant ok 2>/dev/null | tail -n 1")
    if [ -z "$out" ] || [ ! -f "$ROOT$out/guest.json" ]; then
        die "no cached aarch64 guest under $GUESTS (npm run guests on this host first)"
    fi
    in_chroot bash -c "cd /tmp && node /project/dist/cli/index.js validate --runner '$out/bin/run-nixos-vm-vm' \
        --system aarch64-linux --ssh-key '$out/ssh/id_ed25519' --stages boot,ssh --out /tmp/nvv-boot" \
        2>&1 | grep -E '✔|✖|VM validation' | indent || die "the guest did not pass boot,ssh in the chroot"
    step_done
}

# ---- main --------------------------------------------------------------------------------------

main() {
    local setup=$REPO/scripts/setup.sh guests=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --setup) setup=$(readlink -f "$2"); shift 2 ;;
            --boot) guests=$(readlink -f "${NVV_CACHE_DIR:-$HOME/.cache/nixos-vm-validate}/guests"); shift ;;
            *) echo "usage: test-fresh-root.sh [--setup PATH] [--boot]" >&2; exit 2 ;;
        esac
    done
    [ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root, chroot, mounts)"
    local t0=$SECONDS tool
    for tool in mmdebstrap unshare chroot tar node update-binfmts; do
        command -v "$tool" >/dev/null || die "$tool is missing on this host (bash scripts/setup.sh)"
    done
    [ -f "$setup" ] || die "no setup script at $setup"

    remove_stale_work
    local tar
    tar=$(ensure_tarball)

    # binfmt_misc is kernel-global: register qemu-aarch64 from the host, so the kernel never keeps
    # (fix-binary flag) an interpreter opened inside the chroot that is about to be deleted.
    if [ "$(uname -m)" != aarch64 ]; then
        [ -e /proc/sys/fs/binfmt_misc/register ] ||
            mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    fi

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/nvv-fresh-root.XXXXXX")
    trap 'remove_work "$WORK"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo $$ >"$WORK/owner"
    local root=$WORK/root
    mkdir -m 755 "$root"
    tar -C "$root" -xf "$tar"

    # Node 20 the way a fresh machine has it: the binary in /usr/local/bin, npm next to it.
    local node npm_dir
    node=$(readlink -f "$(command -v node)")
    npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    install -m 755 "$node" "$root/usr/local/bin/node"
    mkdir -p "$root/usr/local/lib/node_modules/npm" "$root/project"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    # No service of a package installed in the chroot starts (invoke-rc.d's policy).
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"

    local setup_in=/project/scripts/setup.sh
    if [ "$setup" != "$REPO/scripts/setup.sh" ]; then
        install -m 644 "$setup" "$root/root/setup-under-test.sh"
        setup_in=/root/setup-under-test.sh
    fi
    log "minimal $SUITE root from $tar; proving $setup"
    # One run at a time on a machine: the chroot's apt locks the host's archive cache it shares.
    exec 8>"$CACHE/.run.lock"
    flock 8
    unshare --mount --propagation private -- bash "${BASH_SOURCE[0]}" --inside "$WORK" "$setup_in" "$npm_dir" "$guests" 8>&-
    log "passed in $((SECONDS - t0)) s"
}

if [ "${1:-}" = --inside ]; then
    inside "$2" "$3" "$4" "$5"
else
    main "$@"
fi
