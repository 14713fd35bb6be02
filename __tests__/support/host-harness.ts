/**
 * Runs one host step of src/nix for real, in whatever place the caller prepared (the host-layer
 * tests run it inside a private mount namespace whose /etc/nix and /etc/udev/rules.d are
 * throwaway tmpfs mounts). Bundled with esbuild by the test; argv[2] is a JSON request, the answer
 * is one JSON line on stdout: { ok: true, result } or { ok: false, kind, message, excerpt }.
 */
import { spawnExecutor, runCommands, type Step } from '../../src/nix/exec.js'
import { gatherHostFacts, type HostFacts } from '../../src/nix/facts.js'
import { planNixSetup, setupNix } from '../../src/nix/install.js'
import { ensureKvmAccess } from '../../src/nix/kvm.js'
import type { EmulationPlan } from '../../src/nix/binfmt.js'
import { ValidationFailure } from '../../src/util/errors.js'
import { silentLogger, type Logger } from '../../src/util/log.js'

type Request =
  | { op: 'steps'; steps: Step[]; tempRoot?: string }
  | {
      op: 'setup'
      /** Facts read from this machine, then these overrides (a daemon, a user). */
      facts: Partial<HostFacts>
      emulation?: EmulationPlan
      extraSubstituters?: string[]
      githubToken?: string
    }
  | { op: 'kvm'; facts: Pick<HostFacts, 'kvm' | 'act' | 'udev' | 'uid'>; device: string }

const lines: string[] = []
const log: Logger = {
  ...silentLogger,
  info: (m) => lines.push(`info: ${m}`),
  warning: (m) => lines.push(`warning: ${m}`)
}

async function main(): Promise<unknown> {
  const req = JSON.parse(process.argv[2] ?? '{}') as Request
  const exec = spawnExecutor()
  if (req.op === 'steps') {
    return {
      warnings: await runCommands(req.steps, exec, log, undefined, { tempRoot: req.tempRoot })
    }
  }
  if (req.op === 'setup') {
    const facts = { ...(await gatherHostFacts(exec)), ...req.facts }
    const plan = planNixSetup(
      {
        extraSubstituters: req.extraSubstituters ?? [],
        extraTrustedPublicKeys: [],
        ...(req.githubToken !== undefined ? { githubToken: req.githubToken } : {}),
        ...(req.emulation !== undefined ? { emulation: req.emulation } : {})
      },
      facts
    )
    const env: NodeJS.ProcessEnv = { ...process.env }
    const result = await setupNix(plan, { exec, log, env })
    return { result, env: { NIX_USER_CONF_FILES: env.NIX_USER_CONF_FILES }, mode: plan.mode }
  }
  return ensureKvmAccess(req.facts, { exec, log, device: req.device, settleMs: 500 })
}

main().then(
  (result) => console.log(JSON.stringify({ ok: true, result, log: lines })),
  (err: unknown) => {
    const f = err instanceof ValidationFailure ? err : undefined
    console.log(
      JSON.stringify({
        ok: false,
        kind: f?.kind ?? 'internal',
        message: (err as Error).message,
        excerpt: f?.excerpt ?? '',
        log: lines
      })
    )
  }
)
