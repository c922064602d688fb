/**
 * Hostile and careless clients against the built fixture, with real sockets: a client that
 * never reads, a flood of input against a slow `chat:message` hook, the ordered-refusal rule,
 * duplicate acknowledgements, and a check that the WebSocket fast path is really taken.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { ChatSocket, ChatStream, until } from '../utils/clients'
import { transportCounters } from '../utils/metrics'
import { startServer, type TestServer } from '../utils/server'

const MiB = 2 ** 20
const uniqueRoom = (prefix = 'hostile') => `${prefix}-${randomUUID().slice(0, 8)}`
const wsBase = (server: TestServer) => `ws://127.0.0.1:${server.port}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')

/** Resident memory of a server process, in bytes. */
function rssOf(server: TestServer): number {
  const status = readFileSync(`/proc/${server.process()!.pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024
}

/** A raw client whose TCP socket no longer reads: the server's writes pile up on its side. */
async function openDeafSocket(server: TestServer, room: string) {
  const ws = new WebSocket(`${wsBase(server)}/_ws?room=${room}`)
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  let closed = false
  ws.on('close', () => {
    closed = true
  })
  // ws keeps its TCP socket in `_socket`; pausing it stops the client reading, as a stalled tab would.
  ;(ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  return {
    ws,
    get closed() {
      return closed || ws.readyState === WebSocket.CLOSED
    },
  }
}

/**
 * Bring the server to its working size under this load first: a client that reads sends the
 * same frames for `duration` ms (V8 grows its young generation under a high allocation rate,
 * some 30-60 MiB, whoever the client is). What a client that never reads adds is measured after.
 */
async function warmUp(server: TestServer, frame: string, duration: number) {
  const reader = await ChatSocket.open(wsBase(server), { room: uniqueRoom() })
  const deadline = Date.now() + duration
  while (Date.now() < deadline) {
    if (reader.ws.bufferedAmount < 256 * 1024) for (let i = 0; i < 200; i++) reader.ws.send(frame)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  await reader.close()
}

/**
 * Let `sockets` write `frame` as fast as the server takes it for up to `duration` ms, while
 * sampling the server's RSS; stops early when every socket is closed or growth passes `abortAt`
 * (so the unfixed server cannot eat the machine). Returns the peak growth over the RSS after a warm-up.
 */
async function hammer(server: TestServer, sockets: { ws: WebSocket, closed: boolean }[], frame: string, duration: number, abortAt: number) {
  await warmUp(server, frame, 5000)
  const before = rssOf(server)
  let peak = 0
  const deadline = Date.now() + duration
  while (Date.now() < deadline && sockets.some(socket => !socket.closed)) {
    for (const socket of sockets) {
      // Keep the client's own buffer small: the point is what the server holds.
      if (socket.closed || socket.ws.bufferedAmount > 256 * 1024) continue
      for (let i = 0; i < 200; i++) socket.ws.send(frame)
    }
    await new Promise(resolve => setTimeout(resolve, 5))
    peak = Math.max(peak, rssOf(server) - before)
    if (peak > abortAt) break
  }
  return peak
}

let server: TestServer
let noRateLimit: TestServer
let strict: TestServer

beforeAll(async () => {
  ;[server, noRateLimit, strict] = await Promise.all([
    startServer(),
    startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_MAX_LENGTH: '70000' } }),
    // Burst 3, one token a minute.
    startServer({ env: { NUXT_CHAT_RATE_LIMIT_BURST: '3', NUXT_CHAT_RATE_LIMIT_MESSAGES: '1', NUXT_CHAT_RATE_LIMIT_INTERVAL: '60000' } }),
  ])
})

afterAll(async () => {
  await Promise.all([server, noRateLimit, strict].map(running => running?.stop()))
})

describe('a client that never reads', () => {
  const maxBufferedBytes = 4 * MiB
  const bound = maxBufferedBytes + 64 * MiB

  it.each([
    ['ping', '{"type":"ping"}'],
    ['empty', ' '],
  ])('is closed when its unread answers to %s frames pass maxBufferedBytes, and server memory stays bounded', async (_kind, frame) => {
    const socket = await openDeafSocket(server, uniqueRoom())
    const grown = await hammer(server, [socket], frame, 30_000, bound)
    console.log(`[never reads, ${_kind}] server RSS grew ${(grown / MiB).toFixed(1)} MiB (bound ${(bound / MiB).toFixed(0)} MiB); closed: ${socket.closed}`)
    expect(grown).toBeLessThan(bound)
    await until(() => socket.closed, 'the deaf socket closed', 10_000)
    expect(server.logs()).toMatch(/closing a slow reader/)
  }, 60_000)

  it('holds for 50 such sockets at once: under 50 × the bound, and the server still serves', async () => {
    const room = uniqueRoom()
    const sockets = []
    for (let i = 0; i < 50; i++) sockets.push(await openDeafSocket(server, room))
    const grown = await hammer(server, sockets, '{"type":"ping"}', 30_000, 50 * bound)
    console.log(`[never reads, 50 sockets] server RSS grew ${(grown / MiB).toFixed(1)} MiB (bound ${(50 * bound / MiB).toFixed(0)} MiB); closed: ${sockets.filter(socket => socket.closed).length}`)
    expect(grown).toBeLessThan(50 * bound)
    // Each one is closed once the kernel's buffers (several MiB per socket on loopback) and then maxBufferedBytes fill; 30 s shared by 50 may not get there.
    for (const socket of sockets) socket.ws.terminate()
    // The server still serves.
    const next = await ChatSocket.open(wsBase(server), { room: uniqueRoom() })
    await next.waitFor(frame => frame.type === 'presence')
    await next.close()
  }, 90_000)
})

describe('input backpressure', () => {
  it('stops reading a socket whose messages wait on a slow chat:message hook (rate limit off)', async () => {
    const room = uniqueRoom('slowhook')
    const socket = await ChatSocket.open(wsBase(noRateLimit), { room })
    await socket.waitFor(frame => frame.type === 'presence')
    const body = 'f'.repeat(60_000)
    const before = rssOf(noRateLimit)
    let peak = 0
    let sent = 0
    // Flood until a backlog stays in the client (past the kernel's buffers, several MiB on loopback): bounded by volume, not
    // by 5 s of time, in which a starved test process once wrote too little and the server's slow reading drained it all.
    // With a 50 ms hook the server answers about 20 a second: a server that read without bound would take the whole flood.
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline && peak < 256 * MiB && socket.ws.bufferedAmount < 4 * MiB) {
      for (let i = 0; i < 20; i++) socket.send(`${sent++} ${body}`)
      await new Promise(resolve => setTimeout(resolve, 5))
      peak = Math.max(peak, rssOf(noRateLimit) - before)
    }
    // Then nothing more is sent: a server reading without bound empties the client's backlog within a few ms
    // (measured: all of it in 300 ms); one that stopped reading takes it at the hook's pace, about 1.2 MB a second.
    await new Promise(resolve => setTimeout(resolve, 300))
    peak = Math.max(peak, rssOf(noRateLimit) - before)
    console.log(`[slow hook flood] wrote ${sent} frames of 60 KB (${(sent * 60_000 / MiB).toFixed(0)} MiB), server answered ${socket.messages.length}; server RSS grew ${(peak / MiB).toFixed(1)} MiB`)
    // The server stopped taking input: the backlog waits in the client's own buffer (unbounded
    // input took 153 MiB in 5 s and grew the server by 265 MiB, measured on 0.1).
    const backlog = socket.ws.bufferedAmount
    console.log(`[slow hook flood] backlog left in the client: ${(backlog / MiB).toFixed(1)} MiB`)
    expect(backlog).toBeGreaterThan(1 * MiB)
    expect(peak).toBeLessThan(64 * MiB)
    // Reading resumes as the hook catches up: what was answered is in order, the socket still open.
    const answered = socket.messages.map(frame => Number(frame.message.split(' ')[0]))
    expect(answered).toEqual(answered.map((_, i) => i))
    await until(() => socket.messages.length > answered.length + 5, 'more answers after the flood', 10_000)
    expect(socket.closed).toBeUndefined()
    socket.ws.terminate()
  }, 60_000)
})

describe('acknowledgements', () => {
  it('answers a repeated cid to its sender with the stored frame and "duplicate": true', async () => {
    const room = uniqueRoom()
    const socket = await ChatSocket.open(wsBase(server), { room })
    await socket.waitFor(frame => frame.type === 'presence')
    socket.send({ type: 'message', message: 'once', cid: 'dup-1' })
    const first = await socket.waitFor(frame => frame.type === 'message' && frame.cid === 'dup-1')
    expect(first.duplicate).toBeUndefined()
    socket.send({ type: 'message', message: 'once', cid: 'dup-1' })
    await until(() => socket.messages.length === 2, 'the duplicate ack')
    expect(socket.messages[1]).toMatchObject({ id: first.id, cid: 'dup-1', message: 'once', duplicate: true })
    await socket.close()
  })

  it('keeps one sender\'s messages in send order when one is refused for now and resent', async () => {
    const room = uniqueRoom()
    const socket = await ChatSocket.open(wsBase(noRateLimit), { room })
    await socket.waitFor(frame => frame.type === 'presence')
    const tag = randomUUID().slice(0, 8)
    // #3 meets a moderation service that fails once (answered `unavailable`).
    const texts = Array.from({ length: 10 }, (_, i) => i === 2 ? `fail-once:${tag}` : `ord-${i}`)
    const cids = texts.map((_, i) => `ord-${tag}-${i}`)
    const answers = () => socket.frames.filter(frame => frame.cid && (frame.type === 'message' || frame.type === 'error'))
    // Pipelined, as useChat does with its in-flight window.
    texts.forEach((message, i) => socket.send({ type: 'message', message, cid: cids[i] }))
    await until(() => answers().length === 10, 'an answer to each of the 10')
    const errors = socket.frames.filter(frame => frame.type === 'error')
    // The refused one and everything after it: refused with the same code, none stored.
    expect(errors.map(frame => frame.cid)).toEqual(cids.slice(2))
    expect(errors.every(frame => frame.code === 'unavailable')).toBe(true)
    expect(socket.messages.map(frame => frame.cid)).toEqual(cids.slice(0, 2))

    // Resend the refused ones in order: all stored now.
    texts.slice(2).forEach((message, i) => socket.send({ type: 'message', message, cid: cids[i + 2] }))
    await until(() => answers().length === 18, 'answers to the resend')
    expect(socket.messages.map(frame => frame.cid)).toEqual(cids)
    const reader = await ChatStream.open(httpBase(noRateLimit), { room })
    await until(() => reader.messages.length === 10, 'the replay of 10')
    expect(reader.messages.map(frame => frame.cid)).toEqual(cids)
    await Promise.all([socket.close(), reader.close()])
  })

  it('refuses held messages cheaply: no rate token taken while a refusal stands', async () => {
    const room = uniqueRoom()
    const socket = await ChatSocket.open(wsBase(strict), { room })
    await socket.waitFor(frame => frame.type === 'presence')
    const tag = randomUUID().slice(0, 8)
    socket.send({ type: 'message', message: `fail-once:${tag}`, cid: `c-${tag}-0` })
    await socket.waitFor(frame => frame.type === 'error' && frame.cid === `c-${tag}-0`)
    // Burst 3: were these held ones to take tokens, the resend below would be rate_limited.
    for (let i = 1; i <= 5; i++) socket.send({ type: 'message', message: `held ${i}`, cid: `c-${tag}-${i}` })
    await until(() => socket.frames.filter(frame => frame.type === 'error').length === 6, 'five held refusals')
    expect(socket.frames.filter(frame => frame.type === 'error').map(frame => frame.code)).toEqual(Array.from({ length: 6 }, () => 'unavailable'))
    socket.send({ type: 'message', message: `fail-once:${tag}`, cid: `c-${tag}-0` })
    socket.send({ type: 'message', message: 'held 1', cid: `c-${tag}-1` })
    await until(() => socket.messages.length === 2, 'both stored')
    expect(socket.messages.map(frame => frame.cid)).toEqual([`c-${tag}-0`, `c-${tag}-1`])
    await socket.close()
  })
})

describe('transport internals', () => {
  it('writes room frames through the fast path on the installed crossws, and never fell back', async () => {
    const room = uniqueRoom()
    const socket = await ChatSocket.open(wsBase(server), { room })
    await socket.waitFor(frame => frame.type === 'presence')
    const stats = () => transportCounters(server)
    const before = await stats()
    socket.send('fast')
    await socket.waitFor(frame => frame.type === 'message')
    const after = await stats()
    expect(after.fastWrites).toBeGreaterThan(before.fastWrites)
    expect(after.fallbacks).toEqual([])
    expect(server.logs()).not.toMatch(/falls back/)
    await socket.close()
  })
})
