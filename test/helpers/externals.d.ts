export function inCI (env?: NodeJS.ProcessEnv): boolean
export function redisServerBinary (env?: NodeJS.ProcessEnv): string
export function redisServerRuns (binary?: string): boolean
export function redisUrl (env?: NodeJS.ProcessEnv): string | undefined
export function redisAtHand (env?: NodeJS.ProcessEnv): boolean
