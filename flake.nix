{
  description = "nixos-vm-validate: a NixOS VM for aarch64-linux and x86_64-linux, its NixOS tests, and the vm-automation CLI";

  inputs = {
    # Newest stable NixOS release; bump both inputs together (nixos-YY.MM / release-YY.MM).
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    home-manager = {
      url = "github:nix-community/home-manager/release-26.05";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      home-manager,
      ...
    }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];

      # forAllSystems (pkgs: { ... }) -> { x86_64-linux = { ... }; aarch64-linux = { ... }; }
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Everything the VM is made of. The NixOS tests in tests/vm/ boot these same modules.
      vmModules = [
        ./machines/nixos-vm.nix
        ./users/baleen/nixos.nix
        home-manager.nixosModules.home-manager
      ];

      mkVm =
        system:
        lib.nixosSystem {
          inherit system;
          modules = vmModules;
        };

      # pkgs.testers.runNixOSTest over a file of tests/vm/: each is `{ vmModules }: <test module>`.
      mkVmTest = pkgs: file: pkgs.testers.runNixOSTest (import file { inherit vmModules; });
    in
    {
      # `nix build .#nixosConfigurations.nixos-vm-x86_64.config.system.build.vm`
      # -> result/bin/run-nixos-vm-vm (what the action boots).
      nixosConfigurations = {
        nixos-vm-aarch64 = mkVm "aarch64-linux";
        nixos-vm-x86_64 = mkVm "x86_64-linux";
      };

      nixosModules.default = {
        imports = vmModules;
      };

      packages = forAllSystems (pkgs: rec {
        vm-automation = pkgs.callPackage ./packages/vm-automation { };
        default = vm-automation;
      });

      apps = forAllSystems (
        pkgs:
        let
          vm-automation = {
            type = "app";
            program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.vm-automation;
            meta.description = "Build, boot and validate a NixOS VM (the project's CLI)";
          };
        in
        {
          inherit vm-automation;
          default = vm-automation;
        }
      );

      checks = forAllSystems (pkgs: {
        boot-test = mkVmTest pkgs ./tests/vm/boot-test.nix;
        service-test = mkVmTest pkgs ./tests/vm/service-test.nix;
        integration-test = mkVmTest pkgs ./tests/vm/integration-test.nix;
      });

      # `nix fmt`: nixfmt (the RFC 166 style) over the whole tree.
      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
