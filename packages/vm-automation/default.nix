# vm-automation: the project's CLI (`node dist/cli/index.js validate ...`) as a Nix package.
#
# dist/cli/ is a single self-contained ncc bundle committed to the repository (CI checks it matches
# src/), so this package has no npm dependencies to fetch and no dependency hash to keep up to date.
#
# Node is all it runs on. The CLI boots the VM with the runner script Nix builds, which names its
# own QEMU by store path (the KVM probe uses that same binary), and it speaks SSH in-process (ssh2,
# bundled), so neither QEMU nor OpenSSH belongs in this closure. Nix is the user's own: the CLI
# drives the Nix (and daemon) of the machine it runs on.
{
  lib,
  stdenvNoCC,
  makeWrapper,
  nodejs_24,
}:
let
  root = ../..;
  packageJson = lib.importJSON (root + "/package.json");
in
stdenvNoCC.mkDerivation {
  pname = "vm-automation";
  inherit (packageJson) version;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/dist/cli")
      (root + "/package.json")
    ];
  };

  nativeBuildInputs = [ makeWrapper ];

  dontConfigure = true;
  dontBuild = true;

  installPhase = ''
    runHook preInstall

    mkdir -p $out/lib/vm-automation $out/bin
    cp -R dist/cli/. $out/lib/vm-automation/

    # Node reads the module type of index.js from the nearest package.json; outside the repository
    # that is none, so carry the repository's "type" along.
    if [ ! -e $out/lib/vm-automation/package.json ]; then
      echo '{ "type": "${packageJson.type or "commonjs"}" }' > $out/lib/vm-automation/package.json
    fi

    makeWrapper ${lib.getExe nodejs_24} $out/bin/vm-automation \
      --add-flags $out/lib/vm-automation/index.js

    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    ${lib.getExe nodejs_24} --check $out/lib/vm-automation/index.js
    runHook postInstallCheck
  '';

  meta = {
    description = "Build a NixOS VM, boot it with QEMU and validate it (boot, ssh, services, packages, network, performance, e2e)";
    license = lib.licenses.mit;
    mainProgram = "vm-automation";
    platforms = lib.platforms.linux;
  };
}
