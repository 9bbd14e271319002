import { faultClassFor, type CatalogEntry } from './fault.js'
import { closeCodeFor } from './close-codes.js'

// The fault catalog as a docs page: every code in use, what a client sees
// for it on each transport, and which routes declare it. Pure: the http
// plugin hands in the catalog and the routes it saw.

/** One row of the catalog page. */
export interface CatalogDocEntry {
  code: string
  status: number
  title: string
  /** The class name, e.g. `NotFoundError`. */
  name: string
  /** Whether a client sees the fault's message (else only its title). */
  exposed: boolean
  /** Whether retrying may succeed. */
  retryable: boolean
  /** The WebSocket close code it maps to (before any `closeCodes` option of a websocket plugin). */
  closeCode: number
  /** Routes declaring it in their `faults` option, e.g. `GET /users/:id`. */
  routes: string[]
}

/**
 * The catalog with each class's defaults. Defaults come from one instance of
 * the class (the constructor is the one place they are decided); every
 * cataloged class is a built-in or a `defineFault`, built without arguments.
 */
export function catalogDocument (entries: readonly CatalogEntry[], routesByCode: ReadonlyMap<string, readonly string[]>): CatalogDocEntry[] {
  return entries.map(entry => {
    // `entries` come from faultCatalog(): each has its class.
    const sample = new (faultClassFor(entry.code)!)()
    return {
      code: entry.code,
      status: entry.status,
      title: entry.title,
      name: entry.name,
      exposed: sample.expose,
      retryable: sample.retryable,
      closeCode: closeCodeFor(sample),
      routes: [...(routesByCode.get(entry.code) ?? [])]
    }
  })
}

const HEADER = '| code | status | title | exposed | retryable | close code | routes |\n|---|---|---|---|---|---|---|\n'

/** The catalog page as a Markdown table. Cell text is escaped: codes and titles come from code, routes from paths. */
export function catalogMarkdown (doc: readonly CatalogDocEntry[]): string {
  let out = '# Fault catalog\n\n' + HEADER
  for (const e of doc) {
    const routes = e.routes.length === 0 ? '' : e.routes.map(r => '`' + cell(r).replace(/`/g, "'") + '`').join('<br>')
    out += `| \`${cell(e.code).replace(/`/g, "'")}\` | ${e.status} | ${cell(e.title)} | ${yesNo(e.exposed)} | ${yesNo(e.retryable)} | ${e.closeCode} | ${routes} |\n`
  }
  return out
}

function yesNo (value: boolean): string {
  return value ? 'yes' : 'no'
}

/** One table cell: no line breaks, no cell separators, no HTML. */
function cell (text: string): string {
  return text.replace(/[\r\n\u2028\u2029]+/g, ' ').replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
