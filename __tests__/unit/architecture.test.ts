// The shape of src/ that docs/architecture.md promises, checked on every run: no import cycle, the
// engine (pipeline/, vm/, ssh/, checks/, report/) never reaches a front end or @actions/*, and no
// function grows past a page.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'

const SRC = resolve('src')
const MAX_FUNCTION_LINES = 80
const ENGINE = ['pipeline', 'vm', 'ssh', 'checks', 'report', 'rollup']
const FRONT_ENDS = ['action', 'cli']

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

interface Module {
  readonly file: string
  readonly source: ts.SourceFile
  readonly imports: readonly string[]
}

function specifiers(source: ts.SourceFile): string[] {
  const found: string[] = []
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text)
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      found.push(node.arguments[0].text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

function load(): Map<string, Module> {
  const modules = new Map<string, Module>()
  for (const path of sourceFiles(SRC)) {
    const file = relative(SRC, path)
    const source = ts.createSourceFile(
      file,
      readFileSync(path, 'utf8'),
      ts.ScriptTarget.Latest,
      true
    )
    modules.set(file, { file, source, imports: specifiers(source) })
  }
  return modules
}

const modules = load()

function localTarget(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined
  return relative(SRC, resolve(SRC, dirname(from), specifier)).replace(/\.js$/, '.ts')
}

/** Strongly connected components with more than one member (or a self-import): the cycles. */
function cycles(): string[][] {
  const graph = new Map<string, string[]>()
  for (const [file, mod] of modules) {
    const targets = mod.imports.map((s) => localTarget(file, s)).filter((t): t is string => !!t)
    graph.set(
      file,
      targets.filter((t) => modules.has(t))
    )
  }
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const connect = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) !== index.get(v)) return
    const component: string[] = []
    let w: string
    do {
      w = stack.pop()!
      onStack.delete(w)
      component.push(w)
    } while (w !== v)
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort())
  }
  for (const v of graph.keys()) if (!index.has(v)) connect(v)
  return found
}

function isFunctionLike(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isArrowFunction(node) ||
    ts.isFunctionExpression(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  )
}

function longFunctions(): string[] {
  const found: string[] = []
  for (const { file, source } of modules.values()) {
    const visit = (node: ts.Node): void => {
      if (isFunctionLike(node) && node.body) {
        const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line
        const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
        const lines = end - start + 1
        if (lines > MAX_FUNCTION_LINES) found.push(`${file}:${start + 1} (${lines} lines)`)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return found
}

describe('architecture of src/', () => {
  it('finds the modules it checks', () => {
    expect(modules.size).toBeGreaterThan(50)
    expect([...modules.keys()]).toContain('pipeline/validate.ts')
  })

  it('has no import cycle', () => {
    expect(cycles()).toEqual([])
  })

  it('keeps the engine free of front ends and @actions/*', () => {
    const offending: string[] = []
    for (const [file, mod] of modules) {
      if (!ENGINE.includes(file.split('/')[0]!)) continue
      for (const specifier of mod.imports) {
        const target = localTarget(file, specifier)
        const top = target?.split('/')[0]
        if (specifier.startsWith('@actions/') || (top && FRONT_ENDS.includes(top))) {
          offending.push(`${file} → ${specifier}`)
        }
      }
    }
    expect(offending).toEqual([])
  })

  it(`has no function over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(longFunctions()).toEqual([])
  })

  it('cites only documents that are in this repository', () => {
    const missing: string[] = []
    for (const { file, source } of modules.values()) {
      for (const [cited] of source.text.matchAll(
        /\b(?:docs\/[\w./-]+\.md|(?:design|field-notes|style)\.md)\b/g
      )) {
        if (!existsSync(resolve(cited))) missing.push(`${file}: ${cited}`)
      }
    }
    expect(missing).toEqual([])
  })
})
