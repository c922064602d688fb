import { randomBytes, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChatHistoryFrame, ChatMessageFrame } from '../../src/runtime/shared/protocol'
import { sleep } from '../utils/chaos'
import { ChatSocket, postMessage, until, untilOnOneBus } from '../utils/clients'
import { ownPostgresDatabase, REDIS_URL, startServer, type TestServer } from '../utils/server'

/**
 * Issue 22, findings 1, 2 and 6 (storage): edits, deletes and reactions change a message's state
 * without taking a message's place (docs/PROTOCOL.md, "Edits, deletes and reactions"); reaction bounds hold for
 * same-tick sends; an emptied room keeps only its last number.
 */
const newRoom = (prefix = 'state') => `${prefix}-${randomUUID().slice(0, 8)}`
const guestKey = () => randomBytes(18).toString('base64url')
const ALICE = { cookie: 'session=alice-token' }
const NO_LIMITS = { NUXT_CHAT_RATE_LIMIT: 'false' }

/** Open sockets, remember them for closing. */
function socketsOf(server: () => TestServer, closers: (() => unknown)[]) {
  return async (room: string, params: { since?: number, guest?: string, name?: string } = {}, headers: Record<string, string> = {}, on = server()) => {
    const socket = await ChatSocket.open(on.wsUrl(''), { room, name: params.name ?? 'reader', ...params }, { headers })
    closers.push(() => socket.close())
    await socket.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'welcome')
    return socket
  }
}

/** Wait until a socket received nothing new for `quiet` ms. */
async function settled(socket: ChatSocket, quiet = 300) {
  let seen = -1
  while (seen !== socket.frames.length) {
    seen = socket.frames.length
    await sleep(quiet)
  }
}

/** Send `count` chat messages with cids and wait for their acknowledgements; their ids. */
async function postAll(socket: ChatSocket, count: number, prefix: string): Promise<number[]> {
  for (let index = 1; index <= count; index++) socket.send({ type: 'message', message: `${prefix} ${index}`, cid: `${prefix}-${index}` })
  await socket.waitFor(frame => frame.cid === `${prefix}-${count}` && frame.type === 'message', `${prefix} stored`)
  return Array.from({ length: count }, (_, index) => socket.frames.find(frame => frame.cid === `${prefix}-${index + 1}` && frame.type === 'message')!.id as number)
}

/** `count` toggles of `emoji` on `target`, sent in order on `socket`, all answered. */
async function toggle(socket: ChatSocket, target: number, count: number, prefix: string, emoji = '👍') {
  for (let index = 1; index <= count; index++) socket.send({ type: 'reaction', target, emoji, cid: `${prefix}-${index}` })
  await socket.waitFor(frame => frame.cid === `${prefix}-${count}`, `${prefix} answered`)
}

/** A room's newest page of history, as a fresh WebSocket sees it. */
async function historyOf(server: TestServer, room: string): Promise<ChatHistoryFrame> {
  const socket = await ChatSocket.open(server.wsUrl(''), { room, name: 'historian' })
  try {
    socket.send({ type: 'history', limit: 200 })
    return await socket.waitFor(frame => frame.type === 'history', 'history') as unknown as ChatHistoryFrame
  }
  finally {
    await socket.close()
  }
}

