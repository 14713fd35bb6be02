#!/bin/sh
# End-to-end check of the developer environment, run inside the VM as baleen (tests/vm/checks.yml,
# `e2e`): builds and runs a C program with make, commits it with the git identity Home Manager
# configured, and asks the Docker daemon for its version. Prints each step; exits non-zero on the
# first failure. POSIX sh, no bashisms.
set -eu

step() { printf '==> %s\n' "$*"; }
fail() {
	printf 'dev-env: FAIL: %s\n' "$*" >&2
	exit 1
}

# A runner may start us with a bare environment: use the account's home and the NixOS profiles.
user=$(id -un)
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || fail "no passwd entry for $user"
HOME=$home
PATH="/etc/profiles/per-user/$user/bin:/run/current-system/sw/bin:${PATH:-/usr/bin:/bin}"
export HOME PATH

work=$(mktemp -d "${TMPDIR:-/tmp}/dev-env.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cd "$work"
step "user $user, home $HOME, workspace $work"

step "tools"
for tool in cc make git docker; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH ($PATH)"
	printf '    %-6s %s\n' "$tool" "$(command -v "$tool")"
done

step "write hello.c and a Makefile"
cat >hello.c <<'EOF'
#include <stdio.h>

int main(void)
{
	printf("hello, %s\n", "dev-env");
	return 0;
}
EOF
# shellcheck disable=SC2016 # $(CC) and $@ are make's, not the shell's
printf 'hello: hello.c\n\t$(CC) -O2 -Wall -Werror -o $@ hello.c\n' >Makefile

step "build with make"
make || fail "make failed"

step "run ./hello"
out=$(./hello) || fail "./hello exited non-zero"
printf '    %s\n' "$out"
[ "$out" = "hello, dev-env" ] || fail "./hello printed '$out'"

step "git identity from Home Manager"
name=$(git config --get user.name) || fail "git has no user.name"
email=$(git config --get user.email) || fail "git has no user.email"
origin=$(git config --show-origin --get user.name | cut -f1)
printf '    %s <%s> (%s)\n' "$name" "$email" "$origin"
case $origin in
*/.config/git/config) ;;
*) fail "user.name comes from $origin, not ~/.config/git/config" ;;
esac

step "commit to a new repository"
git init -q .
git add hello.c Makefile
git commit -q -m "dev-env: hello"
author=$(git log -1 --format='%an <%ae>')
printf '    %s %s\n' "$(git rev-parse --short HEAD)" "$author"
[ "$author" = "$name <$email>" ] || fail "commit author is '$author', expected '$name <$email>'"

step "docker info"
server=$(docker info --format '{{.ServerVersion}}') || fail "docker info failed (is $user in the docker group?)"
[ -n "$server" ] || fail "docker info printed no server version"
printf '    Docker server %s\n' "$server"

step "ok"
