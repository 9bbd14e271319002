// The import graph of a set of source files, as the module loader would see
// it: static imports and re-exports, `import x = require()`, `require()`
// calls and dynamic `import()`. Parsed with TypeScript, not matched by a
// regular expression, so a multi-line import or a call inside an expression
// is found too. An import whose specifier is not a literal (`import(name)`,
// `require(prefix + x)`) cannot be followed: it is listed as computed.
import { readFileSync } from 'node:fs'
import { dirname, relative, resolve } from 'node:path'
import ts from 'typescript'

export interface ImportGraph {
  /** Every specifier that is not a relative path, with the file (relative to `root`) that imports it. */
  bare: Map<string, string>
  /** Each import or require whose specifier is computed: `file:line: source text`. */
  computed: string[]
  /** Every file the walk read, relative to `root`. */
  files: string[]
}

/** The module specifier of an import-like node: a string, `null` when computed, `undefined` when not an import. */
function specifierOf (node: ts.Node): ts.Expression | null | undefined {
  if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) return node.moduleSpecifier
  if (ts.isExternalModuleReference(node)) return node.expression
  if (!ts.isCallExpression(node)) return undefined
  const callee = node.expression
  const isImport = callee.kind === ts.SyntaxKind.ImportKeyword
  // require(), require.resolve(), module.require()
  const isRequire = (ts.isIdentifier(callee) && callee.text === 'require') ||
    (ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) &&
      ((callee.expression.text === 'require' && callee.name.text === 'resolve') || (callee.expression.text === 'module' && callee.name.text === 'require')))
  if (!isImport && !isRequire) return undefined
  return node.arguments[0] ?? null
}

export function importGraph (root: string, entries: string[]): ImportGraph {
  const bare = new Map<string, string>()
  const computed: string[] = []
  const seen = new Set<string>()
  const queue = entries.map(f => resolve(root, f))
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
    const visit = (node: ts.Node): void => {
      const spec = specifierOf(node)
      if (spec !== undefined) {
        if (spec !== null && (ts.isStringLiteral(spec) || ts.isNoSubstitutionTemplateLiteral(spec))) {
          if (spec.text.startsWith('.')) queue.push(resolve(dirname(file), spec.text.replace(/\.js$/, '.ts')))
          else bare.set(spec.text, relative(root, file))
        } else {
          const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
          computed.push(`${relative(root, file)}:${line + 1}: ${node.getText(source)}`)
        }
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return { bare, computed, files: [...seen].map(f => relative(root, f)) }
}
