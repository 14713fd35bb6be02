{
  description = "nixos-vm-validate: a NixOS VM for aarch64-linux and x86_64-linux, its NixOS tests, and the vm-automation CLI";

  # Pinned in flake.lock, which .github/workflows/update-flake-lock.yml moves to the branch heads
  # every week in a pull request. A new release (nixos-26.05 reaches its end of life on 2026-12-31)
  # is a change here: both branches together, nixos-YY.MM and release-YY.MM (docs/nixos-tests.md).
  inputs = {
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

      # baleen's home on its own (standalone Home Manager), on every platform it is used on: the
      # same users/baleen/home.nix the VM imports (docs/home-consistency.md).
      homeSystems = [
        "aarch64-darwin"
        "x86_64-darwin"
        "aarch64-linux"
        "x86_64-linux"
      ];
      isDarwin = system: lib.hasSuffix "-darwin" system;
      mkHome =
        system:
        home-manager.lib.homeManagerConfiguration {
          pkgs = nixpkgs.legacyPackages.${system};
          modules = [
            ./users/baleen/home.nix
            {
              home.username = "baleen";
              home.homeDirectory = if isDarwin system then "/Users/baleen" else "/home/baleen";
            }
          ];
        };

      # Evaluation only, on Linux: each Darwin home's activation derivation and managed files, as
      # text without string context, so no Darwin derivation becomes an input of this check.
      homeDarwinEval =
        pkgs:
        let
          describe =
            system:
            let
              home = self.homeConfigurations."baleen@${system}";
              files = map (f: f.target) (
                lib.filter (f: f.enable) (lib.attrValues home.config.home.file)
              );
            in
            "baleen@${system} ${home.activationPackage.drvPath}\n"
            + lib.concatMapStrings (file: "  ${file}\n") (lib.sort lib.lessThan files);
          report = builtins.unsafeDiscardStringContext (
            lib.concatMapStrings describe (lib.filter isDarwin homeSystems)
          );
        in
        pkgs.runCommand "home-darwin-eval"
          {
            inherit report;
            passAsFile = [ "report" ];
          }
          ''
            cp "$reportPath" "$out"
          '';

      # The modules' unit tests (tests/modules/, lib.runTests): both configurations, evaluation only.
      moduleTests = import ./tests/modules {
        inherit lib;
        inherit (self) nixosConfigurations;
      };
    in
    {
      # `nix build .#nixosConfigurations.nixos-vm-x86_64.config.system.build.vm`
      # -> result/bin/run-nixos-vm-vm (what the action boots).
      nixosConfigurations = {
        nixos-vm-aarch64 = mkVm "aarch64-linux";
        nixos-vm-x86_64 = mkVm "x86_64-linux";
      };

      # `nix build '.#homeConfigurations."baleen@aarch64-darwin".activationPackage'` (on a Mac).
      homeConfigurations = lib.listToAttrs (
        map (system: lib.nameValuePair "baleen@${system}" (mkHome system)) homeSystems
      );

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

      # `nix flake check` builds them all (the NixOS tests need KVM); each NixOS test's `.driver`
      # alone is its script's lint and type check, no VM. .github/workflows/nixos-tests.yml runs both.
      checks = forAllSystems (pkgs: {
        boot-test = mkVmTest pkgs ./tests/vm/boot-test.nix;
        service-test = mkVmTest pkgs ./tests/vm/service-test.nix;
        integration-test = mkVmTest pkgs ./tests/vm/integration-test.nix;
        module-tests = pkgs.callPackage ./tests/modules/check.nix { tests = moduleTests; };
        home-darwin-eval = homeDarwinEval pkgs;
      });

      # `nix fmt`: nixfmt (the RFC 166 style) over the whole tree.
      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