describe.each(['sqlite', 'postgresql'] as const)('events are state, not messages (%s)', (store) => {
  let server: TestServer
  const closers: (() => unknown)[] = []
  const socket = socketsOf(() => server, closers)

  beforeAll(async () => {
    server = await startServer({ output: store, env: NO_LIMITS })
  })

  afterAll(async () => {
    for (const close of closers) await close()
    await server?.stop()
  })

  it('10 messages, then 80 toggles of one 👍 by two guests: a newcomer\'s default replay holds the 10 messages, with their reactions', async () => {
    const room = newRoom()
    const [one, two] = [await socket(room, { guest: guestKey(), name: 'One' }), await socket(room, { guest: guestKey(), name: 'Two' })]
    const ids = await postAll(one, 10, 'm')
    // 41 + 39 toggles: both end with their 👍 on the last message.
    await Promise.all([toggle(one!, ids[9]!, 41, 'one'), toggle(two!, ids[9]!, 39, 'two')])
    const uids = [one, two].map(guest => (guest!.frames.find(frame => frame.type === 'system' && frame.event === 'welcome')!.peer as { id: string }).id)

    const newcomer = await socket(room)
    await settled(newcomer)
    const replayed = newcomer.frames.filter(frame => typeof frame.id === 'number')
    const bytes = newcomer.raw.reduce((sum, frame) => sum + Buffer.byteLength(frame.data), 0)
    console.log(`[eventState/${store}] newcomer after 10 messages + 80 toggles: ${replayed.filter(frame => frame.type === 'message').length}/10 messages, ${replayed.length} stored frames, ${bytes} bytes`)
    expect(replayed.map(frame => [frame.type, frame.id])).toEqual(ids.map(id => ['message', id]))
    expect(replayed.at(-1)!.reactions).toEqual({ '👍': expect.arrayContaining(uids) })
    expect((replayed.at(-1)!.reactions as Record<string, string[]>)['👍']).toHaveLength(2)
    // The last replayed frame brings the client to the room's newest number (the last toggle).
    const newest = Math.max(...[one, two].flatMap(guest => guest!.frames.filter(frame => frame.type === 'reaction').map(frame => frame.id as number)))
    expect(replayed.at(-1)!.rev).toBe(newest)
    // Live again: the next toggle follows that number.
    one!.send({ type: 'reaction', target: ids[0], emoji: '🎉', cid: 'after' })
    expect(await newcomer.waitFor(frame => frame.type === 'reaction', 'a live toggle')).toMatchObject({ id: newest + 1, target: ids[0], on: true })
  })

  it('a client resuming after its cursor across a toggle flood gets each changed message once, with its state, then the live stream', async () => {
    const room = newRoom()
    const author = await socket(room, {}, ALICE)
    const ids = await postAll(author, 5, 'r')
    const flooders = [await socket(room, { guest: guestKey() }), await socket(room, { guest: guestKey() })]
    const cursor = ids[4]!
    // While the reader is away: 60 toggles on message 2, an edit of 3, a delete of 4, a new message.
    await Promise.all([toggle(flooders[0]!, ids[1]!, 31, 'f0'), toggle(flooders[1]!, ids[1]!, 29, 'f1')])
    author.send({ type: 'edit', target: ids[2], message: 'r 3, edited', cid: 'edit' })
    author.send({ type: 'delete', target: ids[3], cid: 'delete' })
    author.send({ type: 'message', message: 'while away', cid: 'away' })
    const away = await author.waitFor(frame => frame.cid === 'away' && frame.type === 'message', 'the new message')

    const reader = await socket(room, { since: cursor })
    await settled(reader)
    const replayed = reader.frames.filter(frame => typeof frame.id === 'number')
    const bytes = reader.raw.reduce((sum, frame) => sum + Buffer.byteLength(frame.data), 0)
    console.log(`[eventState/${store}] resume across 60 toggles, an edit, a delete and a message: ${replayed.length} stored frames, ${bytes} bytes`)
    expect(replayed.map(frame => [frame.type, frame.id])).toEqual([['message', ids[1]], ['message', ids[2]], ['message', ids[3]], ['message', away.id]])
    expect((replayed[0]!.reactions as Record<string, string[]>)['👍']).toHaveLength(2)
    expect(replayed[1]).toMatchObject({ message: 'r 3, edited', edited: expect.any(Number) })
    expect(replayed[2]).toMatchObject({ message: '', deleted: true })
    // In the order of their numbers: `rev` where the state includes a change or the numbers skip, else the id.
    const revs = replayed.map(frame => (frame.rev ?? frame.id) as number)
    expect(revs).toEqual([...revs].sort((a, b) => a - b))
    expect(replayed.slice(0, 3).every(frame => typeof frame.rev === 'number')).toBe(true)
    expect(revs.at(-1)).toBe(away.id)

    // A resume from the last number gets nothing more.
    const again = await socket(room, { since: revs.at(-1) })
    await settled(again)
    expect(again.frames.filter(frame => typeof frame.id === 'number')).toEqual([])
  })

  it('history pages hold messages only, with their current state', async () => {
    const room = newRoom()
    const author = await socket(room, {}, ALICE)
    const ids = await postAll(author, 3, 'h')
    await toggle(author, ids[0]!, 3, 'h-t')
    author.send({ type: 'edit', target: ids[1], message: 'h 2, edited', cid: 'h-e' })
    await author.waitFor(frame => frame.cid === 'h-e', 'the edit')
    const page = await historyOf(server, room)
    expect(page.messages.map(frame => [frame.type, frame.id, frame.message])).toEqual([['message', ids[0], 'h 1'], ['message', ids[1], 'h 2, edited'], ['message', ids[2], 'h 3']])
    expect((page.messages[0] as ChatMessageFrame).reactions).toEqual({ '👍': ['u-alice'] })
  })

  it('the emoji rule counts UTF-16 code units and refuses format characters: a clear error, nothing stored', async () => {
    const room = newRoom()
    const author = await socket(room, {}, ALICE)
    const [id] = await postAll(author, 1, 'e')
    const refused = ['😀'.repeat(17), '\u200B', '👍\u202E', 'a\u200Bb', '\uFEFF', '\u2066👍']
    for (const [index, emoji] of refused.entries()) author.send({ type: 'reaction', target: id, emoji, cid: `bad-${index}` })
    for (const index of refused.keys()) {
      expect(await author.waitFor(frame => frame.cid === `bad-${index}`, `answer ${index}`)).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('UTF-16') })
    }
    for (const emoji of refused) expect((await postMessage(server.url('').replace(/\/$/, ''), { type: 'reaction', target: id, emoji }, { room }, ALICE)).status).toBe(400)
    // Accepted: 16 emoji of 2 units (32), a family joined by U+200D.
    author.send({ type: 'reaction', target: id, emoji: '😀'.repeat(16), cid: 'ok-1' })
    author.send({ type: 'reaction', target: id, emoji: '👨‍👩‍👧', cid: 'ok-2' })
    await author.waitFor(frame => frame.cid === 'ok-2', 'accepted')
    const page = await historyOf(server, room)
    expect((page.messages[0] as ChatMessageFrame).reactions).toEqual({ ['😀'.repeat(16)]: ['u-alice'], '👨‍👩‍👧': ['u-alice'] })
  })

  it('a reaction named like an object\'s own keys (`__proto__`, `constructor`) is a reaction like any: the message stays readable, joinable, deletable', async () => {
    const room = newRoom()
    const author = await socket(room, {}, ALICE)
    const [id] = await postAll(author, 1, 'p')
    for (const [index, emoji] of ['__proto__', 'constructor', 'toString'].entries()) author.send({ type: 'reaction', target: id, emoji, cid: `proto-${index}` })
    for (const index of [0, 1, 2]) expect(await author.waitFor(frame => frame.cid === `proto-${index}`, `answer ${index}`)).toMatchObject({ type: 'reaction', on: true })
    // Before, every read of the message threw: history and replays answered `unavailable`, and the message could not be deleted.
    const page = await historyOf(server, room)
    expect(JSON.parse(JSON.stringify((page.messages[0] as ChatMessageFrame).reactions))).toEqual(JSON.parse('{"__proto__":["u-alice"],"constructor":["u-alice"],"toString":["u-alice"]}'))
    const reader = await socket(room, { since: 0 })
    await reader.waitFor(frame => frame.type === 'message' && frame.id === id, 'the message in the replay')
    author.send({ type: 'reaction', target: id, emoji: 'constructor', cid: 'proto-off' })
    expect(await author.waitFor(frame => frame.cid === 'proto-off', 'taken back')).toMatchObject({ type: 'reaction', on: false })
    author.send({ type: 'delete', target: id, cid: 'proto-delete' })
    expect(await author.waitFor(frame => frame.cid === 'proto-delete', 'the delete')).toMatchObject({ type: 'delete', target: id })
  })
})

