// npm run bench — measures the engine against the bare runner on the same guest, in one run.
// Medians and ratios only: this machine is noisy, so every comparison has its baseline measured
// here, interleaved with it.
//
//   A. boot+ssh: bare runner until sshd sends its banner (one probe at a time, 100 ms apart) vs
//      the CLI's boot+ssh (from the CLI's process start to an authenticated SSH session).
//   B. aarch64 under TCG: the engine's CPU tuning (max,pauth=off) vs the runner's own -cpu max.
//   C. all default stages vs bare boot-to-sshd, and vs the bare guest's own boot end (OpenSSH's
//      client running `systemctl is-system-running --wait`): no check of the booted system can
//      pass before then, so C0 (boot end / sshd) is the floor of C1. Then the check stages run
//      concurrently vs one after another.
//
//   D. the action's flake path (dist/main with flake + configuration on tests/fixtures/flake:
//      Nix configured in a fresh HOME, the flake's metadata, the build through extendModules with
//      the run's key, then boot+ssh) vs the CLI's --runner path on the same guest: the cost of
//      the Nix layer itself. Both are whole process runs, start to exit.
//
//   E. the bundle: bytes of dist/'s JavaScript (all of it, and what main loads before its first
//      line runs: its static imports), and the cold start of a dry run of main (vm-runner inputs,
//      no Nix: process start to exit) vs `node -e 0` and vs the previous bundle (BENCH_BASE_REF,
//      default HEAD~1, taken with git archive), interleaved. BENCH_COLD_RUNS (default 15).
//
//   F. console throughput through the whole pipeline: the CLI on a runner that floods its console
//      (BENCH_FLOOD_MIB, default 1024, of lines, then as much without a newline) and exits, vs
//      the same runner writing to /dev/null: MiB/s, start to verdict.
//
//   G. the configuration's spec (derived checks): the build step of tests/fixtures/flake#fixture
//      alone (nix build with a fresh key, as every run has) vs the same build with the spec's
//      evaluation beside it, as the CLI and the action run them; wall time until both are done.
//
//   H. the performance history (docs/performance-history.md): the CLI's boot+ssh+performance on the
//      x86_64 guest alone vs with --perf-history on a history of 20 earlier runs (restored,
//      compared, written back), whole process runs; and the share of the performance stage taken
//      by its responsiveness probes.
//
// BENCH_RUNS (default 3) sets runs per measurement; BENCH_ONLY=A,B,C,D,E,F,G,H picks parts.
import { execFileSync, spawn } from 'node:child_process'
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync
} from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(ROOT, 'dist/cli/index.js')
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const ONLY = (process.env.BENCH_ONLY ?? 'A,B,C,D,E,F,G,H').split(',')

function guest(arch, variant = 'ok') {
  const out = execFileSync(
    'bash',
    [join(ROOT, 'tests/fixtures/guest/build.sh'), '--arch', arch, '--variant', variant],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit']
    }
  )
  const dir = out.trim().split('\n').at(-1)
  const meta = JSON.parse(readFileSync(join(dir, 'guest.json'), 'utf8'))
  return {
    dir,
    runner: join(dir, meta.runner),
    key: join(dir, meta.sshKey),
    system: `${arch}-linux`,
    arch
  }
}

