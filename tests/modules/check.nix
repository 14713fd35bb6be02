# checks.<system>.module-tests: runs the unit tests of ./default.nix with nixpkgs' `lib.runTests`
# while the check is evaluated, and makes a derivation of the outcome. Its build prints one line per
# test (`pass NAME` / `FAIL NAME`) and, when a test failed, what it expected and what it got, then
# fails. Evaluated on any system, it tests both configurations.
{
  lib,
  runCommand,
  tests,
}:
let
  names = builtins.attrNames tests;
  failures = lib.runTests tests;
  failed = map (failure: failure.name) failures;

  # On one line; store paths in a value are printed, never built.
  pretty =
    value: builtins.unsafeDiscardStringContext (lib.generators.toPretty { multiline = false; } value);

  report = lib.concatStringsSep "\n" (
    map (name: "${if builtins.elem name failed then "FAIL" else "pass"} ${name}") names
    ++ map (failure: ''

      FAIL ${failure.name}
        expected: ${pretty failure.expected}
        result:   ${pretty failure.result}'') failures
    ++ [
      ""
      "${toString (builtins.length failures)} of ${toString (builtins.length names)} module tests failed"
    ]
  );
in
runCommand "nixos-vm-module-tests"
  {
    inherit report;
    passAsFile = [ "report" ];
  }
  (
    if failures == [ ] then
      ''
        cat "$reportPath"
        cp "$reportPath" "$out"
      ''
    else
      ''
        cat "$reportPath" >&2
        exit 1
      ''
  )
