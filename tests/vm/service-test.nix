# NixOS test (checks.<system>.service-test): the VM's services and its user: Docker answers baleen
# without sudo, sshd listens and takes no passwords, and Home Manager set up baleen's home.
#
# The node is named after the machine's hostname: see boot-test.nix for why it is `nixos_vm` in
# the script and not `machine`.
{ vmModules }:
{
  name = "nixos-vm-services";

  nodes.nixos-vm = {
    imports = vmModules;
    virtualisation.memorySize = 2048;
    virtualisation.diskSize = 4096;
  };

  testScript =
    { nodes, ... }:
    ''
    sshd = "${nodes.nixos-vm.services.openssh.package}/bin/sshd"


    def as_baleen(command: str) -> str:
        # A login shell, as an interactive session would have it (PATH from the user's profile).
        return nixos_vm.succeed(f"su - baleen -c '{command}'")


    nixos_vm.start()
    nixos_vm.wait_for_unit("multi-user.target")

    with subtest("baleen is in the wheel and docker groups and uses bash"):
        groups = nixos_vm.succeed("id -nG baleen").split()
        for group in ["wheel", "docker"]:
            assert group in groups, f"baleen is not in {group}: {groups}"
        shell = nixos_vm.succeed("getent passwd baleen | cut -d: -f7").strip()
        assert shell.endswith("/bash"), f"baleen's shell is {shell}"

    with subtest("Docker is active and baleen reaches it without sudo"):
        nixos_vm.wait_for_unit("docker.service")
        version = as_baleen("docker info --format {{.ServerVersion}}").strip()
        assert version != "", "docker info printed no server version"

    with subtest("sshd is active, listens on 22 and takes keys only"):
        nixos_vm.wait_for_unit("sshd.service")
        nixos_vm.wait_for_open_port(22)
        config = nixos_vm.succeed(f"{sshd} -T").lower().splitlines()
        for line in ["passwordauthentication no", "kbdinteractiveauthentication no"]:
            assert line in config, f"sshd -T has no '{line}'"
        # sshd -T prints prohibit-password under its older name.
        root_login = [line for line in config if line.startswith("permitrootlogin ")]
        assert root_login in (
            ["permitrootlogin without-password"],
            ["permitrootlogin prohibit-password"],
        ), f"sshd -T: {root_login}"

    with subtest("the firewall is on"):
        nixos_vm.wait_until_succeeds(
            "systemctl is-active firewall.service || systemctl is-active nftables.service"
        )

    with subtest("Home Manager activated baleen's home"):
        nixos_vm.wait_for_unit("home-manager-baleen.service")
        nixos_vm.succeed("test -s /home/baleen/.config/git/config")
        name = as_baleen("git config --get user.name").strip()
        email = as_baleen("git config --get user.email").strip()
        assert name == "Baleen", f"git user.name is {name!r}"
        assert email.endswith(".invalid"), f"git user.email is {email!r}"

    with subtest("baleen's interactive bash has the aliases from Home Manager"):
        # Asked of bash itself, not read from a file: how Home Manager writes an alias into its
        # bashrc has changed between releases (`alias ll=...`, then `alias -- ll=...`), and the
        # aliases are set only in an interactive shell. `alias NAME` prints bash's own
        # `alias NAME='VALUE'`, whatever wrote it. With no terminal on stdin and stderr, the
        # interactive bash leaves the driver's console alone (no job control); its warnings about
        # that land among the lines, which are matched one by one.
        aliases = as_baleen("bash -ic \"alias ll gs\" </dev/null 2>&1").splitlines()
        for expected in ["alias ll='ls -l'", "alias gs='git status --short --branch'"]:
            assert expected in aliases, f"{expected!r} not among baleen's aliases: {aliases}"
  '';
}