function freePort() {
  return new Promise((res) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

/** One TCP probe: resolves true when an SSH banner arrives within `ms`. */
function bannerProbe(port, ms) {
  return new Promise((res) => {
    const sock = connect(port, '127.0.0.1')
    const done = (ok) => {
      clearTimeout(t)
      sock.destroy()
      res(ok)
    }
    const t = setTimeout(() => done(false), ms)
    sock.on('data', (d) => done(d.toString().startsWith('SSH-')))
    sock.on('error', () => done(false))
    sock.on('close', () => done(false))
  })
}

/**
 * The end of the boot as the bare guest reports it: OpenSSH's client (not the engine's) runs
 * `systemctl is-system-running --wait` until systemd answers with a state; resolves when it does.
 */
async function bootEndOverOpenSsh(g, port, deadline) {
  const args = [
    '-i',
    g.key,
    '-p',
    String(port),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
    'root@127.0.0.1',
    'systemctl is-system-running --wait'
  ]
  while (Date.now() < deadline) {
    const state = await new Promise((res) => {
      const c = spawn('ssh', args, { stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      c.stdout.on('data', (d) => (out += d))
      c.on('close', () => res(out.trim()))
    })
    if (/^(running|degraded|maintenance|stopping)$/m.test(state)) return Date.now()
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('bare runner: the boot never ended')
}

/**
 * The bare runner with the engine's QEMU settings: ms from spawn until sshd's banner and, with
 * `untilEnd`, until systemd says the boot ended.
 */
async function bareBoot(g, cpu, untilEnd = false) {
  const work = mkdtempSync(join(tmpdir(), 'nvv-bench-'))
  mkdirSync(join(work, 'tmp'))
  const port = await freePort()
  const qemuOpts = [
    '-machine accel=tcg',
    '-no-reboot',
    '-display none',
    cpu ? `-cpu ${cpu}` : ''
  ].join(' ')
  const started = Date.now()
  const child = spawn(g.runner, [], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    env: {
      ...process.env,
      NIX_DISK_IMAGE: join(work, 'disk.qcow2'),
      TMPDIR: join(work, 'tmp'),
      USE_TMPDIR: '1',
      QEMU_NET_OPTS: `hostfwd=tcp:127.0.0.1:${port}-:22`,
      QEMU_OPTS: qemuOpts
    }
  })
  let readyAt
  const deadline = started + 15 * 60_000
  // One probe at a time, so the guest never sees a pile of connections: a probe ends at sshd's
  // banner, at the guest's refusal (QEMU's user network closes the socket), or after 2 s while the
  // guest's network is not up yet; the next one starts 100 ms later.
  while (readyAt === undefined && Date.now() < deadline) {
    if (await bannerProbe(port, 2000)) readyAt = Date.now()
    else await new Promise((r) => setTimeout(r, 100))
  }
  const endAt =
    untilEnd && readyAt !== undefined ? await bootEndOverOpenSsh(g, port, deadline) : undefined
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    // already gone
  }
  rmSync(work, { recursive: true, force: true })
  if (readyAt === undefined) throw new Error('bare runner: sshd never answered')
  return { sshd: readyAt - started, end: endAt !== undefined ? endAt - started : undefined }
}

/** The CLI; returns the report and the ms from its process start to SSH ready. */
function cli(g, extra = [], env = {}) {
  const out = mkdtempSync(join(tmpdir(), 'nvv-bench-out-'))
  const started = Date.now()
  return new Promise((res, rej) => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'validate',
        '--runner',
        g.runner,
        '--system',
        g.system,
        '--ssh-key',
        g.key,
        '--out',
        out,
        ...extra
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, ...env }
      }
    )
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => {
      const wall = Date.now() - started
      let report
      try {
        report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))
      } catch {
        return rej(new Error(`no report (exit ${code}):\n${stderr}`))
      }
      rmSync(out, { recursive: true, force: true })
      if (code !== 0)
        return rej(
          new Error(`CLI exit ${code}: ${report.failure?.kind} ${report.failure?.message}`)
        )
      const t = report.timings
      // The verdict: when the last stage ended, counted from the CLI's process start.
      const verdict = Math.max(...report.stages.map((s) => (s.startMs ?? 0) + s.durationMs))
      res({
        report,
        wall,
        sshReady: (t.preflightMs ?? 0) + (t.sshReadyMs ?? NaN),
        verdict,
        boot: t.bootMs
      })
    })
  })
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const sec = (ms) => `${(ms / 1000).toFixed(1)}s`
const results = []
function line(name, base, baseName, cand, candName) {
  const ratio = median(cand) / median(base)
  const row = {
    name,
    baseline: baseName,
    candidate: candName,
    baselineMedianMs: median(base),
    candidateMedianMs: median(cand),
    ratio,
    runs: base.length,
    baselineRuns: base,
    candidateRuns: cand
  }
  results.push(row)
  console.log(
    `${name}\n  ${baseName}: median ${sec(median(base))}  [${base.map(sec).join(' ')}]\n  ${candName}: median ${sec(median(cand))}  [${cand.map(sec).join(' ')}]\n  ratio ${candName} / ${baseName} = ${ratio.toFixed(3)}\n`
  )
}

const x86 = guest('x86_64')
const arm = guest('aarch64')

if (ONLY.includes('A')) {
  for (const g of [x86, arm]) {
    const bare = []
    const engine = []
    const cpu = g.arch === 'aarch64' ? 'max,pauth=off' : undefined
    for (let i = 0; i < RUNS; i++) {
      // Interleave so drift in machine load hits both sides alike.
      bare.push((await bareBoot(g, cpu)).sshd)
      engine.push((await cli(g, ['--stages', 'boot,ssh'])).sshReady)
    }
    line(`A. ${g.system}: boot to SSH`, bare, 'bare runner to sshd banner', engine, 'CLI boot+ssh')
  }
}

