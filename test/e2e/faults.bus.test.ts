import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, postMessage } from '../utils/clients'
import { ownRedis } from '../utils/faults'
import { startServer, type TestServer } from '../utils/server'

// Bus faults against built servers on a redis-server of this test's own: a failed command or
// a restart never leaves an instance deaf or mute, and apps sharing one Redis never mix.

const newRoom = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}`
const base = (server: TestServer) => server.url('').replace(/\/$/, '')
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

function report(fault: string, saw: string, recoverMs: number, lost: number) {
  console.log(`[faults] ${fault} | ${saw} | ${Math.round(recoverMs)} ms | ${lost}`)
}

/** POST and expect it stored; returns its id. */
async function send(server: TestServer, room: string, message: string) {
  const { status, json } = await postMessage(base(server), { message, cid: message.replaceAll(' ', '-') }, { room })
  expect(status, message).toBe(200)
  return json!.id as number
}

/** How many of ids 1..last `reader` is missing; and it got none twice nor out of order. */
function lostBy(reader: ChatSocket, last: number) {
  const ids = reader.messages.map(frame => frame.id)
  expect(ids, 'each id once, in order').toEqual([...ids].sort((a, b) => a - b).filter((id, index, all) => all.indexOf(id) === index))
  return Array.from({ length: last }, (_, index) => index + 1).filter(id => !ids.includes(id)).length
}

function expectCleanLogs(...servers: TestServer[]) {
  for (const server of servers) {
    expect(server.process()?.exitCode ?? null).toBeNull()
    expect(server.logs()).not.toMatch(/unhandledRejection|uncaughtException/)
  }
}

describe('faults: Redis bus', () => {
  let redis: Awaited<ReturnType<typeof ownRedis>>
  let a: TestServer
  let b: TestServer
  const sockets: ChatSocket[] = []
  const open = async (server: TestServer, room: string) => {
    const socket = await ChatSocket.open(server.wsUrl(''), { room })
    sockets.push(socket)
    return socket
  }

  beforeAll(async () => {
    redis = await ownRedis()
    // Two instances of one app: one SQLite file (same directory), one Redis.
    const cwd = mkdtempSync(join(tmpdir(), 'nuxt-chat-bus-'))
    const env = { NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_PRESENCE_INTERVAL: '500' }
    ;[a, b] = await Promise.all([startServer({ cwd, env }), startServer({ cwd, env })])
  })
  afterAll(async () => {
    for (const socket of sockets) socket.ws.terminate()
    await Promise.all([a?.stop(), b?.stop()])
    await redis?.stop()
  })

  it('Redis answering BUSY: messages stored meanwhile reach the other instance once it answers again, and live delivery resumes', async () => {
    const room = newRoom('busy')
    const [onA, onB] = [await open(a, room), await open(b, room)]
    await send(a, room, 'warm up')
    await onB.waitFor(frame => frame.type === 'message' && frame.id === 1, 'the bus to carry a message', 5000)

    const stopScript = await redis.busy()
    // Stored while Redis refuses every command: the senders get their acks.
    await send(a, room, 'during busy from a')
    await send(b, room, 'during busy from b')
    await sleep(300)
    const recovered = performance.now()
    await stopScript()
    for (const reader of [onA, onB]) await reader.waitFor(frame => frame.type === 'message' && frame.id === 3, 'what was stored during BUSY', 2000)
    const caughtUp = performance.now() - recovered
    // Live again, both ways, within 2 s.
    await send(a, room, 'after from a')
    await onB.waitFor(frame => frame.type === 'message' && frame.id === 4, 'a live message after BUSY', 2000)
    await send(b, room, 'after from b')
    await onA.waitFor(frame => frame.type === 'message' && frame.id === 5, 'a live message the other way', 2000)
    // B's own reader gets B's message locally, but not necessarily before A's does through the bus.
    await onB.waitFor(frame => frame.type === 'message' && frame.id === 5, 'B\'s own message on B', 2000)
    const lost = lostBy(onA, 5) + lostBy(onB, 5)
    expect(lost).toBe(0)
    report('Redis BUSY (script) ~0.5 s, then SCRIPT KILL', 'sends acked (stored); delivered across after recovery', caughtUp, lost)
    expectCleanLogs(a, b)
  })

  it('a Redis restart mid-conversation loses nothing', async () => {
    const room = newRoom('restart')
    const [onA, onB] = [await open(a, room), await open(b, room)]
    await send(a, room, 'warm up')
    await onB.waitFor(frame => frame.type === 'message' && frame.id === 1, 'the bus to carry a message', 5000)
    let sent = 1
    const conversation = (async () => {
      // All from A: B's reader gets them only through the bus (no send of B's fills the gap from the store).
      for (let index = 0; index < 60; index++) {
        await send(a, room, `talk ${index}`)
        sent++
        await sleep(25)
      }
    })()
    await sleep(300)
    await redis.stop()
    await sleep(700)
    await redis.start()
    const restarted = performance.now()
    // Everything stored while Redis was away reaches both instances' readers.
    const atRestart = sent
    for (const reader of [onA, onB]) await reader.waitFor(frame => frame.type === 'message' && frame.id === atRestart, `id ${atRestart}`, 2000)
    const recoveredIn = performance.now() - restarted
    await conversation
    await send(b, room, 'and back')
    sent++
    for (const reader of [onA, onB]) await reader.waitFor(frame => frame.type === 'message' && frame.id === sent, `id ${sent}`, 4000)
    await sleep(200)
    const lost = lostBy(onA, sent) + lostBy(onB, sent)
    expect(lost).toBe(0)
    report('Redis killed and restarted mid-conversation', `all ${sent} sends acked`, recoveredIn, lost)
    expectCleanLogs(a, b)
  })

  it('two apps with different databases on one Redis never see each other\'s messages', async () => {
    // No channel set: each app derives its own from its database (startServer otherwise gives a test file's servers one).
    const env = { NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_REDIS_CHANNEL: '', NUXT_CHAT_RATE_LIMIT: 'false' }
    const [x, y] = await Promise.all([startServer({ env }), startServer({ env })])
    try {
      const room = newRoom('apps')
      const [onX, onY] = [await ChatSocket.open(x.wsUrl(''), { room }), await ChatSocket.open(y.wsUrl(''), { room })]
      await sleep(300)
      await send(x, room, 'from x')
      await onX.waitFor(frame => frame.type === 'message' && frame.message === 'from x', 'x\'s own message')
      await send(y, room, 'from y')
      await onY.waitFor(frame => frame.type === 'message' && frame.message === 'from y', 'y\'s own message (its id 1)')
      await sleep(300)
      expect(onX.messages.map(frame => [frame.id, frame.message])).toEqual([[1, 'from x']])
      expect(onY.messages.map(frame => [frame.id, frame.message])).toEqual([[1, 'from y']])
      report('two apps (different SQLite dirs) on one Redis', 'each app sees only its own messages', 0, 0)
      for (const socket of [onX, onY]) socket.ws.terminate()
      expectCleanLogs(x, y)
    }
    finally {
      await Promise.all([x.stop(), y.stop()])
    }
  })
})
