# The developer account "baleen": the system side here, the home directory in ./home.nix
# (Home Manager, activated at boot by home-manager-baleen.service).
{ pkgs, ... }:
{
  users.users.baleen = {
    isNormalUser = true;
    description = "Baleen (developer account of the validation VM)";
    extraGroups = [
      "wheel" # sudo
      "docker" # talks to the Docker daemon without sudo
    ];
    shell = pkgs.bashInteractive;

    # Public keys allowed to log in as baleen. Empty on purpose: the repository holds no one's key.
    # Add yours here (e.g. "ssh-ed25519 AAAA... you@host") to log into a VM you boot yourself.
    # Validation needs none: the action authorizes the key it logs in with in the VM it builds, and
    # the NixOS tests in tests/vm/ add a test-only key to their copy of the machine.
    openssh.authorizedKeys.keys = [ ];
  };

  # No account has a password (sshd takes keys only), so sudo must not ask for one.
  security.sudo.wheelNeedsPassword = false;

  home-manager = {
    useGlobalPkgs = true; # the system's nixpkgs, no second evaluation
    useUserPackages = true; # packages land in /etc/profiles/per-user/baleen
    # A file already in $HOME is moved aside instead of failing the activation.
    backupFileExtension = "hm-backup";
    users.baleen = import ./home.nix;
  };
}
