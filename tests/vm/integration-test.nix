# NixOS test (checks.<system>.integration-test): a developer's day on the VM, driven over SSH from a
# second machine. The `client` logs into the VM as baleen with a key, pushes a git repository to
# it, has it cloned and built with make there, and runs a container from an image built by Nix and
# loaded with `docker load` -- with `--network none`, so no registry and no network are involved.
#
# Each node's attribute name is its hostname ("nixos-vm", set by machines/nixos-vm.nix, and
# "client", the test framework's default), so the script's `nixos_vm` and `client` are the driver's
# names whether a release names machines after their hostname (system.name, older drivers) or after
# their attribute in `nodes` (newer ones). A node called `vm` would be `nixos_vm` on the one and `vm`
# on the other.
{ vmModules }:
{ config, ... }:
let
  pkgs = config.node.pkgs;

  # nixpkgs' own throwaway key pair for NixOS tests ("snakeoil"): public, test-only, never trusted
  # anywhere else. The VM trusts it for baleen in this test only.
  testKeys = import (pkgs.path + "/nixos/tests/ssh-keys.nix") pkgs;

  # A busybox image, built here rather than pulled.
  helloImage = pkgs.dockerTools.buildImage {
    name = "nixos-vm-hello";
    tag = "latest";
    copyToRoot = pkgs.buildEnv {
      name = "nixos-vm-hello-root";
      paths = [ pkgs.busybox ];
      pathsToLink = [ "/bin" ];
    };
    config.Cmd = [
      "/bin/sh"
      "-c"
      "echo hello from an offline container"
    ];
  };
in
{
  name = "nixos-vm-integration";

  nodes.nixos-vm = {
    imports = vmModules;
    virtualisation.memorySize = 2048;
    virtualisation.diskSize = 4096;
    virtualisation.additionalPaths = [ helloImage ];
    users.users.baleen.openssh.authorizedKeys.keys = [ testKeys.snakeOilPublicKey ];
  };

  nodes.client =
    { pkgs, ... }:
    {
      environment.systemPackages = [
        pkgs.git
        pkgs.openssh
      ];
    };

  testScript =
    { nodes, ... }:
    ''
      host = "${nodes.nixos-vm.networking.hostName}"
      ssh = (
          "ssh -i /root/.ssh/id_ecdsa -o BatchMode=yes -o ConnectTimeout=10"
          " -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/root/.ssh/known_hosts"
      )


      def on_vm(command: str) -> str:
          """Runs command on the VM as baleen, over SSH from the client."""
          return client.succeed(f"{ssh} baleen@{host} '{command}'")


      start_all()
      nixos_vm.wait_for_unit("sshd.service")
      nixos_vm.wait_for_unit("docker.service")
      nixos_vm.wait_for_unit("home-manager-baleen.service")
      client.wait_for_unit("multi-user.target")

      with subtest("the client logs into the VM as baleen with a key"):
          client.succeed("install -D -m 600 ${testKeys.snakeOilPrivateKey} /root/.ssh/id_ecdsa")
          client.wait_until_succeeds(f"{ssh} baleen@{host} true", timeout=120)
          groups = on_vm("id -nG").split()
          assert "docker" in groups, f"baleen's groups over ssh: {groups}"

      with subtest("the VM offers no password login"):
          status, out = client.execute(
              f"{ssh} -o PubkeyAuthentication=no baleen@{host} true 2>&1"
          )
          assert status != 0, "a login without a key succeeded"
          assert "Permission denied (publickey)" in out, out

      with subtest("the client pushes a git repository to the VM"):
          client.succeed(
              "cp -R ${./fixtures/hello} /root/hello",
              "chmod -R u+w /root/hello",
              "git -C /root/hello init -q -b main",
              "git -C /root/hello add .",
              "git -C /root/hello -c user.name=client -c user.email=client@test.invalid"
              " commit -q -m 'hello: a C program and its Makefile'",
          )
          on_vm("git init -q --bare ~/hello.git")
          client.succeed(
              f"GIT_SSH_COMMAND='{ssh}' git -C /root/hello push -q baleen@{host}:hello.git main"
          )

      with subtest("the VM clones the repository and builds it with make"):
          on_vm("git clone -q ~/hello.git ~/hello && make -C ~/hello")
          out = on_vm("~/hello/hello")
          assert "hello from nixos-vm" in out, out

      with subtest("the VM runs a container from a local image without network"):
          on_vm("docker load --input ${helloImage}")
          out = on_vm("docker run --rm --network none nixos-vm-hello:latest")
          assert "hello from an offline container" in out, out
          out = on_vm("docker run --rm --network none nixos-vm-hello:latest ls /sys/class/net")
          assert out.split() == ["lo"], f"the container saw network interfaces {out.split()}"
    '';
}
