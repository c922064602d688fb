/**
 * Presence across instances (issue 22, finding 7), against two built servers on one SQLite file
 * and a redis-server of this test's own: a newcomer's first `presence` list is the whole room,
 * and a bus that is down or stalled never holds a join for longer than the documented bound.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChatUser } from '../../src/runtime/shared/protocol'
import { ChatSocket, ChatStream, postMessage, presenceSeen, until, untilOnOneBus } from '../utils/clients'
import { ownRedis } from '../utils/faults'
import { startServer, type TestServer } from '../utils/server'

const newRoom = () => `pi-${randomUUID().slice(0, 8)}`
const base = (server: TestServer) => server.url('').replace(/\/$/, '')
const namesOf = (users: ChatUser[]) => users.map(user => user.name).sort()
const alice = { cookie: 'session=alice-token' }
/** docs/PROTOCOL.md, "Presence in deltas": the longest an instance new to a room waits for the others (`presenceWait`, set here: a loaded machine may take longer than the default 500 ms to answer). */
const PRESENCE_WAIT = 3000

/** The users of the first `presence` frame a reader got. */
function firstList(reader: ChatSocket | ChatStream): ChatUser[] {
  const frame = reader.frames.find(frame => frame.type === 'presence') as { users: ChatUser[] } | undefined
  return frame?.users ?? []
}

/** What a reader got first, by kind: `welcome`, `presence`, `message:<id>`, … */
const kinds = (reader: ChatSocket | ChatStream) => reader.frames.map(frame => frame.type === 'system' ? frame.event : frame.type === 'message' ? `message:${frame.id}` : frame.type)

/** A TCP proxy to Redis that can stall (bytes wait in it both ways: Redis seems to hang) or cut its connections and refuse new ones. */
async function stallingProxy(targetPort: number) {
  let frozen = false
  let refusing = false
  const held: [Socket, Buffer][] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    if (refusing) return void client.destroy()
    const upstream = connect(targetPort, '127.0.0.1')
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from)
      from.on('data', chunk => frozen ? held.push([to, chunk]) : to.write(chunk))
      from.on('error', () => to.destroy())
      from.on('close', () => to.destroy())
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    freeze() {
      frozen = true
    },
    thaw() {
      frozen = false
      for (const [to, chunk] of held.splice(0)) to.write(chunk)
    },
    /** Cut every connection through the proxy, and refuse new ones until `reopen`. */
    cut() {
      refusing = true
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    reopen() {
      refusing = false
    },
    close() {
      for (const socket of sockets) socket.destroy()
      server.close()
    },
  }
}