describe.each(['sqlite', 'postgresql'] as const)('retention counts messages, and an emptied room keeps only its last number (%s)', (store) => {
  const closers: (() => unknown)[] = []
  const databases: ReturnType<typeof ownPostgresDatabase>[] = []
  afterAll(async () => {
    for (const close of closers) await close()
    for (const database of databases) database.drop()
  })
  // Retention walks every room of its database: on the shared one it would delete other tests' history while they run.
  const ownDatabase = (): Record<string, string> => store === 'postgresql' ? databases[databases.push(ownPostgresDatabase('nuxt_chat_retention')) - 1]!.env : {}

  it('history.max 10: 10 messages outlive 80 toggles; unread counts the messages of others only', async () => {
    const server = await startServer({ output: store, env: { ...NO_LIMITS, ...ownDatabase(), NUXT_CHAT_HISTORY_MAX: '10', NUXT_CHAT_HISTORY_INTERVAL: '100' } })
    closers.push(() => server.stop())
    const socket = socketsOf(() => server, closers)
    const room = newRoom('max')
    const alice = await socket(room, {}, ALICE)
    await alice.close()
    const [one, two] = [await socket(room, { guest: guestKey() }), await socket(room, { guest: guestKey() })]
    const ids = await postAll(one!, 10, 'k')
    await Promise.all([toggle(one!, ids[0]!, 40, 'k1'), toggle(two!, ids[0]!, 40, 'k2')])
    await sleep(600)
    const page = await historyOf(server, room)
    expect(page.messages.map(frame => frame.id)).toEqual(ids)
    const back = await socket(room, {}, ALICE)
    expect(await back.waitFor(frame => frame.type === 'read', 'read state')).toMatchObject({ unread: 10 })
  })

  it('maxAge: every message goes, the room keeps no text, and its next message takes a higher id than any before', async () => {
    const server = await startServer({ output: store, env: { ...NO_LIMITS, ...ownDatabase(), NUXT_CHAT_HISTORY_MAX_AGE: '400', NUXT_CHAT_HISTORY_INTERVAL: '100' } })
    closers.push(() => server.stop())
    const socket = socketsOf(() => server, closers)
    const room = newRoom('empty')
    const author = await socket(room, {}, ALICE)
    const ids = await postAll(author, 3, 'oldsecret')
    await toggle(author, ids[2]!, 1, 'z')
    const highest = author.frames.find(frame => frame.cid === 'z-1')!.id as number
    await author.close()
    // Retention walks every room of its database: wait for its pass to reach this one.
    const deadline = Date.now() + 15_000
    while ((await historyOf(server, room)).messages.length && Date.now() < deadline) await sleep(300)
    expect((await historyOf(server, room)).messages).toEqual([])
    const newcomer = await socket(room)
    await settled(newcomer, 200)
    expect(newcomer.frames.filter(frame => typeof frame.id === 'number')).toEqual([])
    expect(JSON.stringify(newcomer.frames)).not.toContain('oldsecret')
    const next = await postMessage(server.url('').replace(/\/$/, ''), { message: 'after the silence' }, { room })
    expect(next.json?.id).toBeGreaterThan(highest)
  })
})

