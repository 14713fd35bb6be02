import { accessSync, constants, realpathSync, statSync } from 'node:fs'
import { isAbsolute, relative, resolve } from 'node:path'
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node, type Pair } from 'yaml'
import { InputError, errorMessage } from '../util/errors.js'
import { parseDuration } from '../util/duration.js'
import { STORE_PATH } from './substitute.js'
import type {
  ChecksConfig,
  CommandSpec,
  DockerSpec,
  E2eSpec,
  HomeManagerSpec,
  NetworkSpec,
  PerformanceBudget,
  SubstituteSpec,
  PerformanceSpec,
  ServiceSpec,
  SystemSpec,
  UserSpec
} from './config.js'

/** Top-level sections of a checks file (every one optional). */
export const SECTIONS = [
  'system',
  'services',
  'docker',
  'users',
  'homeManager',
  'packages',
  'commands',
  'network',
  'performance',
  'e2e'
] as const

/** Per-check timeouts when the file gives none. */
export const DEFAULT_TIMEOUTS = {
  system: 5 * 60_000,
  service: 60_000,
  docker: 60_000,
  user: 30_000,
  homeManager: 2 * 60_000,
  command: 60_000,
  network: 30_000,
  /** Realising a package: Nix starts, downloads and unpacks, slowly under emulation. */
  substitute: 3 * 60_000,
  performance: 5 * 60_000,
  e2e: 10 * 60_000
} as const

const SERVICE_KEYS = ['unit', 'user', 'timeout']
const SYSTEM_KEYS = ['timeout']
const DOCKER_KEYS = ['users', 'timeout']
const USER_KEYS = ['name', 'groups', 'shell', 'home', 'timeout']
const HOME_MANAGER_KEYS = ['user', 'files', 'timeout']
const COMMAND_KEYS = ['name', 'run', 'expect', 'user', 'timeout']
const NETWORK_KEYS = ['resolve', 'urls', 'substitute', 'timeout']
const SUBSTITUTE_KEYS = ['package', 'path', 'run', 'expect', 'timeout']
const PACKAGE_ATTR = /^[A-Za-z_][\w'-]*(\.[A-Za-z_][\w'-]*)*$/
const RELATIVE_RUN = /^(?!\/)(?!.*(^|\/)\.\.(\/|\s|$))\S+(\s.*)?$/s
const PERFORMANCE_KEYS = [
  'bootTime',
  'kernel',
  'initrd',
  'userspace',
  'sshReady',
  'memoryUsedMiB',
  'timeout'
]
const E2E_KEYS = ['script', 'user', 'timeout']

const USER_NAME = /^[a-z_][a-z0-9_.-]*\$?$/i
const UNIT_NAME = /^[\w:.@\\-]+$/
const HOST_NAME = /^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?$/i
const MAX_ERRORS = 20

export interface ParseOptions {
  /** Absolute path (recorded in the config). */
  source?: string
  /** How messages and annotations name the file. */
  label: string
  /** Repository root: e2e script paths are relative to it. */
  root: string
  /** Require e2e scripts to exist and be executable now (the e2e stage will run). */
  checkScripts?: boolean
}

type Entry = { key: Pair<Node, Node | null>; value: Node | null }

/**
 * Why an e2e script path is refused, if it is: outside the repository root (`..`, an absolute
 * path, or — when the file must exist — a symlink that leads out), or not a readable regular file.
 */
function scriptProblem(
  script: string,
  abs: string,
  root: string,
  mustExist: boolean
): string | undefined {
  const inside = (path: string, dir: string): boolean => {
    const rel = relative(dir, path)
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)
  }
  const where = `paths are relative to the repository root ${root} and stay inside it`
  if (isAbsolute(script) || !inside(abs, root))
    return `${script}: outside the repository (${where})`
  if (!mustExist) return undefined
  let real: string
  try {
    real = realpathSync(abs)
  } catch {
    return `${script}: no such file (${where})`
  }
  if (!inside(real, realpathSync(root)))
    return `${script}: leads outside the repository (to ${real}; ${where})`
  try {
    if (!statSync(real).isFile()) return `${script}: not a regular file`
    accessSync(real, constants.R_OK)
  } catch {
    return `${script}: cannot be read`
  }
  return undefined
}

/** Walks the YAML document, collecting every error with its line. */
class Reader {
  private readonly found: { line: number; text: string }[] = []
  constructor(
    private readonly label: string,
    private readonly lines: LineCounter
  ) {}