describe('presence across instances (issue 22, finding 7)', () => {
  let redis: Awaited<ReturnType<typeof ownRedis>>
  let proxy: Awaited<ReturnType<typeof stallingProxy>>
  let a: TestServer
  let b: TestServer
  const readers: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    readers.push(reader)
    return reader
  }
  const figures: string[] = []

  /** Join a room new everywhere and time the first list (which must hold the joiner alone); the socket and the ms it took. */
  async function joinNewRoom(server: TestServer, name: string, figure: string) {
    const started = performance.now()
    const socket = track(await ChatSocket.open(server.wsUrl(''), { room: newRoom(), name }))
    await socket.waitFor(frame => frame.type === 'presence', 'its first list', 5000)
    const took = performance.now() - started
    figures.push(`${figure}: ${Math.round(took)} ms`)
    expect(namesOf(firstList(socket))).toEqual([name])
    return { socket, took }
  }

  beforeAll(async () => {
    redis = await ownRedis()
    proxy = await stallingProxy(redis.port)
    // Two instances of one app (one SQLite file, one Redis); B reaches Redis through a proxy that can stall.
    const cwd = mkdtempSync(join(tmpdir(), 'nuxt-chat-presence-'))
    // A long presence interval: only a prompt answer, not the periodic announcement, can pass. CONSOLA_LEVEL: the bus's info lines.
    const env = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_PRESENCE_INTERVAL: '20000', NUXT_CHAT_PRESENCE_WAIT: String(PRESENCE_WAIT), CONSOLA_LEVEL: '3' }
    ;[a, b] = await Promise.all([
      startServer({ cwd, env: { ...env, NUXT_CHAT_REDIS_URL: redis.url } }),
      startServer({ cwd, env: { ...env, NUXT_CHAT_REDIS_URL: proxy.url } }),
    ])
    // Both on the bus, both ways (a fresh build's first start took seconds to subscribe).
    await untilOnOneBus(a, b)
  })

  afterAll(async () => {
    for (const reader of readers) await reader.close()
    await Promise.all([a?.stop(), b?.stop()])
    proxy?.close()
    await redis?.stop()
    console.info(`[presence across instances] ${figures.join('; ')}`)
  })

  it('gives a newcomer on B, new to the room there, every user of A in its first list (WebSocket and SSE)', async () => {
    const room = newRoom()
    for (let i = 1; i <= 5; i++) expect((await postMessage(base(a), { message: `m${i}` }, { room })).status).toBe(200)
    const onA = [
      track(await ChatSocket.open(a.wsUrl(''), { room }, { headers: alice })),
      track(await ChatSocket.open(a.wsUrl(''), { room, name: 'a-guest-1' })),
      track(await ChatStream.open(base(a), { room, name: 'a-guest-2' })),
    ]
    for (const reader of onA) await until(() => presenceSeen(reader).length === 3, 'A\'s three readers to see each other')

    // No member of the room on B yet.
    const newcomer = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'b-newcomer' }))
    await newcomer.waitFor(frame => frame.type === 'presence', 'its first list')
    figures.push(`first list of a newcomer on B: ${firstList(newcomer).length} users (room: 3 on A + the newcomer)`)
    expect(namesOf(firstList(newcomer))).toEqual(['Alice', 'a-guest-1', 'a-guest-2', 'b-newcomer'])
    // Welcome, the whole list, the replay, then live: in that order, each message once.
    await newcomer.waitFor(frame => frame.type === 'message' && frame.id === 5, 'the replay')
    expect((await postMessage(base(a), { message: 'live' }, { room })).status).toBe(200)
    await newcomer.waitFor(frame => frame.type === 'message' && frame.id === 6, 'a live message')
    expect(kinds(newcomer).filter(kind => kind !== 'presence_diff' && kind !== 'join')).toEqual(['welcome', 'presence', 'message:1', 'message:2', 'message:3', 'message:4', 'message:5', 'message:6'])
    // A's readers hear of it once, as a diff.
    for (const reader of onA) await until(() => presenceSeen(reader).length === 4, 'A\'s readers to see the newcomer')

    // An SSE newcomer in another room new to B, and a second newcomer once B knows the room.
    const other = newRoom()
    track(await ChatSocket.open(a.wsUrl(''), { room: other, name: 'a-only' }))
    const stream = track(await ChatStream.open(base(b), { room: other, name: 'b-stream' }))
    await stream.waitFor(frame => frame.type === 'presence', 'its first list')
    expect(namesOf(firstList(stream))).toEqual(['a-only', 'b-stream'])
    const second = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'b-second' }))
    await second.waitFor(frame => frame.type === 'presence', 'its first list')
    expect(namesOf(firstList(second))).toEqual(['Alice', 'a-guest-1', 'a-guest-2', 'b-newcomer', 'b-second'])
  })

  it('checks a guest\'s name on B against the signed-in users of A, in a room new to B', async () => {
    const room = newRoom()
    const real = track(await ChatSocket.open(a.wsUrl(''), { room }, { headers: alice }))
    await real.waitFor(frame => frame.type === 'presence')
    for (const wish of ['Alice', 'A\u0332lice']) {
      const guest = track(await ChatSocket.open(b.wsUrl(''), { room, name: wish }))
      await guest.waitFor(frame => frame.type === 'presence', 'its first list')
      expect(guest.frames[1], JSON.stringify(wish)).toMatchObject({ type: 'error', code: 'name_refused', message: expect.stringContaining('signed-in') })
      expect(namesOf(firstList(guest))).toContain('Alice')
      await guest.close()
    }
    // Over POST too: stored under the guest's default name.
    const post = await postMessage(base(b), { message: 'I am Alice' }, { room, name: 'Alice' })
    expect(post.json).toMatchObject({ user: expect.stringMatching(/^guest-/), guest: true })
  })

  it('does not wait out the bound when every instance answered: a room empty everywhere', async () => {
    const { took } = await joinNewRoom(b, 'first-ever', 'first list on B in a room empty everywhere')
    expect(took).toBeLessThan(PRESENCE_WAIT)
  })

  it('after B lost the bus, B\'s readers learn who joined A meanwhile as soon as it is back, not a presence interval later', async () => {
    const room = newRoom()
    const onB = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'b-reader' }))
    const first = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'a-first' }))
    await until(() => presenceSeen(onB).length === 2, 'B\'s reader to see A\'s first reader')
    proxy.cut()
    await until(() => /Redis bus unavailable/.test(b.logs()), 'B to see its bus down', 10_000)
    // Joined while B hears nothing: A announces it once, into the void.
    const unheard = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'a-while-b-was-away' }))
    await unheard.waitFor(frame => frame.type === 'presence')
    proxy.reopen()
    const back = performance.now()
    await until(() => /Redis bus is back/.test(b.logs()), 'B to see its bus back', 10_000)
    await until(() => namesOf(presenceSeen(onB)).includes('a-while-b-was-away'), 'B\'s reader to see who joined A meanwhile', 3000)
    figures.push(`B's reader saw A's join made during B's outage ${Math.round(performance.now() - back)} ms after the proxy reopened (presence interval 20 s)`)
    expect(namesOf(presenceSeen(onB))).toEqual(['a-first', 'a-while-b-was-away', 'b-reader'])
    expect(first.frames.some(frame => frame.type === 'error')).toBe(false)
  })

  it('never holds a join longer than the bound while Redis stalls, nor at all while it is down', async () => {
    proxy.freeze()
    try {
      const { socket: stalled, took } = await joinNewRoom(b, 'during-stall', 'first list on B while its Redis stalls')
      expect(took).toBeLessThan(PRESENCE_WAIT + 1000)
      // It is in the room: what it sends is stored and comes back.
      stalled.send({ type: 'message', message: 'still here', cid: 'stall-1' })
      await stalled.waitFor(frame => frame.type === 'message' && frame.message === 'still here', 'its message stored')
    }
    finally {
      proxy.thaw()
    }

    await redis.stop()
    try {
      // A notices the outage (its connection closed) before the join.
      await until(() => /Redis bus unavailable/.test(a.logs()), 'A to see the bus down', 10_000)
      const { took } = await joinNewRoom(a, 'during-outage', 'first list on A while Redis is down')
      expect(took).toBeLessThan(PRESENCE_WAIT)
    }
    finally {
      await redis.start()
    }
    for (const server of [a, b]) expect(server.logs()).not.toMatch(/unhandledRejection|uncaughtException/)
  })
})
