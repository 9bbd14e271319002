import neostandard from 'neostandard'

// The isomorphic core and the client run unbundled in browsers: no Node
// built-in, no Fastify, in their import graph (tsconfig.core.json checks the
// types; this checks the imports).
export const ISOMORPHIC = ['lib/fault.ts', 'lib/status-titles.ts', 'lib/errors.ts', 'lib/problem.ts', 'lib/close-codes.ts', 'lib/range.ts', 'lib/core-exports.ts', 'client/**/*.ts']

const NODE_BUILTINS = [
  'assert', 'async_hooks', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs', 'http',
  'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process', 'querystring', 'readline', 'stream', 'string_decoder',
  'timers', 'tls', 'tty', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib'
]

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', '.tap/**', 'coverage/**']
  }),
  {
    files: ISOMORPHIC,
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*'], message: 'The isomorphic core and the client must not import Node built-ins: browsers load them unbundled.' },
          { group: ['fastify', 'fastify-plugin', '@fastify/*', 'fast-json-stringify'], message: 'The isomorphic core and the client must not import Fastify or server-only packages.' },
          { group: [...NODE_BUILTINS, ...NODE_BUILTINS.map(n => `${n}/*`)], message: 'Node built-in module: not in the isomorphic core or the client.' }
        ]
      }]
    }
  }
]
