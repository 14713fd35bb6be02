# NixOS test (checks.<system>.boot-test): the VM boots to multi-user.target, no unit fails, the
# serial console is the system console and gets a getty, and a login prompt is up.
#
# Shape of every file here: `{ vmModules }: <NixOS test module>`; flake.nix passes the VM's modules
# and runs the result with pkgs.testers.runNixOSTest.
#
# The node is named after the machine's hostname, "nixos-vm", so the script calls it `nixos_vm` on
# every release: older test drivers name a machine after its hostname (system.name), newer ones
# after its attribute in `nodes`, and both are the same here. Not `machine`: with one node whose
# hostname is not "machine" the driver adds `machine` as an alias of its own, and a node called
# `machine` then declares that name twice (nixpkgs#512000, a mypy failure of the driver).
{ vmModules }:
{
  name = "nixos-vm-boot";

  nodes.nixos-vm = {
    imports = vmModules;
  };

  testScript =
    { nodes, ... }:
    ''
      serial = "${nodes.nixos-vm.nixosVm.serialConsole}"

      nixos_vm.start()

      with subtest("reaches multi-user.target"):
          nixos_vm.wait_for_unit("multi-user.target")

      with subtest("the system is running and no unit failed"):
          # is-system-running exits non-zero when degraded; print the state and the failed units.
          state = nixos_vm.succeed("systemctl is-system-running --wait || true").strip()
          failed = nixos_vm.succeed("systemctl --failed --no-legend --plain").strip()
          assert failed == "", f"failed units:\n{failed}"
          assert state == "running", f"system state is {state!r}, expected 'running'"

      with subtest("the serial console is the system console"):
          nixos_vm.succeed(f"grep -qw 'console={serial}' /proc/cmdline")
          active = nixos_vm.succeed("cat /sys/class/tty/console/active").split()
          assert serial in active, f"{serial} is not an active console: {active}"

      with subtest("systemd puts a getty on the serial console"):
          # The test driver masks serial-getty@{serial} (it shares that line with its own shell), so
          # the getty cannot run here; what this checks is that systemd's getty generator asked for
          # it, which is what starts it on the real VM.
          nixos_vm.succeed(
              f"test -L /run/systemd/generator/getty.target.wants/serial-getty@{serial}.service"
          )

      with subtest("a login prompt is up"):
          nixos_vm.wait_for_unit("getty@tty1.service")
          nixos_vm.wait_until_tty_matches("1", "login: ")
    '';
}
