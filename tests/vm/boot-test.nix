# NixOS test (checks.<system>.boot-test): the VM boots to multi-user.target, no unit fails, the
# serial console is the system console and gets a getty, and a login prompt is up.
#
# Shape of every file here: `{ vmModules }: <NixOS test module>`; flake.nix passes the VM's modules
# and runs the result with pkgs.testers.runNixOSTest.
{ vmModules }:
{
  name = "nixos-vm-boot";

  nodes.machine = {
    imports = vmModules;
  };

  testScript =
    { nodes, ... }:
    ''
      serial = "${nodes.machine.nixosVm.serialConsole}"

      machine.start()

      with subtest("reaches multi-user.target"):
          machine.wait_for_unit("multi-user.target")

      with subtest("the system is running and no unit failed"):
          # is-system-running exits non-zero when degraded; print the state and the failed units.
          state = machine.succeed("systemctl is-system-running --wait || true").strip()
          failed = machine.succeed("systemctl --failed --no-legend --plain").strip()
          assert failed == "", f"failed units:\n{failed}"
          assert state == "running", f"system state is {state!r}, expected 'running'"

      with subtest("the serial console is the system console"):
          machine.succeed(f"grep -qw 'console={serial}' /proc/cmdline")
          active = machine.succeed("cat /sys/class/tty/console/active").split()
          assert serial in active, f"{serial} is not an active console: {active}"

      with subtest("systemd puts a getty on the serial console"):
          # The test driver masks serial-getty@{serial} (it shares that line with its own shell), so
          # the getty cannot run here; what this checks is that systemd's getty generator asked for
          # it, which is what starts it on the real VM.
          machine.succeed(
              f"test -L /run/systemd/generator/getty.target.wants/serial-getty@{serial}.service"
          )

      with subtest("a login prompt is up"):
          machine.wait_for_unit("getty@tty1.service")
          machine.wait_until_tty_matches("1", "login: ")
    '';
}
