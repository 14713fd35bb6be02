#!/usr/bin/env bash
# The main job on the embedded demo guest: builds (or reuses) the project's Debian aarch64 test guest,
# which follows the NixOS runner contract, and validates it with every default stage, like the
# action does on a runner. Offline-friendly: the network stage reaches a server on this host
# (QEMU user networking shows the host to the guest as 10.0.2.2).
#
#   bash scripts/demo.sh [VALIDATE OPTIONS...]     e.g. --dry-run, --stages boot,ssh
#   DEMO_ARCH=x86_64|aarch64 (default aarch64), DEMO_OUT=DIR (default vm-validation/demo-ARCH)
#
# Exits with node's exit code. Leaves nothing behind on success, failure, Ctrl-C or SIGTERM: the
# HTTP server is stopped and the temp dir removed. A signal is passed on to node, which stops the
# VM and writes the report (a second one forces it, as with the CLI), and the demo then exits 130
# (SIGINT) or 143 (SIGTERM, SIGHUP).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${DEMO_ARCH:-aarch64}
out=${DEMO_OUT:-vm-validation/demo-$arch}

work="" server="" node_pid="" signalled="" forwarded=0 starting="" pending=""

running() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# shellcheck disable=SC2317 # cleanup and on_signal run from traps
cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM HUP
    set +e
    if running "$node_pid"; then
        kill -TERM "$node_pid" 2>/dev/null
        wait "$node_pid" 2>/dev/null
    fi
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    [ -z "$work" ] || rm -rf "$work"
    exit "$rc"
}

# on_signal SIGNAL-FOR-NODE EXIT-CODE: while node runs it gets the signal and we wait for it. node
# is in a session of its own, so a Ctrl-C reaches it only through here; `npm run` passes the
# terminal's SIGINT on as well, so a second signal within a second counts as the same keypress.
# A signal that comes while a child is being started (before its PID is known) waits for it.
# shellcheck disable=SC2317
on_signal() {
    signalled=$2
    if [ -n "$starting" ]; then
        pending=$1
    elif running "$node_pid"; then
        local now=${EPOCHREALTIME//[!0-9]/}
        if [ $((now - forwarded)) -gt 1000000 ]; then
            forwarded=$now
            kill -"$1" "$node_pid" 2>/dev/null || true
        fi
    else
        exit "$2"
    fi
}
started() {
    starting=""
    if [ -n "$pending" ]; then
        local sig=$pending
        pending=""
        on_signal "$sig" "$signalled"
    fi
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal TERM 143' HUP

guest=$(bash tests/fixtures/guest/build.sh --arch "$arch" --variant ok | tail -n 1)
work=$(mktemp -d "${TMPDIR:-/tmp}/nvv-demo-XXXXXX")

# A loopback HTTP server for the network stage.
mkdir -p "$work/www" && echo "StoreDir: /nix/store" >"$work/www/nix-cache-info"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
starting=1
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
server=$!
started

sed "s/@PORT@/$port/" tests/fixtures/demo/checks.yml >"$work/checks.yml"
echo "demo: validating $guest with $work/checks.yml" >&2
starting=1
setsid node dist/cli/index.js validate \
    --runner "$guest/bin/run-nixos-vm-vm" --system "$arch-linux" \
    --ssh-key "$guest/ssh/id_ed25519" --checks "$work/checks.yml" --out "$out" "$@" </dev/null &
node_pid=$!
started
# A trapped signal interrupts wait; node is waited for again until it has exited.
status=0
while :; do
    wait "$node_pid" && status=0 || status=$?
    running "$node_pid" || break
done
node_pid=""
[ -z "$signalled" ] || status=$signalled
exit "$status"
