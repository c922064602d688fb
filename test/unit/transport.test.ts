import { describe, expect, it } from 'vitest'
import * as wsModule from 'ws'
import { EventEmitter, once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { encodeTextFrame, RoomFrame } from '../../src/runtime/server/transport/frame'
import { backlogOf, memoizeWebSocketResolver, rawWebSocket, releaseUpgradeRequest, transportStats, upgradeRefusal, upgradeSocket, writeFramed } from '../../src/runtime/server/transport/internals'
import { ChatSocket } from '../../src/runtime/server/transport/leanServer'
import { PeerTransport } from '../../src/runtime/server/transport/peerTransport'

// ws ships its frame parser but its types do not declare it.
const { Receiver } = wsModule as unknown as { Receiver: new (options: { isServer: boolean }) => NodeJS.EventEmitter & { write: (chunk: Buffer) => void } }

/** Decode frames with ws's own parser (as a client would). */
function decode(bytes: Buffer): { text: string, binary: boolean }[] {
  const receiver = new Receiver({ isServer: false })
  const out: { text: string, binary: boolean }[] = []
  receiver.on('message', (data: Buffer, binary: boolean) => out.push({ text: data.toString(), binary }))
  receiver.write(bytes)
  return out
}

describe('encodeTextFrame', () => {
  it.each([0, 1, 125, 126, 1000, 65535, 65536, 200_000])('frames %i bytes as one text frame ws can read', (size) => {
    const text = 'é'.repeat(Math.floor(size / 2)) + (size % 2 ? 'x' : '')
    const decoded = decode(encodeTextFrame(Buffer.from(text)))
    expect(decoded).toEqual([{ text, binary: false }])
  })
  it('frames back to back on one stream', () => {
    const stream = Buffer.concat(['a', 'b'.repeat(300), 'c'].map(text => encodeTextFrame(Buffer.from(text))))
    expect(decode(stream).map(frame => frame.text)).toEqual(['a', 'b'.repeat(300), 'c'])
  })
})

describe('PeerTransport', () => {
  it('reports binary flags frame by frame, even when frames arrive together, and marks pongs', () => {
    const ws = Object.assign(new EventEmitter(), { readyState: 1, ping() {}, terminate() {} })
    const watch = new PeerTransport<{ alive: boolean }>({} as never, ws as never)
    watch.member = { alive: false }
    // One TCP chunk: all three parsed before the first message hook runs.
    ws.emit('message', Buffer.from('a'), false)
    ws.emit('message', Buffer.from('b'), false)
    ws.emit('message', Buffer.from([1]), true)
    ws.emit('pong')
    expect([watch.nextFrameIsBinary(), watch.nextFrameIsBinary(), watch.nextFrameIsBinary()]).toEqual([false, false, true])
    expect(watch.nextFrameIsBinary()).toBe(false)
    expect(watch.member.alive).toBe(true)
  })
})

/** A stand-in for `ws`'s WebSocket with the fields crossws 0.3's bundled copy has, to rename one at a time. */
function fakeWebSocket(overrides: Record<string, unknown> = {}) {
  const written: Buffer[] = []
  const ws = Object.assign(new EventEmitter(), {
    readyState: 1,
    bufferedAmount: 0,
    ping() {},
    terminate() {},
    pause() {},
    resume() {},
    _socket: { write: (chunk: Buffer) => written.push(chunk), writableLength: 0, destroyed: false },
    _sender: { _state: 0, _queue: [] },
    ...overrides,
  })
  const sent: string[] = []
  const peer = { _internal: { ws }, send: (text: string) => sent.push(text) }
  return { ws, peer, written, sent }
}

/** The transport crossws's Peer gets when it opens. */
const transportOf = (peer: object) => new PeerTransport(peer as never, rawWebSocket(peer as never))

const FRAME = new RoomFrame('{"type":"pong"}')

describe('fast path guards fail closed', () => {
  it('writes straight to the socket when ws is idle and every field is as expected', () => {
    const { peer, written, sent } = fakeWebSocket()
    const fast = transportStats.fastWrites
    transportOf(peer).writeFrame(FRAME)
    expect(written).toEqual([FRAME.ws])
    expect(sent).toEqual([])
    expect(transportStats.fastWrites).toBe(fast + 1)
  })

  it.each([
    ['`_sender` renamed', { _sender: undefined, _sndr: { _state: 0, _queue: [] } }],
    ['`_sender._state` renamed', { _sender: { state: 0, _queue: [] } }],
    ['`_sender._queue` not an array', { _sender: { _state: 0, _queue: undefined } }],
    ['`_socket` renamed', { _socket: undefined }],
    ['`_socket.writableLength` missing', { _socket: { write() {}, destroyed: false } }],
  ])('takes peer.send and logs once when %s', (_what, overrides) => {
    const { peer, written, sent } = fakeWebSocket(overrides)
    const transport = transportOf(peer)
    const reasons = transportStats.fallbacks.length
    transport.writeFrame(FRAME)
    transport.writeFrame(FRAME)
    expect(written).toEqual([])
    expect(sent).toEqual([FRAME.text, FRAME.text])
    // One new reason at most (the same renamed field is logged once, not per write).
    expect(transportStats.fallbacks.length - reasons).toBeLessThanOrEqual(1)
    expect(transportStats.fallbacks.length).toBeGreaterThan(0)
  })

  it('takes peer.send while ws is mid-frame or has its own queue', () => {
    for (const sender of [{ _state: 1, _queue: [] }, { _state: 0, _queue: [['x']] }]) {
      const { peer, written, sent } = fakeWebSocket({ _sender: sender })
      transportOf(peer).writeFrame(FRAME)
      expect(written).toEqual([])
      expect(sent).toEqual([FRAME.text])
    }
  })

  it('without a crossws Peer (a chat socket served directly), the public path and close go through ws itself', () => {
    const closed: [number, string][] = []
    const { ws, written } = fakeWebSocket({ _sender: { _state: 1, _queue: [] } })
    const sent: string[] = []
    const direct = Object.assign(ws, {
      send: (text: string) => sent.push(text),
      close: (code: number, reason: string) => closed.push([code, reason]),
    })
    writeFramed(direct as never, FRAME, direct)
    expect(written).toEqual([])
    expect(sent).toEqual([FRAME.text])
    ChatSocket.prototype.closeWith.call(direct as never, 4001, 'Disconnected by the server')
    expect(closed).toEqual([[4001, 'Disconnected by the server']])
  })

  it('finds no raw socket (and logs why) when the peer hides it or it lacks pause/bufferedAmount', () => {
    expect(rawWebSocket({ _internal: {} } as never)).toBeUndefined()
    expect(rawWebSocket(fakeWebSocket({ pause: undefined }).peer as never)).toBeUndefined()
    expect(rawWebSocket(fakeWebSocket({ bufferedAmount: undefined }).peer as never)).toBeUndefined()
    expect(transportStats.fallbacks.some(reason => reason.includes('peer._internal.ws'))).toBe(true)
    // Without it, frames still go out through crossws, and pausing reports that it cannot.
    const { peer, sent } = fakeWebSocket()
    const hidden = new PeerTransport(peer as never, undefined)
    hidden.writeFrame(FRAME)
    expect(sent).toEqual([FRAME.text])
    expect(hidden.pauseReading()).toBe(false)
    expect(hidden.sendPing()).toBe(false)
  })

  it('reports an unknown upgrade address (never a silent undefined that turns the per-address cap off)', () => {
    const socket = { remoteAddress: '10.0.0.1', destroyed: false, once() {} }
    expect(upgradeSocket({ _req: { socket } })?.remoteAddress).toBe('10.0.0.1')
    const reasons = transportStats.fallbacks.length
    expect(upgradeSocket({ req: { socket } })).toBeUndefined()
    expect(transportStats.fallbacks.length).toBe(reasons + 1)
    expect(transportStats.fallbacks.at(-1)).toMatch(/peer\.remoteAddress/)
  })

  it('leaves the upgrade request alone when its shape differs', () => {
    const internal = { nodeReq: { socket: {} }, request: { url: 'http://x/_ws' } }
    releaseUpgradeRequest({ _internal: internal } as never)
    expect(internal.request).toEqual({ url: 'http://x/_ws' })
  })
})

describe('upgradeRefusal', () => {
  it('carries its headers unencoded through crossws 0.3\'s status line', () => {
    const response = upgradeRefusal(429, '{"type":"error"}', { 'content-type': 'application/json', 'retry-after': '5' })
    expect(response.status).toBe(429)
    expect(response.statusText).toBe('Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 5\r\ncontent-length: 16')
    // No header of its own that crossws would write percent-encoded.
    expect([...response.headers.keys()]).toEqual([])
  })
})

/** A real `ws` server with one client connected: the server's socket and the client. */
async function connectedPair() {
  const server = new wsModule.WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(server, 'listening')
  const accepted = once(server, 'connection')
  const client = new wsModule.WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
  const [ws] = await accepted as [wsModule.WebSocket]
  await once(client, 'open')
  return { server, client, ws }
}

describe('coalesced writes', () => {
  it('sends the frames one socket gets in one task in one write, in order (ws\'s own sends too); the output bound counts what the kernel did not take, not the task\'s own burst', async () => {
    const { server, client, ws } = await connectedPair()
    try {
      const received: string[] = []
      client.on('message', data => received.push(String(data)))
      const peer = { _internal: { ws }, send: (text: string) => ws.send(text) }
      const transport = transportOf(peer)
      // Count the writes that leave the socket's buffer for the kernel (one `_write`/`_writev` each).
      const socket = (ws as unknown as { _socket: Record<string, (...args: unknown[]) => unknown> })._socket
      let writes = 0
      for (const method of ['_write', '_writev']) {
        const original = socket[method]!.bind(socket)
        socket[method] = (...args: unknown[]) => {
          writes++
          return original(...args)
        }
      }
      const frames = Array.from({ length: 10 }, (_, i) => `{"n":${i}}`)
      const bound: number[] = []
      for (const [i, text] of frames.entries()) {
        // Frame 5 goes through `ws.send` itself: ws's own write lands in order.
        if (i === 5) ws.send(text)
        bound.push(i === 5 ? backlogOf(transport.ws!) : transport.writeFrame(new RoomFrame(text)))
      }
      // Only frame 5 (written by ws itself, not corked by us) can count: the others are this task's own, not a backlog yet.
      expect(bound.at(-1)).toBeLessThanOrEqual(frames[5]!.length + 2)
      for (let i = 0; i < 100 && received.length < frames.length; i++) await new Promise(resolve => setTimeout(resolve, 10))
      expect(received).toEqual(frames)
      expect(writes).toBe(1)
      // The next task starts afresh: a lone frame goes out by itself.
      transport.writeFrame(new RoomFrame('{"n":10}'))
      for (let i = 0; i < 100 && received.length < 11; i++) await new Promise(resolve => setTimeout(resolve, 10))
      expect(received.at(-1)).toBe('{"n":10}')
      expect(writes).toBe(2)
    }
    finally {
      client.terminate()
      server.close()
    }
  })
})

describe('a socket held since its upgrade', () => {
  it('counts no backlog while held across tasks (its first frames wait for the presence list), then counts again once released', async () => {
    const { server, client, ws } = await connectedPair()
    try {
      const transport = transportOf({ _internal: { ws }, send: (text: string) => ws.send(text) })
      const socket = (ws as unknown as { _socket: { cork: () => void, uncork: () => void } })._socket
      const frame = (n: number) => new RoomFrame(`{"n":${n}}`)
      // Held as leanServer.ts holds a new chat connection, then written to over two tasks.
      socket.cork()
      expect(transport.writeFrame(frame(0))).toBe(0)
      await new Promise(resolve => setImmediate(resolve))
      expect(transport.writeFrame(frame(1))).toBe(0)
      socket.uncork()
      await new Promise(resolve => setImmediate(resolve))
      // Released and flushed: only this task's own frame waits, which is no backlog.
      expect(transport.writeFrame(frame(2))).toBe(0)
    }
    finally {
      client.terminate()
      server.close()
    }
  })
})

describe('memoizeWebSocketResolver', () => {
  it('resolves a route once per path, then answers every hook call from memory; routes without hooks are asked again', async () => {
    const paths: string[] = []
    const chatHooks = { open: () => {} }
    const websocket = {
      resolve: async (info: { url?: string, request?: { url?: string } }) => {
        const path = new URL(info.request?.url ?? info.url ?? '/', 'http://localhost').pathname
        paths.push(path)
        return path === '/_ws' ? chatHooks : {}
      },
    }
    const nitroApp = { h3App: { websocket } } as unknown as Parameters<typeof memoizeWebSocketResolver>[0]
    memoizeWebSocketResolver(nitroApp)
    const { resolve } = (nitroApp.h3App as unknown as { websocket: typeof websocket }).websocket
    // An upgrade (absolute URL with a query), then a peer's hook calls (its shared path).
    expect(await resolve({ request: { url: 'http://example.test/_ws?room=a&name=x' } })).toBe(chatHooks)
    for (let i = 0; i < 1000; i++) expect(resolve({ request: { url: '/_ws' } })).toBe(chatHooks)
    expect(await resolve({ request: { url: 'http://example.test/_ws?room=b#f' } })).toBe(chatHooks)
    expect(await resolve({ url: '/elsewhere' })).toEqual({})
    expect(await resolve({ url: '/elsewhere' })).toEqual({})
    expect(paths).toEqual(['/_ws', '/elsewhere', '/elsewhere'])
  })
})
