import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { watch } from 'vue'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'
import { chatClient, crashAndCut, installEventSource, seededRandom, settle, sleep, startProxy, storedOf } from '../utils/chaos'
import { ChatSocket, ChatStream, postMessage, until } from '../utils/clients'
import { ownPostgresDatabase, startServer, type TestServer } from '../utils/server'

installEventSource()

const newRoom = () => `room-${randomUUID().slice(0, 8)}`
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, index) => from + index)
const wsBase = (server: TestServer) => server.wsUrl('')
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')

/** Send `count` messages over one WebSocket and wait for the last echo; returns the stored frames. */
async function seedRoom(server: TestServer, room: string, count: number, prefix = 'seed'): Promise<ChatMessageFrame[]> {
  const sender = await ChatSocket.open(wsBase(server), { room, name: 'seeder' })
  const cids = range(1, count).map(index => `${prefix}-${room}-${index}`)
  for (const [index, cid] of cids.entries()) sender.send({ type: 'message', message: `${prefix} ${index + 1}`, cid })
  await sender.waitFor(frame => frame.type === 'message' && frame.cid === cids.at(-1), `echo of ${cids.at(-1)}`, 20_000)
  const frames = sender.messages.filter(frame => frame.cid?.startsWith(`${prefix}-${room}-`))
  await sender.close()
  return frames
}

/** The newest id the store holds for `room` (what a fresh client with no cursor sees last). */
async function lastIdOf(server: TestServer, room: string): Promise<number> {
  const reader = await ChatSocket.open(wsBase(server), { room })
  await reader.waitFor(frame => frame.type === 'presence', 'presence')
  // The replay follows the presence frame at once; nothing else is live in these rooms.
  await sleep(200)
  await reader.close()
  return reader.messages.at(-1)?.id ?? 0
}

/** Every message a client holding nothing would get back (since=0), read from the store through a fresh connection. */
async function storeReplay(server: TestServer, room: string, expected: number): Promise<ChatMessageFrame[]> {
  const reader = await ChatSocket.open(wsBase(server), { room, since: 0 })
  await until(() => reader.messages.length >= expected, `${expected} replayed messages`, 15_000)
  await sleep(100)
  await reader.close()
  return reader.messages
}

/** A message frame received below the highest id seen so far must be a repeat: anything new there is a hole behind the cursor. */
function cursorViolations(ids: number[]): number[] {
  const seen = new Set<number>()
  let highest = 0
  const bad: number[] = []
  for (const id of ids) {
    if (id < highest && !seen.has(id)) bad.push(id)
    seen.add(id)
    highest = Math.max(highest, id)
  }
  return bad
}

