// The environment of a child `node --import tsx` process that must not be a
// tap process: no tap hooks (NODE_OPTIONS, TAP*), no V8 coverage, and
// `_TAPJS_PROCESSINFO_COVERAGE_=0` so tap's merged coverage stays whole. The
// code such a child runs is covered in process by the other tests.
export function plainNodeEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_V8_COVERAGE' && key !== 'NODE_OPTIONS' && !/^_?TAP/i.test(key)))
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
}