describe('reaction bounds under same-tick sends', () => {
  const servers: TestServer[] = []
  const closers: (() => unknown)[] = []
  afterAll(async () => {
    for (const close of closers) await close()
    for (const server of servers) await server.stop()
  })

  /** One server on SQLite, or two PostgreSQL instances on one database over Redis. */
  const setups = {
    'sqlite': async () => [await startServer({ env: NO_LIMITS })],
    'two PostgreSQL instances over Redis': async () => {
      const started = await Promise.all([0, 1].map(() => startServer({ output: 'postgresql', env: { ...NO_LIMITS, NUXT_CHAT_REDIS_URL: REDIS_URL } })))
      await untilOnOneBus(started[0]!, started[1]!)
      return started
    },
  }

  for (const [name, setup] of Object.entries(setups)) {
    it(`${name}: 12 reactions from one person over 12 sockets store exactly 5; 30 people store exactly 20 different emoji`, async () => {
      const started = await setup()
      servers.push(...started)
      const socket = socketsOf(() => started[0]!, closers)
      const room = newRoom('bounds')
      const author = await socket(room, {}, ALICE)
      const [target, other] = await postAll(author, 2, 'b')
      const on = (index: number) => started[index % started.length]!

      // One person, 12 connections, 12 different emoji in the same tick.
      const tabs = await Promise.all(Array.from({ length: 12 }, (_, index) => socket(room, {}, ALICE, on(index))))
      await Promise.all(tabs.map(tab => settled(tab, 100)))
      tabs.forEach((tab, index) => tab.send({ type: 'reaction', target, emoji: `e${index}`, cid: `tab-${index}` }))
      const answers = await Promise.all(tabs.map((tab, index) => tab.waitFor(frame => frame.cid === `tab-${index}`, `tab ${index} answered`)))
      const stored = answers.filter(frame => frame.type === 'reaction').length
      expect(answers.filter(frame => frame.type === 'error').every(frame => frame.code === 'rejected')).toBe(true)

      // 30 people, one distinct emoji each, in the same tick.
      const people = await Promise.all(Array.from({ length: 30 }, (_, index) => socket(room, { guest: guestKey(), name: `p${index}` }, {}, on(index))))
      await Promise.all(people.map(person => settled(person, 100)))
      people.forEach((person, index) => person.send({ type: 'reaction', target: other, emoji: `p${index}`, cid: `p-${index}` }))
      const replies = await Promise.all(people.map((person, index) => person.waitFor(frame => frame.cid === `p-${index}`, `person ${index} answered`)))

      await sleep(300)
      const page = await historyOf(started[started.length - 1]!, room)
      const reactionsOf = (id: number) => (page.messages.find(frame => frame.id === id) as ChatMessageFrame).reactions ?? {}
      const mine = Object.values(reactionsOf(target!)).filter(users => users.includes('u-alice')).length
      const distinct = Object.keys(reactionsOf(other!)).length
      console.log(`[eventState/${name}] 12 same-tick reactions from one person: ${stored} acknowledged, ${mine} stored; 30 same-tick people: ${distinct} distinct emoji stored`)
      expect(stored).toBe(5)
      expect(mine).toBe(5)
      expect(replies.filter(frame => frame.type === 'reaction')).toHaveLength(20)
      expect(distinct).toBe(20)
      expect(replies.filter(frame => frame.type === 'error').every(frame => frame.code === 'rejected')).toBe(true)
    })
  }
})

