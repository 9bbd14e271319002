// HTTP/2 for tests: Fastify's two `http2: true` servers (h2c, and TLS with
// `allowHTTP1` and a self-signed certificate made here), and two clients
// (Node's `http2` and undici with HTTP/2).
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { generate } from 'selfsigned'
import { Agent, H2CClient, type Dispatcher } from 'undici'
import {
  faultlineBackground, faultlineHttp, faultlineSse, faultlineStream, type Fault, type FaultContext
} from '../../index.js'
import { captureLogs, type LogLine } from './logs.js'

export type H2Mode = 'h2c' | 'tls'
export const H2_MODES: readonly H2Mode[] = ['h2c', 'tls']

export interface Certificate { key: string, cert: string }

let certificate: Promise<Certificate> | undefined

/** A self-signed certificate for 127.0.0.1, made once per process. */
export async function selfSigned (): Promise<Certificate> {
  certificate ??= generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }]
  }).then(pems => ({ key: pems.private, cert: pems.cert }))
  return await certificate
}

export interface H2App {
  mode: H2Mode
  app: FastifyInstance
  url: string
  /** The certificate the TLS server uses (the client's CA); undefined for h2c. */
  ca: string | undefined
  lines: LogLine[]
  reports: Array<{ fault: Fault, context: FaultContext<unknown> }>
}

/**
 * A Fastify `http2: true` app (h2c, or TLS with `allowHTTP1`) with every
 * faultline plugin that HTTP/2 carries, a debug-level captured logger and a
 * recording reporter; listens on loopback, closed when the test ends.
 */
export async function h2App (t: Test, mode: H2Mode, routes: (app: FastifyInstance) => void): Promise<H2App> {
  const logs = captureLogs()
  const reports: H2App['reports'] = []
  const cert = mode === 'tls' ? await selfSigned() : undefined
  const logger = { level: 'debug', stream: logs.stream }
  // forceCloseConnections: on Node < 24 it is what makes fastify.close() close HTTP/2 sessions
  // (gracefully: each waits for its open streams); without it an idle session holds the server.
  const server = cert === undefined
    ? Fastify({ http2: true, logger, forceCloseConnections: true })
    : Fastify({ http2: true, https: { ...cert, allowHTTP1: true }, logger, forceCloseConnections: true })
  // The plugins' types name the HTTP/1.1 server; at run time they serve both.
  const app = server as unknown as FastifyInstance
  await app.register(faultlineHttp, { onFault: (fault, context) => { reports.push({ fault, context }) } })
  await app.register(faultlineStream)
  await app.register(faultlineSse)
  await app.register(faultlineBackground)
  routes(app)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { mode, app, url, ca: cert?.cert, lines: logs.lines, reports }
}

/** A Node `http2` client session to the app; closed when the test ends. */
export async function h2Session (t: Test, h: H2App): Promise<ClientHttp2Session> {
  const session = http2.connect(h.url, h.ca === undefined ? {} : { ca: h.ca })
  session.on('error', () => {})
  t.teardown(() => { if (!session.destroyed) session.destroy() })
  await new Promise((resolve, reject) => {
    session.once('connect', resolve)
    session.once('error', reject)
  })
  return session
}

/** An undici dispatcher that speaks HTTP/2 to the app: h2c by prior knowledge, or TLS negotiated by ALPN. */
export function h2Dispatcher (t: Test, h: H2App): Dispatcher {
  const dispatcher = h.ca === undefined
    ? new H2CClient(h.url)
    : new Agent({ allowH2: true, connect: { ca: h.ca } })
  t.teardown(() => dispatcher.destroy())
  return dispatcher
}

export interface H2Response {
  status: number | undefined
  headers: IncomingHttpHeaders
  body: string
  /** The stream's close code: 0 for a clean end, the RST_STREAM code otherwise. */
  rstCode: number | undefined
  error: Error | undefined
}

export interface H2RequestOptions {
  headers?: OutgoingHttpHeaders
  /** Reset the stream (RST_STREAM CANCEL) once this many body bytes arrived. */
  cancelAfter?: number
  /** Destroy the whole session once this many body bytes arrived. */
  destroyAfter?: number
  /** A bound, not a timing assertion. */
  ms?: number
}

/** One request over `session`; resolves when the stream closes, however it closes. */
export async function h2Request (session: ClientHttp2Session, path: string, options: H2RequestOptions = {}): Promise<H2Response> {
  const { cancelAfter, destroyAfter, ms = 10_000 } = options
  return await new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ...options.headers })
    const out: H2Response = { status: undefined, headers: {}, body: '', rstCode: undefined, error: undefined }
    let received = 0
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`${path}: no close after ${ms} ms (${received} bytes)`)) }, ms)
    req.setEncoding('utf8')
    req.on('response', headers => {
      out.headers = headers
      out.status = headers[':status']
    })
    req.on('data', (chunk: string) => {
      out.body += chunk
      received += Buffer.byteLength(chunk)
      if (cancelAfter !== undefined && received >= cancelAfter && !req.closed) req.close(http2.constants.NGHTTP2_CANCEL)
      if (destroyAfter !== undefined && received >= destroyAfter && !session.destroyed) session.destroy()
    })
    req.on('error', (err: Error) => { out.error = err })
    req.on('close', () => {
      clearTimeout(timer)
      out.rstCode = req.rstCode
      resolve(out)
    })
    req.end()
  })
}

/** Collects the process's warnings while a test runs (Node emits `UnsupportedWarning` for a forbidden HTTP/2 header). */
export function collectWarnings (t: Test): Error[] {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  return warnings
}
