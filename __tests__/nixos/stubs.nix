# Stand-ins for nixpkgs, NixOS and Home Manager, so that Debian's Nix 2.8 (no nixpkgs, no network)
# can evaluate what flake-structure.test.ts checks:
#
# - nixosTest FILE SYSTEM: a file of tests/vm/ as the test driver gets it: its nodes (attribute
#   name and hostname) and its testScript, called with `nodes` whose VM is this repository's
#   machine.
# - flake: flake.nix's outputs with nixpkgs and Home Manager stood in for (only what is read is
#   evaluated: homeConfigurations and the home-darwin-eval check). homeManagerConfiguration
#   merges its modules (a function gets pkgs, lib and the merged config), requires what a
#   standalone home must set (username, homeDirectory, stateVersion), and derives home.file as
#   below; its activationPackage is an (unbuildable) derivation of the home's system.
# - nixosConfigurations: the machine as its own modules define it (machines/nixos-vm.nix,
#   users/baleen/nixos.nix, users/baleen/home.nix, merged), plus the few values NixOS and Home
#   Manager derive from them (a normal user's home, the files of the enabled programs, EDITOR).
#   The unit tests of tests/modules/ run against these here; against the real evaluation in
#   `nix flake check`.
#
# Only what those files use is here. A file that starts using more fails here first: extend the
# stand-in, don't loosen the test.
let
  lib = rec {
    mkOption = option: option;
    types.str = "str";
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    nameValuePair = name: value: { inherit name value; };
    mapAttrsToList = f: set: map (name: f name set.${name}) (builtins.attrNames set);
    mapAttrs' = f: set: builtins.listToAttrs (mapAttrsToList f set);
    filterAttrs =
      pred: set:
      builtins.removeAttrs set (builtins.filter (name: !pred name set.${name}) (builtins.attrNames set));
    concatMapAttrs = f: set: builtins.foldl' (a: b: a // b) { } (mapAttrsToList f set);
    getName = x: x.pname or (builtins.parseDrvName x.name).name;
    optionals = cond: list: if cond then list else [ ];
    recursiveUpdate =
      a: b:
      a
      // builtins.mapAttrs (
        name: value:
        if builtins.isAttrs value && builtins.isAttrs (a.${name} or null) then
          recursiveUpdate a.${name} value
        else
          value
      ) b;
    concatStringsSep = builtins.concatStringsSep;
    concatMapStrings = f: list: builtins.concatStringsSep "" (map f list);
    hasSuffix =
      suffix: s:
      let
        n = builtins.stringLength s;
        k = builtins.stringLength suffix;
      in
      n >= k && builtins.substring (n - k) k s == suffix;
    inherit (builtins) attrValues filter listToAttrs sort lessThan;
    genAttrs = names: f: builtins.listToAttrs (map (n: nameValuePair n (f n)) names);
    generators.toPretty = _: builtins.toJSON;
    # nixpkgs' lib.runTests, same contract: the failures of the tests whose name starts with "test".
    runTests =
      tests:
      builtins.concatMap (
        name:
        let
          test = tests.${name};
        in
        if builtins.substring 0 4 name == "test" && test.expr != test.expected then
          [
            {
              inherit name;
              inherit (test) expected;
              result = test.expr;
            }
          ]
        else
          [ ]
      ) (builtins.attrNames tests);
  };

  package = pname: extra: {
    type = "derivation";
    inherit pname;
    name = "${pname}-0";
    outPath = "/nix/store/00000000000000000000000000000000-${pname}-0";
  } // extra;

  pkgsFor = system: {
    inherit lib;
    path = ./nixpkgs-stub;
    stdenv.hostPlatform = {
      inherit system;
      isAarch64 = system == "aarch64-linux";
      isDarwin = lib.hasSuffix "-darwin" system;
      isLinux = lib.hasSuffix "-linux" system;
    };
    gcc = package "gcc" { };
    gnumake = package "gnumake" { };
    runCommand = name: env: script: env // { inherit name script; };
    bashInteractive = package "bash-interactive" { shellPath = "/bin/bash"; };
    openssh = package "openssh" { };
    busybox = package "busybox" { };
    git = package "git" { };
    buildEnv = { name, ... }: package name { };
    dockerTools.buildImage = { name, ... }: package "docker-image-${name}" { };
  };

  # Home Manager's defaults for what the tests read, then the module, then what the enabled
  # programs write.
  homeOf =
    homeModule:
    let
      programs = homeModule.programs or { };
      enabled = program: programs.${program}.enable or false;
      homeFiles =
        lib.optionals (enabled "bash") [
          ".bashrc"
          ".profile"
          ".bash_profile"
        ]
        ++ lib.optionals (enabled "git") [ ".config/git/config" ]
        ++ lib.optionals (enabled "neovim") [ ".config/nvim/init.lua" ];
    in
    lib.recursiveUpdate
      (lib.recursiveUpdate {
        manual = {
          manpages.enable = true;
          html.enable = false;
          json.enable = false;
        };
      } homeModule)
      {
        home.file = builtins.listToAttrs (
          map (target: lib.nameValuePair target {
            enable = true;
            inherit target;
          }) homeFiles
        );
        home.sessionVariables = if programs.neovim.defaultEditor or false then { EDITOR = "nvim"; } else { };
      };

  # Module definitions merged the module system's way for what they set here: attribute sets
  # recursively, lists concatenated.
  mergeModules =
    a: b:
    a
    // builtins.mapAttrs (
      name: value:
      if builtins.isAttrs value && builtins.isAttrs (a.${name} or null) then
        mergeModules a.${name} value
      else if builtins.isList value && builtins.isList (a.${name} or null) then
        a.${name} ++ value
      else
        value
    ) b;

  homeManagerConfiguration =
    { pkgs, modules }:
    let
      load = m: if builtins.isPath m then import m else m;
      call = m: if builtins.isFunction m then m { inherit pkgs lib config; } else m;
      merged = builtins.foldl' (acc: m: mergeModules acc (call (load m))) { } modules;
      config = homeOf merged;
      system = pkgs.stdenv.hostPlatform.system;
      required = [
        (config.home.username or null)
        (config.home.homeDirectory or null)
        (config.home.stateVersion or null)
      ];
    in
    assert builtins.all builtins.isString required;
    {
      inherit config pkgs;
      activationPackage = derivation {
        name = "home-manager-generation";
        inherit system;
        builder = "/bin/sh";
      };
    };

  flake =
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      outputs = (import ../../flake.nix).outputs {
        self = outputs;
        nixpkgs = {
          inherit lib;
          legacyPackages = lib.genAttrs systems pkgsFor;
        };
        home-manager = {
          lib = { inherit homeManagerConfiguration; };
          nixosModules.home-manager = { };
        };
      };
    in
    outputs;

  configurationFor =
    system:
    let
      pkgs = pkgsFor system;
      args = {
        inherit config lib pkgs;
        modulesPath = "/nix/store/00000000000000000000000000000000-nixos/modules";
      };
      machine = import ../../machines/nixos-vm.nix args;
      account = import ../../users/baleen/nixos.nix args;
      home = homeOf (account.home-manager.users.baleen (args // { config = home; }));

      config = lib.recursiveUpdate (lib.recursiveUpdate machine.config account) {
        nixosVm.serialConsole = machine.options.nixosVm.serialConsole.default;
        users.users.baleen.home = "/home/baleen";
        services.openssh.package = pkgs.openssh;
        home-manager.users.baleen = home;
      };
    in
    config;

  nixosConfigurations = builtins.mapAttrs
    (_: system: {
      config = configurationFor system;
      pkgs = pkgsFor system;
    })
    {
      nixos-vm-x86_64 = "x86_64-linux";
      nixos-vm-aarch64 = "aarch64-linux";
    };

  nixosTest =
    file: system:
    let
      pkgs = pkgsFor system;
      machine = configurationFor system;
      vmModules = [ { _stub = "the VM's modules"; } ];
      imported = import file { inherit vmModules; };
      test =
        if builtins.isFunction imported then
          imported {
            inherit lib pkgs;
            config.node.pkgs = pkgs;
          }
        else
          imported;
      nodeModule =
        node:
        if builtins.isFunction node then
          node {
            inherit lib pkgs;
            config = { };
          }
        else
          node;
      # The test framework's default hostname of a node is its attribute name.
      hostNameOf =
        name: node:
        let
          module = nodeModule node;
        in
        if builtins.elem (builtins.head vmModules) (module.imports or [ ]) then
          machine.networking.hostName
        else
          module.networking.hostName or name;
      nodes = builtins.mapAttrs (
        name: node:
        let
          module = nodeModule node;
        in
        if builtins.elem (builtins.head vmModules) (module.imports or [ ]) then
          machine
        else
          { networking.hostName = hostNameOf name node; }
      ) test.nodes;
    in
    {
      inherit (test) name;
      nodes = lib.mapAttrsToList (name: node: {
        inherit name;
        hostName = hostNameOf name node;
      }) test.nodes;
      script =
        if builtins.isFunction test.testScript then test.testScript { inherit nodes; } else test.testScript;
    };
in
{
  inherit
    flake
    lib
    nixosConfigurations
    nixosTest
    ;
  runCommand = name: env: script: {
    inherit name script;
    inherit (env) report;
  };
}
