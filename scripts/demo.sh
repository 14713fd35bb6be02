#!/usr/bin/env bash
# The main job on the embedded demo guest: builds (or reuses) the project's Debian aarch64 test guest,
# which follows the NixOS runner contract, and validates it with every default stage, like the
# action does on a runner. Offline-friendly: the network stage reaches a server on this host
# (QEMU user networking shows the host to the guest as 10.0.2.2).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${DEMO_ARCH:-aarch64}
out=${DEMO_OUT:-vm-validation/demo-$arch}

guest=$(bash tests/fixtures/guest/build.sh --arch "$arch" --variant ok | tail -n 1)
work=$(mktemp -d "${TMPDIR:-/tmp}/nvv-demo-XXXXXX")
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

# A loopback HTTP server for the network stage.
mkdir -p "$work/www" && echo "StoreDir: /nix/store" > "$work/www/nix-cache-info"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
server=$!

sed "s/@PORT@/$port/" tests/fixtures/demo/checks.yml > "$work/checks.yml"
echo "demo: validating $guest with $work/checks.yml" >&2
exec node dist/cli/index.js validate \
  --runner "$guest/bin/run-nixos-vm-vm" --system "$arch-linux" \
  --ssh-key "$guest/ssh/id_ed25519" --checks "$work/checks.yml" --out "$out" "$@"
