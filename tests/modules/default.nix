# Unit tests of the Nix modules (machines/nixos-vm.nix, users/baleen/nixos.nix and home.nix): what
# they promise, asserted on the evaluated configurations of both systems. Evaluation only: no VM,
# no KVM, nothing built; seconds.
#
# The format is nixpkgs' `lib.runTests` (also what nix-unit reads): an attribute set of
# `test<Name> = { expr; expected; }`. flake.nix runs them as checks.<system>.module-tests, which
# evaluates both configurations whatever the system it is built for, and fails with every
# expected/result pair that differ.
#
#   nix build .#checks.x86_64-linux.module-tests -L
{
  lib,
  nixosConfigurations,
}:
let
  # What each configuration is: its system and the serial device QEMU's machine has.
  configurations = {
    nixos-vm-x86_64 = {
      system = "x86_64-linux";
      serial = "ttyS0"; # a 16550 UART
    };
    nixos-vm-aarch64 = {
      system = "aarch64-linux";
      serial = "ttyAMA0"; # the `virt` machine's PL011
    };
  };

  # The files the action's `homeManager` check (tests/vm/checks.yml) expects in baleen's home.
  homeFiles = [
    ".bashrc"
    ".config/git/config"
    ".config/nvim/init.lua"
    ".profile"
  ];

  # Those of `wanted` that are in `list`, in the order of `wanted`: a failure shows what is missing.
  present = wanted: list: builtins.filter (x: builtins.elem x list) wanted;

  testsOf =
    name:
    { system, serial }:
    let
      inherit (nixosConfigurations.${name}) config pkgs;
      baleen = config.users.users.baleen;
      home = config.home-manager.users.baleen;
      # Targets (relative to $HOME) of the files Home Manager links; xdg.configFile lands here too.
      homeTargets = lib.mapAttrsToList (_: file: file.target) (
        lib.filterAttrs (_: file: file.enable) home.home.file
      );
    in
    {
      testSystem = {
        expr = {
          system = pkgs.stdenv.hostPlatform.system;
          hostName = config.networking.hostName;
        };
        expected = {
          inherit system;
          hostName = "nixos-vm";
        };
      };

      # The serial console comes last on the kernel command line, so it is /dev/console.
      testSerialConsole = {
        expr = {
          option = config.nixosVm.serialConsole;
          consoles = builtins.filter (lib.hasPrefix "console=") config.boot.kernelParams;
        };
        expected = {
          option = serial;
          consoles = [
            "console=tty0"
            "console=${serial}"
          ];
        };
      };

      testSshdKeysOnly = {
        expr = {
          inherit (config.services.openssh) enable;
          inherit (config.services.openssh.settings)
            PasswordAuthentication
            KbdInteractiveAuthentication
            PermitRootLogin
            ;
          firewall = config.networking.firewall.enable;
          port22Open = builtins.elem 22 config.networking.firewall.allowedTCPPorts;
        };
        expected = {
          enable = true;
          PasswordAuthentication = false;
          KbdInteractiveAuthentication = false;
          PermitRootLogin = "prohibit-password";
          firewall = true;
          port22Open = true;
        };
      };

      testBaleen = {
        expr = {
          inherit (baleen) isNormalUser home;
          groups = present [ "wheel" "docker" ] baleen.extraGroups;
          shell = lib.getName baleen.shell;
          shellPath = baleen.shell.shellPath or null;
          # The repository holds no one's key; the action and the NixOS tests add their own.
          authorizedKeys = baleen.openssh.authorizedKeys.keys;
          sudoAsksPassword = config.security.sudo.wheelNeedsPassword;
        };
        expected = {
          isNormalUser = true;
          home = "/home/baleen";
          groups = [
            "wheel"
            "docker"
          ];
          shell = "bash-interactive";
          shellPath = "/bin/bash";
          authorizedKeys = [ ];
          sudoAsksPassword = false;
        };
      };

      testDocker = {
        expr = config.virtualisation.docker.enable;
        expected = true;
      };

      testNixFlakes = {
        expr = present [ "nix-command" "flakes" ] config.nix.settings.experimental-features;
        expected = [
          "nix-command"
          "flakes"
        ];
      };

      testHomeManagerFiles = {
        expr = present homeFiles homeTargets;
        expected = homeFiles;
      };

      testHomeManagerSettings = {
        expr = {
          aliases = {
            inherit (home.programs.bash.shellAliases) ll gs;
          };
          gitUser = {
            inherit (home.programs.git.settings.user) name email;
          };
          editor = home.home.sessionVariables.EDITOR or null;
          # Home Manager's packages go to /etc/profiles/per-user/baleen, from the system's nixpkgs.
          inherit (config.home-manager) useGlobalPkgs useUserPackages;
        };
        expected = {
          aliases = {
            ll = "ls -l";
            gs = "git status --short --branch";
          };
          gitUser = {
            name = "Baleen";
            email = "baleen@nixos-vm.invalid";
          };
          editor = "nvim";
          useGlobalPkgs = true;
          useUserPackages = true;
        };
      };

      # No manual of Home Manager's options in baleen's profile: rendering it is a build of its
      # own, and the slowest part of the home under emulation.
      testHomeManagerManual = {
        expr = {
          manpages = home.manual.manpages.enable;
          html = home.manual.html.enable;
          json = home.manual.json.enable;
        };
        expected = {
          manpages = false;
          html = false;
          json = false;
        };
      };

      # Set once, at installation; a bump of the pins never changes it.
      testStateVersion = {
        expr = {
          system = config.system.stateVersion;
          home = home.home.stateVersion;
        };
        expected = {
          system = "26.05";
          home = "26.05";
        };
      };

      # What `system.build.vm` (the action's runner script) is sized to.
      testVmVariant = {
        expr = {
          inherit (config.virtualisation.vmVariant.virtualisation)
            memorySize
            cores
            diskSize
            graphics
            ;
        };
        expected = {
          memorySize = 2048;
          cores = 2;
          diskSize = 8192;
          graphics = false;
        };
      };
    };
in
# testSerialConsole@nixos-vm-aarch64 = { expr; expected; }; ...
lib.concatMapAttrs (
  name: expectation:
  lib.mapAttrs' (test: lib.nameValuePair "${test}@${name}") (testsOf name expectation)
) configurations
