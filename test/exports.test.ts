// The two entry points share one list of core exports (lib/core-exports.ts):
// a fault class added to the taxonomy must reach fastify-faultline and
// fastify-faultline/client alike, as the very same class.
import t from 'tap'
import * as taxonomy from '../lib/fault.js'
import * as shared from '../lib/core-exports.js'
import * as root from '../index.js'
import * as client from '../client/index.js'

const entries = { 'fastify-faultline': root, 'fastify-faultline/client': client } as Record<string, Record<string, unknown>>

t.test('every fault class of the taxonomy is exported by both entry points, the same class', async t => {
  const classes = Object.entries(taxonomy).filter(([, value]) =>
    value === taxonomy.Fault || (typeof value === 'function' && value.prototype instanceof taxonomy.Fault))
  t.ok(classes.length >= 24, `${classes.length} fault classes`)
  for (const [name, cls] of classes) {
    for (const [entry, exports] of Object.entries(entries)) t.equal(exports[name], cls, `${entry} exports ${name}`)
  }
})

t.test('every shared core export is in both entry points, by the same name and value', async t => {
  const names = Object.keys(shared)
  t.ok(names.includes('faultFromProblem') && names.includes('faultFromClose') && names.includes('defineFault'))
  for (const name of names) {
    for (const [entry, exports] of Object.entries(entries)) t.equal(exports[name], (shared as Record<string, unknown>)[name], `${entry} exports ${name}`)
  }
})