  line(node: Node | Pair | null | undefined): number | undefined {
    const at = node !== null && node !== undefined && 'range' in node ? node.range?.[0] : undefined
    const k =
      node !== null && node !== undefined && 'key' in node ? (node.key as Node | null) : undefined
    const offset = at ?? k?.range?.[0]
    return offset === undefined ? undefined : this.lines.linePos(offset).line
  }

  error(node: Node | Pair | null | undefined, path: string, message: string): void {
    const line = this.line(node)
    this.found.push({
      line: line ?? 0,
      text: `${this.label}${line !== undefined ? `:${line}` : ''}: ${path}: ${message}`
    })
  }

  /** In file order. */
  get errors(): string[] {
    return [...this.found].sort((a, b) => a.line - b.line).map((e) => e.text)
  }

  /** A mapping with only `keys`; `required` ones must be present. */
  map(
    node: Node | null,
    path: string,
    keys: readonly string[],
    required: readonly string[] = []
  ): Map<string, Entry> | undefined {
    if (!isMap(node)) {
      this.error(
        node,
        path,
        `expected a mapping with keys ${keys.join(', ')}, got ${describe(node)} (allowed keys: ${keys.join(', ')})`
      )
      return undefined
    }
    const out = new Map<string, Entry>()
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null
      const name = isScalar(keyNode) ? String(keyNode.value) : undefined
      if (name === undefined || !keys.includes(name)) {
        const shown = name ?? describe(keyNode)
        const hint = name !== undefined ? closest(name, keys) : undefined
        this.error(
          keyNode ?? node,
          path,
          `unknown key "${shown}"${hint !== undefined ? ` (did you mean "${hint}"?)` : ''} (allowed keys: ${keys.join(', ')})`
        )
        continue
      }
      out.set(name, { key: pair as Pair<Node, Node | null>, value: pair.value as Node | null })
    }
    for (const r of required) {
      if (!out.has(r))
        this.error(node, path, `missing required key "${r}" (allowed keys: ${keys.join(', ')})`)
    }
    return out
  }

  /** A sequence; null (an empty `key:`) is an empty list. */
  seq(node: Node | null, path: string, what: string): Node[] | undefined {
    if (node === null || (isScalar(node) && node.value === null)) return []
    if (!isSeq(node)) {
      this.error(node, path, `expected a list of ${what}, got ${describe(node)}`)
      return undefined
    }
    return node.items as Node[]
  }

  str(node: Node | null, path: string, pattern?: RegExp, what = 'a string'): string | undefined {
    if (
      !isScalar(node) ||
      node.value === null ||
      typeof node.value === 'object' ||
      typeof node.value === 'boolean'
    ) {
      this.error(node, path, `expected ${what}, got ${describe(node)}`)
      return undefined
    }
    const s = String(node.value)
    if (s.trim() === '' || (pattern !== undefined && !pattern.test(s))) {
      this.error(node, path, `"${s}" is not ${what}`)
      return undefined
    }
    return s
  }

  /** A regular expression (matched multi-line against a command's output). */
  regex(node: Node | null, path: string): string | undefined {
    const re = this.str(node, path, undefined, 'a regular expression')
    if (re === undefined) return undefined
    try {
      new RegExp(re, 'm')
      return re
    } catch (err) {
      this.error(node, path, `not a valid regular expression: ${errorMessage(err)}`)
      return undefined
    }
  }

  strList(
    node: Node | null,
    path: string,
    pattern?: RegExp,
    what = 'a string'
  ): { value: string; line?: number }[] {
    const items = this.seq(node, path, `${what}s`) ?? []
    const out: { value: string; line?: number }[] = []
    items.forEach((item, i) => {
      const value = this.str(item, `${path}[${i}]`, pattern, what)
      if (value !== undefined) out.push({ value, line: this.line(item) })
    })
    return out
  }

  duration(node: Node | null, path: string): number | undefined {
    if (isScalar(node) && typeof node.value === 'number') {
      if (node.value > 0) return Math.round(node.value * 1000)
    } else if (isScalar(node) && typeof node.value === 'string') {
      try {
        const ms = parseDuration(node.value, path)
        if (ms > 0) return ms
      } catch {
        // reported below with the line
      }
    }
    this.error(
      node,
      path,
      `${describe(node)} is not a positive duration; use seconds or units ms, s, m, h (e.g. 30s, 5m, 1m30s)`
    )
    return undefined
  }

  number(node: Node | null, path: string): number | undefined {
    if (isScalar(node) && typeof node.value === 'number' && node.value > 0) return node.value
    this.error(node, path, `expected a positive number, got ${describe(node)}`)
    return undefined
  }
}