if (ONLY.includes('B')) {
  const tuned = []
  const max = []
  for (let i = 0; i < RUNS; i++) {
    tuned.push((await cli(arm, ['--stages', 'boot'])).boot)
    max.push((await cli(arm, ['--stages', 'boot', '--cpu', 'max'])).boot)
  }
  line(
    'B. aarch64-linux TCG: boot to login prompt',
    max,
    'runner -cpu max',
    tuned,
    'engine tuning (max,pauth=off)'
  )
  const r = results.at(-1)
  console.log(`  speed-up: ${(1 / r.ratio).toFixed(2)}x\n`)
}

if (ONLY.includes('C')) {
  const bare = []
  const bareEnd = []
  const all = []
  const wall = []
  const conc = []
  const seq = []
  // The demo's checks (every default stage); the network stage reaches a server on this host.
  const server = createHttpServer((_, res) => res.end('StoreDir: /nix/store\n'))
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const dir = mkdtempSync(join(tmpdir(), 'nvv-bench-checks-'))
  const checks = join(dir, 'checks.yml')
  writeFileSync(
    checks,
    readFileSync(join(ROOT, 'tests/fixtures/demo/checks.yml'), 'utf8').replaceAll(
      '@PORT@',
      String(server.address().port)
    )
  )
  for (let i = 0; i < RUNS; i++) {
    const b = await bareBoot(x86, undefined, true)
    bare.push(b.sshd)
    bareEnd.push(b.end)
    const full = await cli(x86, ['--checks', checks])
    all.push(full.verdict)
    wall.push(full.wall)
    // From the first check stage's start to the last one's end (stages overlap when concurrent).
    const stageMs = (r) => {
      const ran = r.stages.filter(
        (s) => !['boot', 'ssh'].includes(s.name) && s.startMs !== undefined
      )
      return (
        Math.max(...ran.map((s) => s.startMs + s.durationMs)) -
        Math.min(...ran.map((s) => s.startMs))
      )
    }
    conc.push(stageMs(full.report))
    const one = await cli(x86, ['--checks', checks], { NVV_CHECK_CONCURRENCY: '1' })
    seq.push(stageMs(one.report))
  }
  line(
    'C1. x86_64-linux: all default stages to the verdict vs bare boot-to-sshd',
    bare,
    'bare runner to sshd banner',
    all,
    'CLI all stages'
  )
  console.log(
    `  (whole CLI runs incl. screenshot, QEMU quit and artifacts: median ${sec(median(wall))})\n`
  )
  // No check of a booted system can pass before the guest's own boot has ended: the floor of C1.
  line(
    'C0. x86_64-linux: the guest alone, boot end vs sshd banner (the floor of C1)',
    bare,
    'bare runner to sshd banner',
    bareEnd,
    'bare runner to boot end'
  )
  line(
    "C1'. x86_64-linux: all default stages to the verdict vs the bare guest's own boot end",
    bareEnd,
    'bare runner to boot end (systemctl is-system-running --wait over OpenSSH)',
    all,
    'CLI all stages'
  )
  line(
    'C2. x86_64-linux: check stages, concurrent vs one after another',
    seq,
    'one at a time',
    conc,
    'concurrent'
  )
  server.close()
  rmSync(dir, { recursive: true, force: true })
}

/** One run of the action's main step on the fixture flake (no GitHub services: reporting skips). */
function actionFlake(g) {
  const dir = mkdtempSync(join(tmpdir(), 'nvv-bench-action-'))
  const workspace = join(dir, 'workspace')
  const home = join(dir, 'home')
  for (const d of [workspace, home, join(dir, 'temp')]) mkdirSync(d, { recursive: true })
  cpSync(join(ROOT, 'tests/fixtures/flake'), workspace, { recursive: true })
  for (const f of ['output', 'state', 'summary']) writeFileSync(join(dir, f), '')
  const inputs = {
    flake: '.',
    configuration: 'fixture',
    system: g.system,
    stages: 'boot,ssh',
    cache: 'false',
    'github-token': ''
  }
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: workspace,
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STATE: join(dir, 'state'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary'),
    GITHUB_REPOSITORY: 'bench/bench',
    GITHUB_RUN_ID: '1',
    RUNNER_TEMP: join(dir, 'temp'),
    NVV_FIXTURE_GUEST: g.dir,
    // No binary cache here; the fixture builds with the host's /bin/sh (no sandbox).
    NIX_CONFIG: 'substituters =\nsandbox = false\n',
    ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v]))
  }
  const started = Date.now()
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist/main/index.js')], {
      env,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('close', (code) => {
      const wall = Date.now() - started
      rmSync(dir, { recursive: true, force: true })
      if (code !== 0) return rej(new Error(`action exit ${code}:\n${out.slice(-3000)}`))
      res({ wall, built: /building '\/nix\/store\/\w+-nixos-vm\.drv'/.test(out) })
    })
  })
}