describe.each(['sqlite', 'postgresql'] as const)('durability (%s)', (store) => {
  let server: TestServer
  let limited: TestServer
  let pruning: TestServer
  // Retention applies to every room of a database: the pruning server gets a PostgreSQL database of its own.
  let pruningDatabase: ReturnType<typeof ownPostgresDatabase> | undefined

  beforeAll(async () => {
    const limits = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_HISTORY_MAX: '50', NUXT_CHAT_MAX_REPLAY: '80', NUXT_CHAT_REPLAY: '10' }
    if (store === 'postgresql') pruningDatabase = ownPostgresDatabase('nuxt_chat_prune')
    const ownDatabase: Record<string, string> = pruningDatabase?.env ?? {}
    ;[server, limited, pruning] = await Promise.all([
      startServer({ output: store, env: { NUXT_CHAT_RATE_LIMIT: 'false' } }),
      // Retention off: replay bounds are checked on rooms longer than history.max.
      startServer({ output: store, env: { ...limits, NUXT_CHAT_HISTORY_INTERVAL: '0' } }),
      startServer({ output: store, env: { ...limits, ...ownDatabase, NUXT_CHAT_HISTORY_INTERVAL: '200' } }),
    ])
  })

  afterAll(async () => {
    await Promise.all([server?.stop('SIGKILL'), limited?.stop('SIGKILL'), pruning?.stop('SIGKILL')])
    pruningDatabase?.drop()
  })

  it('chaos: 3 clients × 200 messages through 2 crashes and random cuts end with the same log as the store', async () => {
    const seed = Number(process.env.CHAT_CHAOS_SEED) || Math.floor(Math.random() * 2 ** 31)
    const random = seededRandom(seed)
    const room = newRoom()
    const PER_CLIENT = 200
    const proxy = await startProxy(() => server.port)
    const clients = (['ws', 'ws', 'sse'] as const).map((transport, index) => {
      const name = `${transport}-${'abc'[index]}`
      return { name, connection: chatClient(proxy.base, room, name, transport) }
    })
    // Every (re)connect a client makes: each one resumes with since= and resends its outbox.
    let connects = 0
    for (const { connection } of clients) watch(connection.status, value => value === 'OPEN' && connects++, { flush: 'sync' })
    const started = Date.now()
    let chaos: ReturnType<typeof crashAndCut> | undefined
    let sent = 0
    try {
      for (const { connection } of clients) connection.open()
      await until(() => clients.every(({ connection }) => connection.status.value === 'OPEN'), 'clients open')

      let sending = true
      const senders = clients.map(async ({ name, connection }) => {
        for (let index = 0; index < PER_CLIENT; index++) {
          expect(connection.send(`${name} #${index}`), `${name} #${index} accepted`).toBe(true)
          sent++
          await sleep(8 + random() * 32)
        }
      })
      const restartAt = [0.25, 0.6].map(fraction => Math.floor(fraction * PER_CLIENT * clients.length))
      chaos = crashAndCut(server, proxy, random, restartAt, { sent: () => sent, sending: () => sending })
      await Promise.all(senders)
      // Let the restarts that are due happen even if sending was quick.
      await until(() => chaos!.counts.restarts === 2, 'two restarts', 20_000)
      sending = false
      await chaos.done

      const total = PER_CLIENT * clients.length
      await settle(clients, total, 45_000)
      const duration = Date.now() - started

      const logs = clients.map(({ connection }) => storedOf(connection).map(({ id, cid, user, message, ts }) => ({ id, cid, user, message, ts })))
      for (const [index, log] of logs.entries()) {
        const name = clients[index]!.name
        expect(log.map(message => message.id), `${name}: ids 1..${total}, each once, in order`).toEqual(range(1, total))
        expect(new Set(log.map(message => message.cid)).size, `${name}: one message per cid`).toBe(total)
        expect(new Set(log.map(message => message.message)).size, `${name}: each text once`).toBe(total)
        expect(log, `${name} holds the same log as ${clients[0]!.name}`).toEqual(logs[0])
      }
      const expectedTexts = clients.flatMap(({ name }) => range(0, PER_CLIENT - 1).map(index => `${name} #${index}`)).sort()
      expect(logs[0]!.map(message => message.message).sort()).toEqual(expectedTexts)
      // Each sender's own messages are stored in the order it sent them. Over WebSocket that is
      // guaranteed (one connection, handled in order). Over POST it holds only as far as a client
      // can know: a request whose answer was cut may still be stored after the resent ones behind it.
      const inversions: Record<string, number> = {}
      for (const { name, connection } of clients) {
        const own = logs[0]!.filter(message => message.message.startsWith(`${name} #`)).map(message => Number(message.message.split('#')[1]))
        inversions[name] = own.filter((index, position) => position > 0 && index < own[position - 1]!).length
        if (name.startsWith('ws')) expect(own, `${name}'s messages in send order`).toEqual(range(0, PER_CLIENT - 1))
        // Concurrent POSTs reordered dozens per run: the client must post one at a time.
        else expect(inversions[name], `${name}'s messages out of send order`).toBeLessThanOrEqual(3)
        expect(connection.queued).toBe(0)
      }

      const replayed = await storeReplay(server, room, total)
      expect(replayed.map(({ id, cid, user, message, ts }) => ({ id, cid, user, message, ts })), 'the store replays what the clients hold').toEqual(logs[0])

      expect(connects, 'every client reconnected after each crash').toBeGreaterThanOrEqual(clients.length * (chaos!.counts.restarts + 1))
      console.log(`[chaos ${store}] ${total} messages from ${clients.length} clients (2 WS, 1 SSE+POST), ${chaos!.counts.restarts} SIGKILL restarts, ${chaos!.counts.cuts} connection cuts, ${connects} connects, ${(duration / 1000).toFixed(1)} s, ${inversions['sse-c']} POST order inversions, seed ${seed}`)
    }
    finally {
      for (const { connection } of clients) connection.close()
      await proxy.close()
      if (server.process()?.exitCode !== null || server.process()?.signalCode) await server.start().catch(() => {})
    }
  }, 110_000)

  it('chaos with events: messages, edits, deletes and reactions through a crash and random cuts end with every client showing the store\'s state', async () => {
    const seed = Number(process.env.CHAT_CHAOS_SEED) || Math.floor(Math.random() * 2 ** 31)
    const random = seededRandom(seed)
    const room = newRoom()
    const PER_CLIENT = 60
    const proxy = await startProxy(() => server.port)
    const clients = (['ws', 'ws', 'sse'] as const).map((transport, index) => {
      const name = `${transport}-${'abc'[index]}`
      return { name, connection: chatClient(proxy.base, room, name, transport) }
    })
    let chaos: ReturnType<typeof crashAndCut> | undefined
    const counts = { edits: 0, deletes: 0, reactions: 0 }
    try {
      for (const { connection } of clients) connection.open()
      await until(() => clients.every(({ connection }) => connection.status.value === 'OPEN' && connection.me.value), 'clients open')
      let sent = 0
      let sending = true
      const senders = clients.map(async ({ name, connection }) => {
        for (let index = 0; index < PER_CLIENT; index++) {
          connection.send(`${name} #${index}`)
          sent++
          // Now and then change a stored message: own ones for edits and deletes, anyone's for reactions.
          const stored = storedOf(connection)
          const own = stored.filter(message => message.uid === connection.me.value?.id)
          const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]
          const roll = random()
          if (roll < 0.15 && own.length && connection.edit(pick(own)!.id!, `${name} edit ${index}`)) counts.edits++
          else if (roll < 0.22 && own.length && connection.remove(pick(own)!.id!)) counts.deletes++
          else if (roll < 0.5 && stored.length && connection.react(pick(stored)!.id!, pick(['👍', '🎉', '❤️'])!)) counts.reactions++
          await sleep(10 + random() * 30)
        }
      })
      chaos = crashAndCut(server, proxy, random, [PER_CLIENT * clients.length / 2], { sent: () => sent, sending: () => sending })
      await Promise.all(senders)
      await until(() => chaos!.counts.restarts === 1, 'the restart', 20_000)
      sending = false
      await chaos.done
      await until(() => clients.every(({ connection }) => connection.queued === 0 && connection.status.value === 'OPEN'), 'every outbox empty', 45_000)

      // The store's state, read through the server-side API: live messages with their text, edited flag and reaction counts.
      const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'history', room, limit: 1000 }) })
      const frames = await response.json() as (ChatMessageFrame & { reactions?: Record<string, string[]> })[]
      const last = frames.at(-1)!.id
      const storeState = frames.filter(frame => frame.type === 'message' && !frame.deleted).map(frame => ({
        id: frame.id, message: frame.message, edited: frame.edited !== undefined,
        reactions: Object.fromEntries(Object.entries(frame.reactions ?? {}).map(([emoji, users]) => [emoji, users.length]).sort()),
      }))
      expect(storeState.length).toBeGreaterThan(0)
      const stateOf = (connection: ReturnType<typeof chatClient>) => storedOf(connection).map(message => ({
        id: message.id, message: message.message, edited: message.edited !== undefined,
        reactions: Object.fromEntries((message.reactions ?? []).map(reaction => [reaction.emoji, reaction.count]).sort()),
      }))
      for (const { name, connection } of clients) {
        await until(() => JSON.stringify(stateOf(connection)) === JSON.stringify(storeState), `${name} to show the store's state (up to id ${last})`, 15_000).catch(() => {})
        expect(stateOf(connection), `${name} shows what the store holds`).toEqual(storeState)
      }
      console.log(`[chaos events ${store}] ${PER_CLIENT * clients.length} messages, ${counts.edits} edits, ${counts.deletes} deletes, ${counts.reactions} reactions asked; ${last} ids stored; ${chaos!.counts.restarts} SIGKILL restart, ${chaos!.counts.cuts} cuts, seed ${seed}`)
    }
    finally {
      for (const { connection } of clients) connection.close()
      await proxy.close()
      if (server.process()?.exitCode !== null || server.process()?.signalCode) await server.start().catch(() => {})
    }
  }, 110_000)

  it('replays exactly the messages after a cursor over WebSocket and SSE, Last-Event-ID winning over since', async () => {
    const room = newRoom()
    await seedRoom(server, room, 30)
    const marker = async () => (await postMessage(httpBase(server), { message: 'marker', cid: randomUUID() }, { room })).json as ChatMessageFrame

    for (const since of [0, 1, 17, 29]) {
      const last = await lastIdOf(server, room)
      const socket = await ChatSocket.open(wsBase(server), { room, since })
      const stream = await ChatStream.open(httpBase(server), { room, since })
      await socket.waitFor(frame => frame.type === 'presence', 'presence')
      await stream.waitFor(frame => frame.type === 'presence', 'SSE presence')
      const live = await marker()
      for (const reader of [socket, stream]) {
        await reader.waitFor(frame => frame.type === 'message' && frame.id === live.id, 'the live marker')
        expect(reader.frames[0]).toMatchObject({ type: 'system', event: 'welcome' })
        expect(reader.frames[1]).toMatchObject({ type: 'presence' })
        expect(reader.messages.map(frame => frame.id), `since=${since}`).toEqual([...range(since + 1, last), live.id])
      }
      expect(stream.ids.filter(Boolean).map(Number), 'SSE id: lines carry the message ids').toEqual([...range(since + 1, last), live.id])
      await socket.close()
      await stream.close()
    }

    // A cursor equal to the newest id replays nothing; Last-Event-ID beats since.
    const last = await lastIdOf(server, room)
    const resumed = await ChatStream.open(httpBase(server), { room, since: 3 }, { 'last-event-id': String(last - 2) })
    await resumed.waitFor(frame => frame.type === 'presence', 'presence')
    const live = await marker()
    await resumed.waitFor(frame => frame.type === 'message' && frame.id === live.id, 'the live marker')
    expect(resumed.messages.map(frame => frame.id)).toEqual([last - 1, last, live.id])
    await resumed.close()
  })

  it('bounds a replay by maxReplay and replay, and treats a malformed cursor as none', async () => {
    const room = newRoom()
    await seedRoom(limited, room, 90)
    const replayOf = async (params: { since?: number }) => {
      const socket = await ChatSocket.open(wsBase(limited), { room, ...params })
      const stream = await ChatStream.open(httpBase(limited), { room, ...params })
      // Nothing is live in this room: the replay is complete when no more frames come.
      await socket.waitFor(frame => frame.type === 'presence', 'presence')
      await stream.waitFor(frame => frame.type === 'presence', 'presence')
      await sleep(300)
      await socket.close()
      await stream.close()
      return { ws: socket.messages.map(frame => frame.id), sse: stream.messages.map(frame => frame.id) }
    }
    expect(await replayOf({ since: 0 })).toEqual({ ws: range(11, 90), sse: range(11, 90) })
    expect(await replayOf({ since: 5 })).toEqual({ ws: range(11, 90), sse: range(11, 90) })
    expect(await replayOf({ since: 70 })).toEqual({ ws: range(71, 90), sse: range(71, 90) })
    expect(await replayOf({})).toEqual({ ws: range(81, 90), sse: range(81, 90) })
    const stream = await ChatStream.open(httpBase(limited), { room }, { 'last-event-id': 'not-a-cursor' })
    await stream.waitFor(frame => frame.type === 'presence', 'presence')
    await sleep(300)
    await stream.close()
    expect(stream.messages.map(frame => frame.id), 'malformed Last-Event-ID: as if none').toEqual(range(81, 90))
    // A cursor the room never reached (a reset store, another deployment) is unknown: as if none too.
    expect(await replayOf({ since: 5000 }), 'cursor ahead of the room').toEqual({ ws: range(81, 90), sse: range(81, 90) })
  })

  it('misses nothing between the replay query and going live: readers joining during a flood get each id once, in order', async () => {
    const room = newRoom()
    await seedRoom(server, room, 20)
    const watcher = await ChatSocket.open(wsBase(server), { room, since: 20 })
    const sender = await ChatSocket.open(wsBase(server), { room, name: 'flood' })
    const WS_COUNT = 300
    const POST_COUNT = 60
    const flood = (async () => {
      for (let index = 0; index < WS_COUNT; index++) {
        sender.send({ type: 'message', message: `flood ${index}`, cid: `flood-${index}` })
        await sleep(4)
      }
    })()
    const posts = (async () => {
      for (let index = 0; index < POST_COUNT; index++) {
        const { status } = await postMessage(httpBase(server), { message: `post ${index}`, cid: `post-${index}` }, { room })
        expect(status).toBe(200)
      }
    })()
    const readers: { since: number, reader: ChatSocket | ChatStream, kind: string }[] = []
    for (let index = 0; index < 12; index++) {
      await sleep(25)
      const seen = watcher.messages.at(-1)?.id ?? 20
      const since = Math.max(0, seen - (index % 3) * 7)
      const kind = index % 2 ? 'sse' : 'ws'
      const reader = kind === 'ws' ? await ChatSocket.open(wsBase(server), { room, since }) : await ChatStream.open(httpBase(server), { room, since })
      readers.push({ since, reader, kind })
    }
    await Promise.all([flood, posts])
    const total = 20 + WS_COUNT + POST_COUNT
    expect(readers.every(({ since }) => since < total - 20), 'every reader joined while the flood was going on').toBe(true)
    await watcher.waitFor(frame => frame.type === 'message' && frame.id === total, `id ${total}`, 20_000)
    for (const { since, reader, kind } of readers) {
      await reader.waitFor(frame => frame.type === 'message' && frame.id === total, `${kind} reader since=${since} reaching ${total}`, 20_000)
      expect(reader.messages.map(frame => frame.id), `${kind} reader since=${since}`).toEqual(range(since + 1, total))
    }
    expect(watcher.messages.map(frame => frame.id)).toEqual(range(21, total))
    for (const { reader } of readers) await reader.close()
    await watcher.close()
    await sender.close()
  })

  it('de-duplicates a cid across a server crash: not stored again, the sender gets the stored frame, others get nothing new', async () => {
    const room = newRoom()
    await seedRoom(server, room, 200)
    // A guest key: cids are de-duplicated per sender, and only a key makes a guest the same sender again.
    const guest = randomUUID().replaceAll('-', '')
    const first = await ChatSocket.open(wsBase(server), { room, name: 'alice', guest })
    first.send({ type: 'message', message: 'only once', cid: 'once-1' })
    const stored = await first.waitFor(frame => frame.type === 'message' && frame.cid === 'once-1', 'the echo') as ChatMessageFrame
    expect(stored.id).toBe(201)

    await server.stop('SIGKILL')
    await server.start()

    // Resend right on connect, with nothing in memory on the new process, as a client's outbox does.
    const again = await ChatSocket.open(wsBase(server), { room, name: 'alice', since: 0, guest })
    again.send({ type: 'message', message: 'changed text', cid: 'once-1' })
    await again.waitFor(frame => frame.type === 'message' && frame.id === 201, 'replay up to 201')
    const echoes = () => again.messages.filter(frame => frame.cid === 'once-1')
    await until(() => echoes().length >= 2, 'the stored frame sent back for the resend')
    // The replay carries it as stored; the answer to the resend is the same frame marked `duplicate`.
    expect(echoes()).toEqual([stored, { ...stored, duplicate: true }])
    // The resend's answer must not overtake the replay: a client's cursor would skip what it has not got yet.
    expect(cursorViolations(again.messages.map(frame => frame.id)), 'new ids arriving below the cursor').toEqual([])

    const other = await ChatSocket.open(wsBase(server), { room, name: 'bob', since: 201 })
    await other.waitFor(frame => frame.type === 'presence', 'presence')
    const posted = await postMessage(httpBase(server), { message: 'also changed', cid: 'once-1' }, { room, guest })
    expect(posted.status).toBe(200)
    expect(posted.json).toEqual({ ...stored, duplicate: true })
    again.send({ type: 'message', message: 'once-1 again', cid: 'once-1' })
    again.send({ type: 'message', message: 'next', cid: 'once-2' })
    const next = await other.waitFor(frame => frame.type === 'message' && frame.cid === 'once-2', 'the next message') as ChatMessageFrame
    expect(next.id).toBe(202)
    expect(other.messages.map(frame => frame.id), 'others got nothing for the resends').toEqual([202])

    const replay = await storeReplay(server, room, 202)
    expect(replay.map(frame => frame.id)).toEqual(range(1, 202))
    expect(replay.filter(frame => frame.cid === 'once-1')).toEqual([stored])
    await Promise.all([first.close(), again.close(), other.close()])
  })

  it('keeps the newest history.max messages per room, and ids keep increasing after pruning and a restart', async () => {
    const room = newRoom()
    await seedRoom(pruning, room, 300)
    // Retention runs on its timer (every 200 ms here, off the send path): poll until it has.
    const replayIds = async () => {
      const reader = await ChatSocket.open(wsBase(pruning), { room, since: 0 })
      await reader.waitFor(frame => frame.type === 'presence', 'presence')
      await sleep(150)
      await reader.close()
      return reader.messages.map(frame => frame.id)
    }
    let ids: number[] = []
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      ids = await replayIds()
      if (ids.length === 50) break
    }
    expect(ids).toEqual(range(251, 300))

    const posted = await postMessage(httpBase(pruning), { message: 'after prune', cid: 'after-prune' }, { room })
    expect(posted.json).toMatchObject({ id: 301 })
    await pruning.stop('SIGKILL')
    await pruning.start()
    const afterRestart = await postMessage(httpBase(pruning), { message: 'after restart', cid: 'after-restart' }, { room })
    expect(afterRestart.json).toMatchObject({ id: 302 })
    // A cursor inside the pruned range replays what is left, in order.
    const reader = await ChatStream.open(httpBase(pruning), { room }, { 'last-event-id': '100' })
    await reader.waitFor(frame => frame.type === 'message' && frame.id === 302, 'the newest message')
    // What is left, in order: 251..302, or fewer old ones if retention's timer ran again meanwhile.
    const left = reader.messages.map(frame => frame.id)
    expect(left[0]).toBeGreaterThanOrEqual(251)
    expect(left).toEqual(range(left[0]!, 302))
    expect(left.length).toBeGreaterThanOrEqual(50)
    await reader.close()
  })
})