function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing'
  if (isMap(node)) return 'a mapping'
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) {
    if (node.value === null) return 'nothing'
    return typeof node.value === 'string'
      ? `"${node.value}"`
      : `${typeof node.value} ${String(node.value)}`
  }
  return 'an alias'
}

/** The allowed key one edit-ish away, for "did you mean" (case or a small typo). */
function closest(name: string, keys: readonly string[]): string | undefined {
  const lower = name.toLowerCase().replace(/[-_]/g, '')
  const exact = keys.find((k) => k.toLowerCase() === lower)
  if (exact !== undefined) return exact
  let best: { key: string; d: number } | undefined
  for (const k of keys) {
    const d = editDistance(lower, k.toLowerCase())
    if (d <= 2 && (best === undefined || d < best.d)) best = { key: k, d }
  }
  return best?.key
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]
}

/**
 * Parses and validates a checks file. Every error names `label:LINE`, the key path and the
 * allowed keys; all errors are reported at once in one InputError.
 * Sections the file leaves out are not checked, except `system` and `performance`: they name
 * nothing guest-specific, so they run with their defaults (performance then only records).
 */
export function parseChecks(text: string, o: ParseOptions): ChecksConfig {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const msgs = doc.errors.slice(0, MAX_ERRORS).map((e) => {
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0])
      return `${o.label}${pos !== undefined ? `:${pos.line}:${pos.col}` : ''}: YAML syntax: ${e.message.split('\n')[0]}`
    })
    throw new InputError(msgs.join('\n'))
  }
  const r = new Reader(o.label, lines)
  const file = o.label
  const at = (node: Node | Pair | null | undefined): { file: string; line?: number } => ({
    file,
    line: r.line(node)
  })
  const config: ChecksConfig = {
    source: o.source,
    label: o.label,
    system: { timeoutMs: DEFAULT_TIMEOUTS.system },
    services: [],
    users: [],
    homeManager: [],
    packages: [],
    commands: [],
    performance: { timeoutMs: DEFAULT_TIMEOUTS.performance, lines: {} },
    e2e: []
  }
  const root = doc.contents as Node | null
  if (root === null || (isScalar(root) && root.value === null)) return config
  const top = r.map(root, '(top level)', SECTIONS)
  if (top === undefined) throw new InputError(r.errors.join('\n'))

  const timeoutOf = (m: Map<string, Entry>, path: string, fallback: number): number => {
    const t = m.get('timeout')
    return t === undefined ? fallback : (r.duration(t.value, `${path}.timeout`) ?? fallback)
  }

  for (const [section, { key, value }] of top) {
    switch (section) {
      case 'system': {
        const m = r.map(value, 'system', SYSTEM_KEYS)
        if (m === undefined) break
        config.system = {
          ...at(key),
          timeoutMs: timeoutOf(m, 'system', DEFAULT_TIMEOUTS.system)
        } satisfies SystemSpec
        break
      }
      case 'services': {
        r.seq(value, 'services', 'units (a unit name or {unit, user, timeout})')?.forEach(
          (item, i) => {
            const path = `services[${i}]`
            if (isScalar(item)) {
              const unit = r.str(item, path, UNIT_NAME, 'a systemd unit name')
              if (unit !== undefined)
                config.services.push({ ...at(item), unit, timeoutMs: DEFAULT_TIMEOUTS.service })
              return
            }
            const m = r.map(item, path, SERVICE_KEYS, ['unit'])
            if (m === undefined) return
            const unit = m.has('unit')
              ? r.str(
                  m.get('unit')?.value ?? null,
                  `${path}.unit`,
                  UNIT_NAME,
                  'a systemd unit name'
                )
              : undefined
            const user = m.has('user')
              ? r.str(m.get('user')?.value ?? null, `${path}.user`, USER_NAME, 'a user name')
              : undefined
            const spec: ServiceSpec = {
              ...at(item),
              unit: unit ?? '',
              timeoutMs: timeoutOf(m, path, DEFAULT_TIMEOUTS.service)
            }
            if (user !== undefined) spec.user = user
            if (unit !== undefined) config.services.push(spec)
          }
        )
        break
      }
      case 'docker': {
        const m = r.map(value, 'docker', DOCKER_KEYS)
        if (m === undefined) break
        const users = m.has('users')
          ? r.strList(m.get('users')?.value ?? null, 'docker.users', USER_NAME, 'a user name')
          : []
        config.docker = {
          ...at(key),
          users: users.map((u) => ({ name: u.value, file, line: u.line })),
          timeoutMs: timeoutOf(m, 'docker', DEFAULT_TIMEOUTS.docker)
        } satisfies DockerSpec
        break
      }
      case 'users': {
        r.seq(value, 'users', 'users ({name, groups, shell, home})')?.forEach((item, i) => {
          const path = `users[${i}]`
          const m = r.map(item, path, USER_KEYS, ['name'])
          if (m === undefined) return
          const name = m.has('name')
            ? r.str(m.get('name')?.value ?? null, `${path}.name`, USER_NAME, 'a user name')
            : undefined
          if (name === undefined) return
          const spec: UserSpec = {
            ...at(item),
            name,
            timeoutMs: timeoutOf(m, path, DEFAULT_TIMEOUTS.user)
          }
          if (m.has('groups'))
            spec.groups = r
              .strList(m.get('groups')?.value ?? null, `${path}.groups`, USER_NAME, 'a group name')
              .map((g) => g.value)
          if (m.has('shell'))
            spec.shell = r.str(
              m.get('shell')?.value ?? null,
              `${path}.shell`,
              /^[^\s]+$/,
              'a shell (bash or /path/to/bash)'
            )
          if (m.has('home'))
            spec.home = r.str(
              m.get('home')?.value ?? null,
              `${path}.home`,
              /^\/\S*$/,
              'an absolute path'
            )
          config.users.push(spec)
        })
        break
      }
      case 'homeManager': {
        r.seq(value, 'homeManager', 'entries ({user, files})')?.forEach((item, i) => {
          const path = `homeManager[${i}]`
          const m = r.map(item, path, HOME_MANAGER_KEYS, ['user'])
          if (m === undefined) return
          const user = m.has('user')
            ? r.str(m.get('user')?.value ?? null, `${path}.user`, USER_NAME, 'a user name')
            : undefined
          const files = m.has('files')
            ? r.strList(
                m.get('files')?.value ?? null,
                `${path}.files`,
                /^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/,
                'a path relative to the home directory'
              )
            : []
          if (user === undefined) return
          config.homeManager.push({
            ...at(item),
            user,
            files: files.map((f) => ({ path: f.value, file, line: f.line })),
            timeoutMs: timeoutOf(m, path, DEFAULT_TIMEOUTS.homeManager)
          } satisfies HomeManagerSpec)
        })
        break
      }
      case 'packages':
      case 'commands': {
        const list = section === 'packages' ? config.packages : config.commands
        r.seq(value, section, 'commands ({name, run, expect, user, timeout})')?.forEach(
          (item, i) => {
            const path = `${section}[${i}]`
            const m = r.map(item, path, COMMAND_KEYS, ['name', 'run'])
            if (m === undefined) return
            const name = m.has('name')
              ? r.str(m.get('name')?.value ?? null, `${path}.name`)
              : undefined
            const run = m.has('run')
              ? r.str(m.get('run')?.value ?? null, `${path}.run`, undefined, 'a shell command')
              : undefined
            const spec: CommandSpec = {
              ...at(item),
              name: name ?? '',
              run: run ?? '',
              timeoutMs: timeoutOf(m, path, DEFAULT_TIMEOUTS.command)
            }
            const expect = m.get('expect')
            if (expect !== undefined) spec.expect = r.regex(expect.value, `${path}.expect`)
            if (m.has('user'))
              spec.user = r.str(
                m.get('user')?.value ?? null,
                `${path}.user`,
                USER_NAME,
                'a user name'
              )
            if (name !== undefined && run !== undefined) list.push(spec)
          }
        )
        break
      }
      case 'network': {
        const m = r.map(value, 'network', NETWORK_KEYS)
        if (m === undefined) break
        const resolveList = m.has('resolve')
          ? r.strList(m.get('resolve')?.value ?? null, 'network.resolve', HOST_NAME, 'a host name')
          : []
        const urls = m.has('urls')
          ? r.strList(
              m.get('urls')?.value ?? null,
              'network.urls',
              /^https?:\/\/[^\s/]+\S*$/,
              'an http:// or https:// URL'
            )
          : []
        const substitute: SubstituteSpec[] = []
        const subs = m.get('substitute')
        r.seq(
          subs?.value ?? null,
          'network.substitute',
          'packages (an attribute such as hello, or {package|path, run, expect, timeout})'
        )?.forEach((item, i) => {
          const path = `network.substitute[${i}]`
          const what = 'a package attribute (hello, python3Packages.requests)'
          if (isScalar(item)) {
            const pkg = r.str(item, path, PACKAGE_ATTR, what)
            if (pkg !== undefined)
              substitute.push({ ...at(item), package: pkg, timeoutMs: DEFAULT_TIMEOUTS.substitute })
            return
          }
          const e = r.map(item, path, SUBSTITUTE_KEYS)
          if (e === undefined) return
          const spec: SubstituteSpec = {
            ...at(item),
            timeoutMs: timeoutOf(e, path, DEFAULT_TIMEOUTS.substitute)
          }
          if (e.has('package') === e.has('path')) {
            r.error(
              item,
              path,
              `give exactly one of "package" (evaluated from the configuration's pkgs) or "path" (a /nix/store path)`
            )
            return
          }
          if (e.has('package'))
            spec.package = r.str(
              e.get('package')?.value ?? null,
              `${path}.package`,
              PACKAGE_ATTR,
              what
            )
          if (e.has('path'))
            spec.path = r.str(
              e.get('path')?.value ?? null,
              `${path}.path`,
              STORE_PATH,
              'a store path (/nix/store/<hash>-<name>)'
            )
          if (e.has('run'))
            spec.run = r.str(
              e.get('run')?.value ?? null,
              `${path}.run`,
              RELATIVE_RUN,
              "a file of the package and its arguments (bin/hello --version), relative, without '..'"
            )
          const expect = e.get('expect')
          if (expect !== undefined) spec.expect = r.regex(expect.value, `${path}.expect`)
          if (spec.package !== undefined || spec.path !== undefined) substitute.push(spec)
        })
        config.network = {
          resolve: resolveList.map((h) => ({ name: h.value, file, line: h.line })),
          urls: urls.map((u) => ({ url: u.value, file, line: u.line })),
          ...(substitute.length > 0 ? { substitute } : {}),
          timeoutMs: timeoutOf(m, 'network', DEFAULT_TIMEOUTS.network)
        } satisfies NetworkSpec
        break
      }
      case 'performance': {
        const m = r.map(value, 'performance', PERFORMANCE_KEYS)
        if (m === undefined) break
        const p: PerformanceSpec = {
          ...at(key),
          timeoutMs: timeoutOf(m, 'performance', DEFAULT_TIMEOUTS.performance),
          lines: {}
        }
        const budget = (
          k: Exclude<PerformanceBudget, 'memoryUsedMiB'>,
          field: 'bootTimeMs' | 'kernelMs' | 'initrdMs' | 'userspaceMs' | 'sshReadyMs'
        ): void => {
          const e = m.get(k)
          if (e === undefined) return
          p[field] = r.duration(e.value, `performance.${k}`)
          p.lines[k] = r.line(e.key)
        }
        budget('bootTime', 'bootTimeMs')
        budget('kernel', 'kernelMs')
        budget('initrd', 'initrdMs')
        budget('userspace', 'userspaceMs')
        budget('sshReady', 'sshReadyMs')
        const mem = m.get('memoryUsedMiB')
        if (mem !== undefined) {
          p.memoryUsedMiB = r.number(mem.value, 'performance.memoryUsedMiB')
          p.lines.memoryUsedMiB = r.line(mem.key)
        }
        config.performance = p
        break
      }
      case 'e2e': {
        r.seq(value, 'e2e', 'scripts ({script, user, timeout})')?.forEach((item, i) => {
          const path = `e2e[${i}]`
          const m = r.map(item, path, E2E_KEYS, ['script'])
          if (m === undefined) return
          const scriptNode = m.get('script')?.value ?? null
          const script = m.has('script')
            ? r.str(scriptNode, `${path}.script`, undefined, 'a script path')
            : undefined
          if (script === undefined) return
          const abs = resolve(o.root, script)
          // The script is copied into the guest and run there: only files of the repository.
          const problem = scriptProblem(script, abs, o.root, o.checkScripts === true)
          if (problem !== undefined) {
            r.error(scriptNode, `${path}.script`, problem)
            return
          }
          const spec: E2eSpec = {
            ...at(item),
            script,
            path: abs,
            timeoutMs: timeoutOf(m, path, DEFAULT_TIMEOUTS.e2e)
          }
          if (m.has('user'))
            spec.user = r.str(
              m.get('user')?.value ?? null,
              `${path}.user`,
              USER_NAME,
              'a user name'
            )
          config.e2e.push(spec)
        })
        break
      }
    }
    if (r.errors.length >= MAX_ERRORS) break
  }
  if (r.errors.length > 0) {
    const shown = r.errors.slice(0, MAX_ERRORS)
    throw new InputError(
      shown.join('\n') +
        (r.errors.length > MAX_ERRORS ? `\n… ${r.errors.length - MAX_ERRORS} more` : '')
    )
  }
  return config
}
