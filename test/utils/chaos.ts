import { createServer, connect, type Server, type Socket } from 'node:net'
import { createChatConnection, type ChatConnection, type ChatTransport } from '../../src/runtime/app/chatConnection'
import { newGuestKey } from '../../src/runtime/app/identity'
import { until } from './clients'

export const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** A small seeded PRNG (mulberry32), so a failing chaos run can be replayed with its seed. */
export function seededRandom(seed: number) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A TCP proxy in front of a server: clients connect to it, and a test cuts their connections
 * at will (both ends see the drop, as with a network failure). The target port is read per
 * connection, so the proxy survives server restarts.
 */
export interface CutProxy {
  port: number
  base: string
  /** Open client↔server connections. */
  readonly open: number
  /** Destroy one random open connection; false when none was open. */
  cut: (random?: () => number) => boolean
  close: () => Promise<void>
}

export async function startProxy(targetPort: () => number): Promise<CutProxy> {
  const pairs = new Set<[Socket, Socket]>()
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort(), '127.0.0.1')
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    for (const socket of pair) {
      socket.setNoDelay(true)
      socket.on('error', end)
      socket.on('close', end)
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    get open() {
      return pairs.size
    },
    cut(random = Math.random) {
      const list = [...pairs]
      if (!list.length) return false
      const pair = list[Math.floor(random() * list.length)]!
      const [client, upstream] = pair
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
      return true
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy()
        upstream.destroy()
      }
      await new Promise(resolve => server.close(resolve))
    },
  }
}

/**
 * A minimal EventSource on fetch, for Node without a global one: `onopen`, `onmessage` (data and
 * `lastEventId`), and `onerror` once when the stream fails or ends. It does not reconnect by
 * itself; the chat connection closes it on error and reconnects with its own backoff anyway.
 */
export class FetchEventSource {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSED = 2
  readyState = 0
  onopen: ((event: Event) => void) | null = null
  onmessage: ((event: MessageEvent) => void) | null = null
  onerror: ((event: Event) => void) | null = null
  lastEventId = ''
  #abort = new AbortController()

  constructor(readonly url: string | URL) {
    void this.#run()
  }

  async #run() {
    try {
      // As a browser's EventSource on the app's own page (Fetch Metadata): such a stream makes a read position.
      const response = await fetch(this.url, { headers: { 'accept': 'text/event-stream', 'sec-fetch-site': 'same-origin' }, signal: this.#abort.signal })
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`)
      if (this.readyState === 2) return
      this.readyState = 1
      this.onopen?.(new Event('open'))
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (!line || line.startsWith(':')) continue
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            let text = colon < 0 ? '' : line.slice(colon + 1)
            if (text.startsWith(' ')) text = text.slice(1)
            if (field === 'data') data.push(text)
            else if (field === 'id') this.lastEventId = text
          }
          if (data.length && this.readyState === 1) this.onmessage?.(new MessageEvent('message', { data: data.join('\n'), lastEventId: this.lastEventId }))
        }
      }
    }
    catch {
      // Network failure or close(): reported below.
    }
    if (this.readyState !== 2) {
      this.readyState = 2
      this.onerror?.(new Event('error'))
    }
  }

  close() {
    this.readyState = 2
    this.#abort.abort()
  }
}

/** Make `EventSource` available to the real client code (Node has none without a flag). */
export function installEventSource() {
  const global = globalThis as { EventSource?: unknown }
  global.EventSource ??= FetchEventSource
}

/** The real client (`createChatConnection`, what `useChat()` runs), pointed at `baseURL`. */
export function chatClient(baseURL: string, room: string, name: string, transport: ChatTransport): ChatConnection {
  return createChatConnection({
    room,
    name,
    transport,
    route: '/_ws',
    sseRoute: '/api/sse',
    maxMessages: 100_000,
    maxQueue: 10_000,
    maxLength: 2000,
    autoReconnect: { delay: 50, maxDelay: 500 },
    heartbeat: { interval: 2000, timeout: 2000 },
    typingTimeout: 3000,
    // Each client is its own guest (its own tab), kept across reconnects.
    guestKey: newGuestKey(),
    baseURL,
  })
}

/** Stored (acknowledged) messages a client holds, in its log's order. */
export function storedOf(connection: ChatConnection) {
  return connection.messages.value.filter(message => message.id !== undefined && !message.pending)
}

/** Wait until every client holds `count` stored messages and has nothing left to send. */
export async function settle(clients: { name: string, connection: ChatConnection }[], count: number, timeout: number) {
  try {
    await until(() => clients.every(({ connection }) => connection.queued === 0 && storedOf(connection).length >= count), `${count} messages on every client`, timeout)
  }
  catch (error) {
    const state = clients.map(({ name, connection }) => {
      const ids = new Set(storedOf(connection).map(message => message.id!))
      const missing: number[] = []
      for (let id = 1; id <= count && missing.length < 20; id++) if (!ids.has(id)) missing.push(id)
      return `${name}: ${ids.size} stored, ${connection.queued} queued, ${connection.status.value}, missing ${missing.join(',')}`
    })
    throw new Error(`${(error as Error).message}\n${state.join('\n')}`, { cause: error })
  }
}

/**
 * The chaos both durability runs share: SIGKILL and restart the server once `progress.sent()`
 * passes each of `restartAt`, and cut connections at random, until `progress.sending()` is false.
 */
export function crashAndCut(server: { stop: (signal: NodeJS.Signals) => Promise<void>, start: () => Promise<void> }, proxy: CutProxy, random: () => number, restartAt: number[], progress: { sent: () => number, sending: () => boolean }) {
  const counts = { restarts: 0, cuts: 0 }
  const due = [...restartAt]
  const done = (async () => {
    while (progress.sending()) {
      if (due.length && progress.sent() >= due[0]!) {
        due.shift()
        await server.stop('SIGKILL')
        await sleep(50 + random() * 250)
        await server.start()
        counts.restarts++
      }
      await sleep(20 + random() * 100)
      if (proxy.cut(random)) counts.cuts++
    }
  })()
  return { counts, done }
}
