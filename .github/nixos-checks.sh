#!/usr/bin/env bash
# Builds the flake's checks for one system, one at a time, and writes a table of their results to
# the job summary ($GITHUB_STEP_SUMMARY; stdout without it). Run by .github/workflows/nixos-tests.yml:
#
#   .github/nixos-checks.sh SYSTEM RUN_VMS
#
# For a NixOS test (a check with a `.driver`) it builds the driver first: the test script's lint
# (pyflakes) and type check (mypy) against the machines the driver declares, no VM. With RUN_VMS=true
# (a runner with KVM) it then builds the test itself, which boots the VMs. Any other check (the
# modules' unit tests) is built as it is. Last comes `nix flake check -L`: everything again (built
# already, so only the outputs' own checks run) and the other system's checks evaluated; without
# KVM, or after a failure above, with --no-build. Exits 1 if anything failed.
# shellcheck disable=SC2016 # the backquotes in single quotes are Markdown's, not the shell's
set -uo pipefail

system=${1:?usage: nixos-checks.sh SYSTEM RUN_VMS}
run_vms=${2:?usage: nixos-checks.sh SYSTEM RUN_VMS}
summary=${GITHUB_STEP_SUMMARY:-/dev/stdout}
logs=${NIXOS_CHECKS_LOGS:-${RUNNER_TEMP:-/tmp}/nixos-checks}
mkdir -p "$logs"

failed=0
rows=()
tails=()

duration() {
  local s=$1
  if ((s >= 60)); then echo "$((s / 60))m $((s % 60))s"; else echo "${s}s"; fi
}

badge() {
  case $1 in
  pass) echo "✅ pass" ;;
  fail) echo "❌ fail" ;;
  *) echo "$1" ;;
  esac
}

# attempt LABEL COMMAND...: runs COMMAND in a log group, its output also kept in $logs; sets $result
# (pass/fail) and $secs. A failure is annotated, and the end of its log goes to the summary.
attempt() {
  local label=$1 log="$logs/${1//[^A-Za-z0-9._-]/_}.log" start=$SECONDS
  shift
  echo "::group::$label: $*"
  if "$@" 2>&1 | tee "$log"; then
    result=pass
  else
    result=fail
    failed=1
    echo "::error title=$label failed::$* failed: its log is in this step, its last lines in the job summary"
    tails+=("$(printf '<details><summary><code>%s</code>: the last 60 lines of its log</summary>\n\n```text\n%s\n```\n\n</details>\n' \
      "$label" "$(tail -n 60 "$log")")")
  fi
  echo "::endgroup::"
  secs=$((SECONDS - start))
}

# One line per check: its name, then "nixos-test" (it has a driver) or "other".
list='checks: builtins.concatStringsSep "\n" (map (name: "${name} ${
  if checks.${name} ? driver then "nixos-test" else "other"}") (builtins.attrNames checks))'
if ! listing=$(nix eval --raw ".#checks.$system" --apply "$list" 2>"$logs/eval.log"); then
  cat "$logs/eval.log" >&2
  {
    echo "## NixOS checks ($system)"
    echo
    echo "❌ \`checks.$system\` did not evaluate:"
    echo
    printf '```text\n%s\n```\n' "$(tail -n 40 "$logs/eval.log")"
  } >>"$summary"
  echo "::error title=checks.$system did not evaluate::$(tail -n 1 "$logs/eval.log")"
  exit 1
fi

mapfile -t checks <<<"$listing"
for check in "${checks[@]}"; do
  name=${check% *}
  if [[ ${check##* } == nixos-test ]]; then
    attempt "$name.driver" nix build --no-link --print-build-logs ".#checks.$system.$name.driver"
    driver=$result total=$secs
    if [[ $run_vms != true ]]; then
      run="not run: no KVM on this leg"
    elif [[ $driver != pass ]]; then
      run="not run: the driver failed"
    else
      attempt "$name" nix build --no-link --print-build-logs ".#checks.$system.$name"
      run=$result total=$((total + secs))
    fi
    rows+=("| \`$name\` | NixOS test | $(badge "$driver") | $(badge "$run") | $(duration "$total") |")
  else
    attempt "$name" nix build --no-link --print-build-logs ".#checks.$system.$name"
    rows+=("| \`$name\` | evaluation only | — | $(badge "$result") | $(duration "$secs") |")
  fi
done

# Everything built already passed: the flake check builds nothing new, and evaluates the other
# system's checks and the other outputs. Otherwise it only evaluates (a failed test is not re-run).
if [[ $run_vms == true && $failed == 0 ]]; then
  attempt "nix flake check -L" nix flake check --print-build-logs
  rows+=("| \`nix flake check -L\` | every output, both systems | — | $(badge "$result") | $(duration "$secs") |")
else
  attempt "nix flake check -L --no-build" nix flake check --print-build-logs --no-build
  rows+=("| \`nix flake check -L --no-build\` | every output, both systems, evaluated | — | $(badge "$result") | $(duration "$secs") |")
fi

{
  echo "## NixOS checks ($system)"
  echo
  echo "| check | kind | driver: lint + type check | result | time |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  if ((${#tails[@]} > 0)); then printf '%s\n' "${tails[@]}"; fi
} >>"$summary"

exit "$failed"
