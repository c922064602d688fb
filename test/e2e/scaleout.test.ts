import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChatMessageFrame, ChatUser } from '../../src/runtime/shared/protocol'
import { chatClient, installEventSource, settle, sleep, startProxy, storedOf } from '../utils/chaos'
import { ChatSocket, ChatStream, postMessage, presenceSeen, until, untilOnOneBus } from '../utils/clients'
import { ownRedis } from '../utils/faults'
import { startServer, type TestServer } from '../utils/server'

installEventSource()

const PRESENCE_INTERVAL = 500
const newRoom = () => `room-${randomUUID().slice(0, 8)}`
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, index) => from + index)
const wsBase = (server: TestServer) => server.wsUrl('')
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const names = (users: ChatUser[]) => users.map(user => user.name).sort()

/** Exactly these ids, each once, in arrival order. */
function expectIds(reader: ChatSocket | ChatStream, ids: number[], what: string) {
  expect(reader.messages.map(frame => frame.id), what).toEqual(ids)
}

describe('scale-out: two PostgreSQL instances on a Redis bus', () => {
  let a: TestServer
  let b: TestServer
  // A Redis of this file's own: the restart below must not empty the shared one under the files running beside it.
  let redis: Awaited<ReturnType<typeof ownRedis>>
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }

  /** A WebSocket and an SSE reader on each instance. */
  async function openReaders(room: string) {
    return [
      track(await ChatSocket.open(wsBase(a), { room, name: 'a-ws' })),
      track(await ChatStream.open(httpBase(a), { room, name: 'a-sse' })),
      track(await ChatSocket.open(wsBase(b), { room, name: 'b-ws' })),
      track(await ChatStream.open(httpBase(b), { room, name: 'b-sse' })),
    ]
  }

  beforeAll(async () => {
    redis = await ownRedis()
    // CONSOLA_LEVEL: the servers inherit vitest's environment, where consola would hide info lines (the recovery log).
    const env = { NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_PRESENCE_INTERVAL: String(PRESENCE_INTERVAL), NUXT_CHAT_RATE_LIMIT: 'false', CONSOLA_LEVEL: '3' }
    ;[a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
  })

  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')])
    await redis?.stop()
  })

  it('delivers across instances, WS and SSE, to every reader exactly once and in id order', async () => {
    const room = newRoom()
    const readers = await openReaders(room)
    const [onA, , onB] = readers as [ChatSocket, ChatStream, ChatSocket, ChatStream]
    // Both instances know the room before the first message (the bus only reaches rooms with members).
    for (const reader of readers) await until(() => names(presenceSeen(reader)).length === 4, 'presence of all four', 5000)

    const PER_SENDER = 100
    const POSTS = 30
    const sendWs = async (socket: ChatSocket, tag: string) => {
      for (let index = 0; index < PER_SENDER; index++) {
        socket.send({ type: 'message', message: `${tag} ${index}`, cid: `${tag}-${index}` })
        if (index % 4 === 3) await sleep(1)
      }
    }
    const sendPosts = async () => {
      for (let index = 0; index < POSTS; index++) {
        const { status } = await postMessage(httpBase(index % 2 ? a : b), { message: `post ${index}`, cid: `post-${index}` }, { room })
        expect(status).toBe(200)
      }
    }
    await Promise.all([sendWs(onA, 'from-a'), sendWs(onB, 'from-b'), sendPosts()])
    const total = 2 * PER_SENDER + POSTS
    for (const reader of readers) await reader.waitFor(frame => frame.type === 'message' && frame.id === total, `id ${total}`, 20_000)
    await sleep(200)
    for (const [index, reader] of readers.entries()) expectIds(reader, range(1, total), `reader ${index}`)
    // Each sender's messages in the order it sent them, whichever instance stored them.
    for (const tag of ['from-a', 'from-b']) {
      expect(onB.messages.filter(frame => frame.cid?.startsWith(`${tag}-`)).map(frame => frame.cid), `${tag}'s messages stored in send order`).toEqual(range(0, PER_SENDER - 1).map(index => `${tag}-${index}`))
    }
  })

  it('spans presence across instances, and drops a SIGKILLed instance\'s users within about 3 intervals', async () => {
    const room = newRoom()
    const alice = track(await ChatSocket.open(wsBase(a), { room, name: 'alice' }))
    const bob = track(await ChatSocket.open(wsBase(b), { room, name: 'bob' }))
    const carol = track(await ChatStream.open(httpBase(b), { room, name: 'carol' }))
    for (const reader of [alice, bob, carol]) await until(() => names(presenceSeen(reader)).join() === 'alice,bob,carol', 'alice, bob and carol everywhere', 5000)
    // Each instance re-announces its users every interval: an unchanged list sends nothing.
    const diffs = (reader: ChatSocket | ChatStream) => reader.frames.filter(frame => frame.type === 'presence_diff').length
    const diffsBefore = [alice, bob, carol].map(diffs)
    await sleep(3 * PRESENCE_INTERVAL)
    expect([alice, bob, carol].map(diffs)).toEqual(diffsBefore)
    expect(alice.frames.filter(frame => frame.type === 'presence')).toHaveLength(1)
    await bob.close()
    await until(() => names(presenceSeen(alice)).join() === 'alice,carol', 'bob gone on the other instance', 3000)
    await alice.waitFor(frame => frame.type === 'system' && frame.event === 'leave' && frame.message === 'bob left!', 'bob left! across the bus')

    try {
      const killed = Date.now()
      await b.stop('SIGKILL')
      await until(() => names(presenceSeen(alice)).join() === 'alice', 'carol dropped after her instance died', 4 * PRESENCE_INTERVAL + 1500)
      const after = Date.now() - killed
      console.log(`[scaleout] a SIGKILLed instance's users dropped from presence after ${after} ms (interval ${PRESENCE_INTERVAL} ms)`)
      // Expiry is 3 intervals after the last heartbeat, checked on each heartbeat of the survivor.
      expect(after).toBeGreaterThanOrEqual(2 * PRESENCE_INTERVAL)
      expect(after).toBeLessThanOrEqual(4 * PRESENCE_INTERVAL + 500)
      // Until then the survivor kept showing carol: presence is not cut on the first missed heartbeat.
    }
    finally {
      await b.start()
    }
    await untilOnOneBus(a, b)
    // A new member on the restarted instance shows up on the other one again.
    const dave = track(await ChatSocket.open(wsBase(b), { room, name: 'dave' }))
    await until(() => names(presenceSeen(alice)).join() === 'alice,dave', 'dave from the restarted instance', 5000)
    await until(() => names(presenceSeen(dave)).join() === 'alice,dave', 'alice seen from the restarted instance', 5000)
  })

  it('de-duplicates a cid and replays exactly when a client reconnects to the other instance', async () => {
    const room = newRoom()
    const watchA = track(await ChatSocket.open(wsBase(a), { room, name: 'watch-a' }))
    const watchB = track(await ChatStream.open(httpBase(b), { room, name: 'watch-b' }))
    await until(() => names(presenceSeen(watchA)).length === 2, 'both watchers', 5000)
    // One sender throughout (a guest key): cids are de-duplicated per sender.
    const guest = randomUUID().replaceAll('-', '')
    const sender = await ChatSocket.open(wsBase(a), { room, name: 'mover', guest })
    for (let index = 1; index <= 10; index++) sender.send({ type: 'message', message: `m ${index}`, cid: `m-${index}` })
    const stored = await sender.waitFor(frame => frame.type === 'message' && frame.cid === 'm-10', 'echo of m-10') as ChatMessageFrame
    expect(stored.id).toBe(10)
    await sender.close()
    await watchB.waitFor(frame => frame.type === 'message' && frame.id === 10, 'id 10 on B')

    // The same client comes back through B holding up to 7, and resends m-9 and m-10 and a new one.
    const moved = track(await ChatSocket.open(wsBase(b), { room, name: 'mover', since: 7, guest }))
    moved.send({ type: 'message', message: 'm 9', cid: 'm-9' })
    moved.send({ type: 'message', message: 'm 10', cid: 'm-10' })
    moved.send({ type: 'message', message: 'm 11', cid: 'm-11' })
    await moved.waitFor(frame => frame.type === 'message' && frame.cid === 'm-11', 'echo of m-11')
    const fresh = moved.messages.filter(frame => frame.id > 7)
    expect(new Set(fresh.map(frame => frame.id)), 'the replay after 7, the resends answered with their stored frames').toEqual(new Set([8, 9, 10, 11]))
    expect(fresh.find(frame => frame.cid === 'm-10')).toEqual(stored)
    expect(fresh.find(frame => frame.cid === 'm-11')?.id).toBe(11)
    const posted = await postMessage(httpBase(a), { message: 'm 11 again', cid: 'm-11' }, { room, guest })
    expect(posted.json).toMatchObject({ id: 11, message: 'm 11' })
    const marker = await postMessage(httpBase(b), { message: 'marker', cid: 'marker' }, { room })
    expect(marker.json).toMatchObject({ id: 12 })
    for (const reader of [watchA, watchB]) {
      await reader.waitFor(frame => frame.type === 'message' && frame.id === 12, 'the marker')
      expectIds(reader, range(1, 12), 'watchers got nothing for the resends')
    }
  })

  it('the real client moving between instances (cut, resume with since, resend) ends with the store\'s log', async () => {
    const room = newRoom()
    let target = a
    const proxy = await startProxy(() => target.port)
    const clients = [
      { name: 'ws-mover', connection: chatClient(proxy.base, room, 'ws-mover', 'ws') },
      { name: 'sse-mover', connection: chatClient(proxy.base, room, 'sse-mover', 'sse') },
      { name: 'ws-on-b', connection: chatClient(httpBase(b), room, 'ws-on-b', 'ws') },
    ]
    try {
      for (const { connection } of clients) connection.open()
      await until(() => clients.every(({ connection }) => connection.status.value === 'OPEN'), 'clients open')
      const PER_CLIENT = 60
      const senders = clients.map(async ({ name, connection }) => {
        for (let index = 0; index < PER_CLIENT; index++) {
          expect(connection.send(`${name} ${index}`)).toBe(true)
          await sleep(10)
        }
      })
      const switching = (async () => {
        for (let round = 0; round < 6; round++) {
          await sleep(80)
          target = target === a ? b : a
          // Cut every connection: the movers come back on the other instance.
          for (let open = proxy.open; open > 0; open--) proxy.cut()
        }
      })()
      await Promise.all([...senders, switching])
      const total = PER_CLIENT * clients.length
      await settle(clients, total, 20_000)
      const logs = clients.map(({ connection }) => storedOf(connection).map(({ id, cid, message }) => ({ id, cid, message })))
      expect(logs[0]!.map(message => message.id)).toEqual(range(1, total))
      for (const log of logs) expect(log).toEqual(logs[0])
      const replay = track(await ChatSocket.open(wsBase(a), { room, since: 0 }))
      await until(() => replay.messages.length >= total, 'the store replay')
      expect(replay.messages.map(({ id, cid, message }) => ({ id, cid, message }))).toEqual(logs[0])
    }
    finally {
      for (const { connection } of clients) connection.close()
      await proxy.close()
    }
  })

  it('survives a Redis restart mid-conversation: nothing stored is lost, the instances catch up, the outage is logged once', async () => {
    const room = newRoom()
    const readers = await openReaders(room)
    const [onA, sseA, onB, sseB] = readers as [ChatSocket, ChatStream, ChatSocket, ChatStream]
    for (const reader of readers) await until(() => names(presenceSeen(reader)).length === 4, 'presence of all four', 5000)
    let sent = 0
    const sendOn = async (socket: ChatSocket, count: number) => {
      for (let index = 0; index < count; index++) {
        const cid = `r-${++sent}`
        socket.send({ type: 'message', message: `message ${sent}`, cid })
        await socket.waitFor(frame => frame.type === 'message' && frame.cid === cid, `echo of ${cid}`)
        await sleep(5)
      }
    }
    const outages = (server: TestServer) => server.logs().split('\n').filter(line => line.includes('Redis bus unavailable')).length
    const recoveries = (server: TestServer) => server.logs().split('\n').filter(line => line.includes('Redis bus is back')).length
    const before = { a: outages(a), b: outages(b), aBack: recoveries(a), bBack: recoveries(b) }

    await Promise.all([sendOn(onA, 15), sendOn(onB, 15)])
    for (const reader of readers) await reader.waitFor(frame => frame.type === 'message' && frame.id === 30, 'id 30 before the outage')

    try {
      await redis.stop()
      await until(() => outages(a) > before.a && outages(b) > before.b, 'both instances noticing the outage', 10_000)
      // Stored on A while the bus is down: A's readers get them live, B's cannot yet.
      await sendOn(onA, 25)
      await sseA.waitFor(frame => frame.type === 'message' && frame.id === 55, 'id 55 on A during the outage')
      await sleep(300)
      expect(onB.messages.at(-1)?.id, 'B is cut off while the bus is down').toBe(30)
    }
    finally {
      await redis.start()
    }
    // Nothing more is sent: B must catch up from the store on its own once the bus is back.
    // The last message stored during the outage too, with nothing sent after it to reveal a gap.
    for (const reader of [onB, sseB]) await reader.waitFor(frame => frame.type === 'message' && frame.id === 55, 'B catching up to 55 after the bus recovered', 10_000)
    await until(() => recoveries(a) > before.aBack && recoveries(b) > before.bBack, 'both instances logging the recovery', 10_000)

    // Live delivery resumes both ways.
    await Promise.all([sendOn(onB, 10), sendOn(onA, 10)])
    for (const reader of readers) await reader.waitFor(frame => frame.type === 'message' && frame.id === 75, 'id 75 after the outage')
    await sleep(200)
    for (const [index, reader] of readers.entries()) expectIds(reader, range(1, 75), `reader ${index}`)

    for (const server of [a, b]) {
      expect(outages(server) - (server === a ? before.a : before.b), 'the outage logged once per instance').toBe(1)
      expect(recoveries(server) - (server === a ? before.aBack : before.bBack), 'the recovery logged once per instance').toBe(1)
      expect(server.logs()).not.toMatch(/Unhandled error event/)
    }
  })
})