if (ONLY.includes('D')) {
  const action = []
  const runner = []
  for (let i = 0; i < RUNS; i++) {
    const a = await actionFlake(x86)
    if (!a.built) throw new Error('the action did not build the VM runner')
    action.push(a.wall)
    runner.push((await cli(x86, ['--stages', 'boot,ssh'])).wall)
  }
  line(
    'D. x86_64-linux: the action on a flake (configure, build, boot+ssh) vs the CLI on the runner',
    runner,
    'CLI --runner boot+ssh',
    action,
    'action flake + configuration'
  )
}

/** Bytes of the .js files under `dir`, and of the files `entry` imports statically (transitively). */
function bundleBytes(dir, entry) {
  let all = 0
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n)
      if (statSync(p).isDirectory()) walk(p)
      else if (n.endsWith('.js')) all += statSync(p).size
    }
  }
  walk(dir)
  const seen = new Set()
  const visit = (f) => {
    if (seen.has(f)) return
    seen.add(f)
    const text = readFileSync(f, 'utf8')
    for (const m of text.matchAll(
      /(?:^|[;\n}])\s*import\s*(?:[\w*{}\s,$]*from\s*)?["'](\.[^"']+)["']/g
    ))
      visit(join(dirname(f), m[1]))
  }
  visit(entry)
  let loaded = 0
  for (const f of seen) loaded += statSync(f).size
  return { all, loaded }
}

/** One cold start: `argv` from spawn to exit, in ms (exit status must be 0). */
function timed(argv, env) {
  return new Promise((res, rej) => {
    const started = process.hrtime.bigint()
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      if (code !== 0) rej(new Error(`${argv.join(' ')}: exit ${code}\n${out.slice(-2000)}`))
      else res(ms)
    })
  })
}

if (ONLY.includes('E')) {
  const ref = process.env.BENCH_BASE_REF ?? 'HEAD~1'
  const work = mkdtempSync(join(tmpdir(), 'nvv-bench-bundle-'))
  const previous = join(work, 'previous')
  mkdirSync(previous)
  execFileSync('sh', [
    '-c',
    `git -C "$1" archive "$2" dist | tar -x -C "$3"`,
    'sh',
    ROOT,
    ref,
    previous
  ])
  for (const d of ['ws', 'temp']) mkdirSync(join(work, d))
  for (const f of ['output', 'state', 'summary']) writeFileSync(join(work, f), '')
  const env = {
    PATH: process.env.PATH,
    HOME: work,
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: join(work, 'ws'),
    GITHUB_OUTPUT: join(work, 'output'),
    GITHUB_STATE: join(work, 'state'),
    GITHUB_STEP_SUMMARY: join(work, 'summary'),
    GITHUB_REPOSITORY: 'bench/bench',
    RUNNER_TEMP: join(work, 'temp'),
    'INPUT_VM-RUNNER': x86.runner,
    'INPUT_SSH-KEY': x86.key,
    INPUT_SYSTEM: 'x86_64-linux',
    'INPUT_DRY-RUN': 'true'
  }
  const now = bundleBytes(join(ROOT, 'dist'), join(ROOT, 'dist/main/index.js'))
  const before = bundleBytes(join(previous, 'dist'), join(previous, 'dist/main/index.js'))
  const mb = (b) => `${(b / 1e6).toFixed(2)} MB`
  console.log(
    `E1. bundle JavaScript: ${mb(now.all)} in all, ${mb(now.loaded)} loaded by main before it runs (${ref}: ${mb(before.all)}, ${mb(before.loaded)})`
  )
  results.push({ name: 'E1. bundle bytes', bytes: now, previousBytes: before, previousRef: ref })
  const cold = Number(process.env.BENCH_COLD_RUNS ?? 15)
  const bare = []
  const mine = []
  const theirs = []
  for (let i = 0; i < cold; i++) {
    bare.push(await timed([process.execPath, '-e', '0'], env))
    mine.push(await timed([process.execPath, join(ROOT, 'dist/main/index.js')], env))
    theirs.push(await timed([process.execPath, join(previous, 'dist/main/index.js')], env))
  }
  const ms = (v) => `${Math.round(v)} ms`
  for (const [name, base, baseName] of [
    ['E2. main dry-run cold start vs node -e 0', bare, 'node -e 0'],
    [`E3. main dry-run cold start vs the previous bundle (${ref})`, theirs, `bundle at ${ref}`]
  ]) {
    const ratio = median(mine) / median(base)
    results.push({
      name,
      baseline: baseName,
      candidate: 'this bundle',
      baselineMedianMs: median(base),
      candidateMedianMs: median(mine),
      ratio,
      runs: cold
    })
    console.log(
      `${name}\n  ${baseName}: median ${ms(median(base))}\n  this bundle: median ${ms(median(mine))}\n  ratio = ${ratio.toFixed(3)}\n`
    )
  }
  rmSync(work, { recursive: true, force: true })
}

