# NixOS test (checks.<system>.service-test): the VM's services and its user: Docker answers baleen
# without sudo, sshd listens and takes no passwords, and Home Manager set up baleen's home.
{ vmModules }:
{
  name = "nixos-vm-services";

  nodes.machine = {
    imports = vmModules;
    virtualisation.memorySize = 2048;
    virtualisation.diskSize = 4096;
  };

  testScript =
    { nodes, ... }:
    ''
    sshd = "${nodes.machine.services.openssh.package}/bin/sshd"


    def as_baleen(command: str) -> str:
        # A login shell, as an interactive session would have it (PATH from the user's profile).
        return machine.succeed(f"su - baleen -c '{command}'")


    machine.start()
    machine.wait_for_unit("multi-user.target")

    with subtest("baleen is in the wheel and docker groups and uses bash"):
        groups = machine.succeed("id -nG baleen").split()
        for group in ["wheel", "docker"]:
            assert group in groups, f"baleen is not in {group}: {groups}"
        shell = machine.succeed("getent passwd baleen | cut -d: -f7").strip()
        assert shell.endswith("/bash"), f"baleen's shell is {shell}"

    with subtest("Docker is active and baleen reaches it without sudo"):
        machine.wait_for_unit("docker.service")
        version = as_baleen("docker info --format {{.ServerVersion}}").strip()
        assert version != "", "docker info printed no server version"

    with subtest("sshd is active, listens on 22 and takes keys only"):
        machine.wait_for_unit("sshd.service")
        machine.wait_for_open_port(22)
        config = machine.succeed(f"{sshd} -T").lower().splitlines()
        for line in ["passwordauthentication no", "kbdinteractiveauthentication no"]:
            assert line in config, f"sshd -T has no '{line}'"
        # sshd -T prints prohibit-password under its older name.
        root_login = [line for line in config if line.startswith("permitrootlogin ")]
        assert root_login in (
            ["permitrootlogin without-password"],
            ["permitrootlogin prohibit-password"],
        ), f"sshd -T: {root_login}"

    with subtest("the firewall is on"):
        machine.wait_until_succeeds(
            "systemctl is-active firewall.service || systemctl is-active nftables.service"
        )

    with subtest("Home Manager activated baleen's home"):
        machine.wait_for_unit("home-manager-baleen.service")
        machine.succeed("test -s /home/baleen/.config/git/config")
        name = as_baleen("git config --get user.name").strip()
        email = as_baleen("git config --get user.email").strip()
        assert name == "Baleen", f"git user.name is {name!r}"
        assert email.endswith(".invalid"), f"git user.email is {email!r}"
        machine.succeed("grep -q '^alias ll=' /home/baleen/.bashrc")  # Home Manager's bash alias
  '';
}
