# The NixOS machine the action builds, boots and validates (nixosConfigurations.nixos-vm-*).
#
# It is made to be driven from outside: kernel and systemd talk on the serial console (the action
# keeps it as console.log), sshd takes keys only, and the VM variant (`system.build.vm`, the
# run-nixos-vm-vm script) is sized for a GitHub runner.
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  options.nixosVm.serialConsole = lib.mkOption {
    type = lib.types.str;
    readOnly = true;
    # QEMU's aarch64 `virt` machine has a PL011 UART, x86_64 a 16550.
    default = if pkgs.stdenv.hostPlatform.isAarch64 then "ttyAMA0" else "ttyS0";
    defaultText = lib.literalExpression ''if aarch64 then "ttyAMA0" else "ttyS0"'';
    description = "Serial device of the console (read by tests/vm/ and the docs; not a setting).";
  };

  config = {
    networking.hostName = "nixos-vm";

    # The serial console comes last so that it is /dev/console: systemd's status lines, an emergency
    # shell and a kernel panic all land where the action reads. systemd's getty generator starts a
    # serial-getty on it. tty0 stays a console too, for the action's screenshots.
    boot.kernelParams = [
      "console=tty0"
      "console=${config.nixosVm.serialConsole}"
    ];

    # A conventional disk layout, so that the machine itself (`system.build.toplevel`, which
    # `nix flake check` evaluates) is complete. The VM variant replaces the file systems with its own
    # disk image and boots the kernel directly.
    boot.loader.systemd-boot.enable = true;
    boot.loader.efi.canTouchEfiVariables = false;
    fileSystems."/" = {
      device = "/dev/disk/by-label/nixos";
      fsType = "ext4";
    };
    fileSystems."/boot" = {
      device = "/dev/disk/by-label/ESP";
      fsType = "vfat";
      options = [ "umask=0077" ];
    };

    virtualisation.vmVariant.virtualisation = {
      memorySize = 2048; # MiB
      cores = 2;
      diskSize = 8192; # MiB
      graphics = false; # serial console and QEMU monitor on stdio
    };

    # Keys only. Which keys: users/baleen/nixos.nix, and whatever the action adds for its own login.
    services.openssh = {
      enable = true;
      settings = {
        PermitRootLogin = "prohibit-password";
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
      };
    };

    networking.firewall = {
      enable = true;
      allowedTCPPorts = [ 22 ];
    };

    virtualisation.docker.enable = true;

    nix.settings = {
      experimental-features = [
        "nix-command"
        "flakes"
      ];
      trusted-users = [
        "root"
        "@wheel"
      ];
    };

    environment.systemPackages = with pkgs; [
      curl
      gcc
      git
      gnumake
      vim
    ];

    time.timeZone = "UTC";

    # The NixOS manual is the slowest part of evaluating a small system and nobody reads it here.
    documentation.nixos.enable = false;

    system.stateVersion = "26.05";
  };
}