if (ONLY.includes('F')) {
  const mib = Number(process.env.BENCH_FLOOD_MIB ?? 1024)
  const work = mkdtempSync(join(tmpdir(), 'nvv-bench-flood-'))
  mkdirSync(join(work, 'bin'))
  const runners = {
    lines: `yes 'flood: a guest stuck printing the same line, over and over, at full speed' | head -c ${mib * 1048576}`,
    'no newline': `head -c ${mib * 1048576} /dev/zero | tr '\\0' x`
  }
  const key = join(work, 'key')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])
  for (const [name, body] of Object.entries(runners)) {
    const runner = join(work, 'bin', `run-${name.replace(/ /g, '-')}-vm`)
    writeFileSync(runner, `#!/bin/sh\n${body}\necho\nexit 0\n`, { mode: 0o755 })
    const bare = []
    const cliRuns = []
    for (let i = 0; i < RUNS; i++) {
      bare.push(await timed(['sh', '-c', `"$0" >/dev/null`, runner], process.env))
      const out = join(work, `out-${i}`)
      const started = process.hrtime.bigint()
      await new Promise((res) => {
        const child = spawn(
          process.execPath,
          [
            CLI,
            'validate',
            '--runner',
            runner,
            '--system',
            'x86_64-linux',
            '--ssh-key',
            key,
            '--stages',
            'boot',
            '--accel',
            'tcg',
            '--out',
            out
          ],
          { stdio: 'ignore' }
        )
        child.on('close', res)
      })
      cliRuns.push(Number(process.hrtime.bigint() - started) / 1e6)
      const size = statSync(join(out, 'console.log')).size
      if (size > 65 * 1048576) throw new Error(`console.log is ${size} bytes: not capped`)
      rmSync(out, { recursive: true, force: true })
    }
    const rate = (ms) => (mib / (ms / 1000)).toFixed(0)
    const row = {
      name: `F. console throughput (${name})`,
      baseline: 'the runner alone, to /dev/null',
      candidate: 'the CLI: runner, console monitor, console.log',
      baselineMedianMs: median(bare),
      candidateMedianMs: median(cliRuns),
      ratio: median(cliRuns) / median(bare),
      mibPerSecond: Number(rate(median(cliRuns))),
      runs: RUNS
    }
    results.push(row)
    console.log(
      `${row.name}: ${mib} MiB\n  the runner alone: ${rate(median(bare))} MiB/s\n  through the CLI: ${row.mibPerSecond} MiB/s (start to verdict)\n  ratio = ${row.ratio.toFixed(3)}\n`
    )
  }
  rmSync(work, { recursive: true, force: true })
}

