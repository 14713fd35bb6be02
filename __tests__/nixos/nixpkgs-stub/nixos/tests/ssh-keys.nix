# Stand-in for nixpkgs' nixos/tests/ssh-keys.nix (the "snakeoil" test key pair), for
# __tests__/nixos/stubs.nix: only the shape, no key.
pkgs: {
  snakeOilPrivateKey = "/nix/store/00000000000000000000000000000000-snakeoil-private-key";
  snakeOilPublicKey = "ssh-ed25519 AAAA-stand-in snakeoil";
}
