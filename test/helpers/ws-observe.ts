import WebSocket from 'ws'

export interface SocketSeen {
  frames: string[]
  code: number
  reason: Buffer
}

/** Connects, collects every frame until the server closes, and resolves with what the peer saw; bounded. */
export function observeSocket (url: string, ms = 10_000): Promise<SocketSeen> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const frames: string[] = []
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('timed out waiting for the close')) }, ms)
    ws.on('error', () => {})
    ws.on('message', data => { frames.push(String(data)) })
    ws.on('close', (code, reason) => {
      clearTimeout(timer)
      resolve({ frames, code, reason })
    })
  })
}