if (ONLY.includes('G')) {
  // The argv builders themselves (src/nix/expr.ts, spec.ts), bundled for this run by esbuild.
  const { build } = await import('esbuild')
  const work = mkdtempSync(join(tmpdir(), 'nvv-bench-g-'))
  // Inside the repository, so the packages it imports (left external) resolve from node_modules.
  mkdirSync(join(ROOT, '.bench'), { recursive: true })
  const entry = join(ROOT, '.bench', 'g-argv.mjs')
  await build({
    stdin: {
      contents:
        "export { nixBuildArgv } from './src/nix/expr.ts'\nexport { specArgv } from './src/nix/spec.ts'\n",
      resolveDir: ROOT,
      loader: 'ts'
    },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    outfile: entry,
    logLevel: 'error'
  })
  const { nixBuildArgv, specArgv } = await import(entry)
  cpSync(join(ROOT, 'tests/fixtures/flake'), join(work, 'flake'), { recursive: true })
  const target = { flakeRef: join(work, 'flake'), configuration: 'fixture', display: 'fixture' }
  const env = {
    ...process.env,
    NVV_FIXTURE_GUEST: x86.dir,
    NIX_CONFIG: 'substituters =\nsandbox = false\nbuild-users-group =\n'
  }
  const run = (argv) =>
    new Promise((done, fail) => {
      const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] })
      let err = ''
      child.stderr.on('data', (d) => (err += d))
      child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${argv[0]}: ${err}`))))
    })
  const argvs = (i) => {
    // A fresh key per run: the runner is rebuilt, as on every real run.
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(Date.now()).padStart(20, '0')}${i} bench`
    const common = { target, sshUser: 'root', sshPublicKey: key, hostSystem: 'x86_64-linux' }
    return {
      build: nixBuildArgv({ ...common, outLink: join(work, `result-${i}`) }),
      spec: specArgv(common)
    }
  }
  await run(argvs('warm').build) // the fixture's system derivation, built once for all runs
  const alone = []
  const beside = []
  for (let i = 0; i < RUNS; i++) {
    let t = process.hrtime.bigint()
    await run(argvs(`a${i}`).build)
    alone.push(Number(process.hrtime.bigint() - t) / 1e6)
    const a = argvs(`b${i}`)
    t = process.hrtime.bigint()
    await Promise.all([run(a.build), run(a.spec)])
    beside.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  line(
    'G. the build step of a flake run: nix build alone vs with the spec evaluated beside it',
    alone,
    'nix build',
    beside,
    'nix build + spec'
  )
  rmSync(work, { recursive: true, force: true })
}

if (ONLY.includes('H')) {
  const work = mkdtempSync(join(tmpdir(), 'nvv-bench-h-'))
  const history = join(work, 'history')
  const key = 'nixos-vm-x86_64-linux-tcg'
  const seed = () => {
    rmSync(history, { recursive: true, force: true })
    mkdirSync(history)
    const runs = Array.from({ length: 20 }, (_, i) => ({
      at: new Date(Date.UTC(2026, 10, 1 + i)).toISOString(),
      metrics: { boot: 15_000 + i * 10, userspace: 18_000, sshReady: 15_000, 'stage:ssh': 2000 }
    }))
    writeFileSync(join(history, `${key}.json`), JSON.stringify({ schemaVersion: 1, key, runs }))
  }
  const cli = async (extra, out) => {
    const t = process.hrtime.bigint()
    await new Promise((done, fail) => {
      const child = spawn(
        process.execPath,
        [
          CLI,
          'validate',
          '--runner',
          x86.runner,
          '--ssh-key',
          x86.key,
          '--system',
          'x86_64-linux',
          '--stages',
          'boot,ssh,performance',
          '--accel',
          'tcg',
          '--out',
          out,
          ...extra
        ],
        { stdio: 'ignore' }
      )
      child.on('close', (code) => (code === 0 ? done() : fail(new Error(`the CLI exited ${code}`))))
    })
    return Number(process.hrtime.bigint() - t) / 1e6
  }
  const alone = []
  const withHistory = []
  const probeShare = []
  for (let i = 0; i < RUNS; i++) {
    alone.push(await cli([], join(work, `a${i}`)))
    seed()
    withHistory.push(await cli(['--perf-history', history], join(work, `h${i}`)))
    const r = JSON.parse(readFileSync(join(work, `h${i}`, 'report.json'), 'utf8'))
    const perf = r.stages.find((st) => st.name === 'performance')
    const probe = perf?.checks.find((c) => c.name === 'responsiveness')
    if (perf !== undefined && probe !== undefined)
      probeShare.push(probe.durationMs / perf.durationMs)
  }
  line(
    'H. the performance history: boot+ssh+performance alone vs with --perf-history (20 runs)',
    alone,
    'no history',
    withHistory,
    'compared and recorded'
  )
  console.log(
    `  responsiveness probes: median ${(median(probeShare) * 100).toFixed(0)} % of the performance stage\n`
  )
  results.at(-1).probeShareOfPerformanceStage = median(probeShare)
  rmSync(work, { recursive: true, force: true })
}

mkdirSync(join(ROOT, '.bench'), { recursive: true })
writeFileSync(
  join(ROOT, '.bench/results.json'),
  JSON.stringify({ at: new Date().toISOString(), runs: RUNS, results }, null, 2)
)
console.log('written .bench/results.json')