// Two toggles racing a delete: one change stored per live target, never a change of a deleted message.
describe('changes racing a delete (sqlite)', () => {
  let server: TestServer
  const closers: (() => unknown)[] = []
  const socket = socketsOf(() => server, closers)
  beforeAll(async () => {
    server = await startServer({ env: NO_LIMITS })
  })
  afterAll(async () => {
    for (const close of closers) await close()
    await server?.stop()
  })

  it('same-tick deletes of one message over 6 sockets store one delete; edits sent with them are stored before it or refused not_found', async () => {
    const room = newRoom('race')
    const tabs = await Promise.all(Array.from({ length: 6 }, () => socket(room, {}, ALICE)))
    const [id] = await postAll(tabs[0]!, 1, 'x')
    await Promise.all(tabs.map(tab => until(() => tab.frames.some(frame => frame.id === id), 'the message')))
    tabs.forEach((tab, index) => tab.send(index % 2 ? { type: 'delete', target: id, cid: `d-${index}` } : { type: 'edit', target: id, message: `edit ${index}`, cid: `d-${index}` }))
    const answers = await Promise.all(tabs.map((tab, index) => tab.waitFor(frame => frame.cid === `d-${index}`, `answer ${index}`)))
    expect(answers.filter(frame => frame.type === 'delete')).toHaveLength(1)
    const deleteId = answers.find(frame => frame.type === 'delete')!.id as number
    for (const answer of answers) {
      if (answer.type === 'edit') expect(answer.id).toBeLessThan(deleteId)
      else if (answer.type === 'error') expect(answer.code).toBe('not_found')
    }
  })
})
