/** Values no code should choke on; toFault must adopt each as a 500. */
export function hostileValues (): Array<[string, unknown]> {
  const throwingGetters = Object.create(Error.prototype, {
    message: { get () { throw new Error('message getter') } },
    statusCode: { get () { throw new Error('status getter') } },
    name: { get () { throw new Error('name getter') } }
  })
  const proxy = new Proxy(new Error('proxied'), new Proxy({}, { get () { return () => { throw new Error('trap') } } }))
  const cyclic = new Error('cyclic') as Error & { cause?: unknown }
  const other = new Error('other', { cause: cyclic })
  cyclic.cause = other
  const { proxy: revoked, revoke } = Proxy.revocable({}, {})
  revoke()
  return [
    ['null', null],
    ['undefined', undefined],
    ['a string', 'db password=hunter2'],
    ['a long string', 'x'.repeat(10_000)],
    ['a number', 42],
    ['NaN', Number.NaN],
    ['a bigint', 10n],
    ['a boolean', false],
    ['a symbol', Symbol('secret')],
    ['a function', function thrower () {}],
    ['a plain object', { message: 'plain', secret: 'hunter2' }],
    ['an empty object', {}],
    ['a null-prototype object', Object.create(null)],
    ['an array', [1, 2, 3]],
    ['getters that throw', throwingGetters],
    ['a Proxy that throws on every trap', proxy],
    ['a revoked Proxy', revoked],
    ['a cyclic cause chain', cyclic],
    ['statusCode 200', Object.assign(new Error('ok?'), { statusCode: 200 })],
    ['statusCode 600', Object.assign(new Error('600'), { statusCode: 600 })],
    ['statusCode NaN', Object.assign(new Error('nan'), { statusCode: Number.NaN })],
    ["statusCode '404'", Object.assign(new Error('string status'), { statusCode: '404' })],
    ['statusCode 404.5', Object.assign(new Error('fraction'), { statusCode: 404.5 })],
    ['status -1', Object.assign(new Error('negative'), { status: -1 })]
  ]
}
