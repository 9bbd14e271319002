import { Writable } from 'node:stream'

export interface LogLine {
  level: number
  msg?: string
  [key: string]: unknown
}

/** A pino destination that keeps every line parsed, for asserting on logs. */
export function captureLogs (): { stream: Writable, lines: LogLine[], faults: () => LogLine[] } {
  const lines: LogLine[] = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line))
      }
      cb()
    }
  })
  return { stream, lines, faults: () => lines.filter(l => l.handled === true) }
}
