import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChatMessageFrame, ChatUser } from '../../src/runtime/shared/protocol'
import { sleep } from '../utils/chaos'
import { ChatSocket, ChatStream, presenceSeen, until, untilOnOneBus } from '../utils/clients'
import { callServer, REDIS_URL, startServer, type TestServer } from '../utils/server'

const PRESENCE_INTERVAL = 500
const newRoom = (prefix = 'api') => `${prefix}-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const ALICE = { cookie: 'session=alice-token' }

describe('server-side API (useChatServer) and chat:stored, two PostgreSQL instances on Redis', () => {
  let a: TestServer
  let b: TestServer
  // A generous presence wait: on a loaded machine an instance may take longer than 500 ms to answer.
  const env = { NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_PRESENCE_INTERVAL: String(PRESENCE_INTERVAL), NUXT_CHAT_PRESENCE_WAIT: '3000', NUXT_CHAT_RATE_LIMIT: 'false' }
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }

  /** A WebSocket and an SSE reader on each instance, all seeing each other. */
  async function openReaders(room: string, headers: Record<string, string> = {}) {
    const readers = [
      track(await ChatSocket.open(a.wsUrl(''), { room, name: 'a-ws' }, { headers })),
      track(await ChatStream.open(httpBase(a), { room, name: 'a-sse' }, headers)),
      track(await ChatSocket.open(b.wsUrl(''), { room, name: 'b-ws' }, { headers })),
      track(await ChatStream.open(httpBase(b), { room, name: 'b-sse' }, headers)),
    ] as const
    const expected = Object.keys(headers).length ? 1 : 4
    for (const reader of readers) await until(() => presenceSeen(reader).length === expected, 'everyone in presence', 5000)
    return readers
  }

  beforeAll(async () => {
    ;[a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
  })

  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')])
  })

  it('send from a server route on one instance reaches every member on both instances once, in room order', async () => {
    const room = newRoom()
    const readers = await openReaders(room)
    const bot = { id: 'bot-deploy', name: 'Deploy bot' }
    const first = await callServer<unknown>(a, { call: 'send', room, message: 'deploy started', user: bot, cid: 'deploy-1' })
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ type: 'message', id: 1, room, user: 'Deploy bot', uid: 'bot-deploy', message: 'deploy started', cid: 'deploy-1' })
    // Without `user`: from `server`; a repeated cid is answered with the stored message, not stored again.
    expect((await callServer<unknown>(b, { call: 'send', room, message: 'maintenance at noon' })).body).toMatchObject({ id: 2, user: 'server', uid: 'server' })
    expect((await callServer<unknown>(b, { call: 'send', room, message: 'deploy started', user: bot, cid: 'deploy-1' })).body).toMatchObject({ id: 1 })
    readers[0].send({ type: 'message', message: 'thanks bot', cid: 'c-1' })
    for (const reader of readers) await reader.waitFor(frame => frame.type === 'message' && frame.id === 3, 'id 3')
    await sleep(300)
    for (const reader of readers) {
      expect(reader.messages.map(frame => [frame.id, frame.user, frame.message])).toEqual([[1, 'Deploy bot', 'deploy started'], [2, 'server', 'maintenance at noon'], [3, 'a-ws', 'thanks bot']])
    }
  })

  it('send runs the chat:message hook and the length check, not the rate limit, and answers refusals with a status', async () => {
    const room = newRoom()
    expect(await callServer<unknown>(a, { call: 'send', room, message: 'a forbidden word' })).toMatchObject({ status: 403 })
    expect(await callServer<unknown>(a, { call: 'send', room, message: '   ' })).toMatchObject({ status: 400 })
    expect(await callServer<unknown>(a, { call: 'send', room, message: 'x'.repeat(2001) })).toMatchObject({ status: 413 })
    expect(await callServer<unknown>(a, { call: 'send', room: 'bad room!', message: 'hi' })).toMatchObject({ status: 400 })
    expect((await callServer<unknown>(a, { call: 'send', room, message: 'darn' })).body).toMatchObject({ id: 1, message: 'd**n' })
    // 40 messages at once, far past a person's burst of 10, on a server with the default rate limits.
    const limited = await startServer({ output: 'postgresql' })
    try {
      const results = await Promise.all(Array.from({ length: 40 }, (_, index) => callServer<unknown>(limited, { call: 'send', room, message: `bulk ${index}` })))
      expect(results.map(result => result.status)).toEqual(Array.from({ length: 40 }, () => 200))
    }
    finally {
      await limited.stop('SIGKILL')
    }
  })

  it('history pages older messages from the store; rooms lists stored rooms', async () => {
    const room = newRoom()
    for (let index = 1; index <= 7; index++) await callServer<unknown>(index % 2 ? a : b, { call: 'send', room, message: `m${index}` })
    const ids = (body: unknown) => (body as ChatMessageFrame[]).map(frame => frame.id)
    expect(ids((await callServer<unknown>(b, { call: 'history', room })).body)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(ids((await callServer<unknown>(b, { call: 'history', room, before: 6, limit: 3 })).body)).toEqual([3, 4, 5])
    expect(ids((await callServer<unknown>(a, { call: 'history', room, before: 3, limit: 3 })).body)).toEqual([1, 2])
    expect((await callServer<unknown>(a, { call: 'history', room, before: 1 })).body).toEqual([])
    const rooms = (await callServer<unknown>(a, { call: 'rooms', limit: 1000 })).body as string[]
    expect(rooms).toEqual([...rooms].sort())
    expect(rooms.length).toBeGreaterThan(0)
  })

  it('a number that is no id or no page size is a 400 before any store sees it; a page size over the bound is clamped', async () => {
    const room = newRoom()
    await callServer<unknown>(a, { call: 'send', room, message: 'one' })
    // Raw JSON: 1e400 is Infinity once parsed; a string is what a query parameter passed on unparsed would be.
    const call = async (json: string) => {
      const response = await fetch(a.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: json })
      return { status: response.status, body: await response.json() as { message?: string } }
    }
    for (const [fields, field] of [
      ['"before":-1', 'before'], ['"before":1.5', 'before'], ['"before":1e400', 'before'], ['"before":"5"', 'before'],
      ['"thread":0', 'thread'], ['"limit":"ten"', 'limit'],
    ] as const) {
      const answer = await call(`{"call":"history","room":"${room}",${fields}}`)
      expect(answer.status, fields).toBe(400)
      expect(answer.body.message, fields).toContain(field)
    }
    for (const json of [`{"call":"markRead","room":"${room}","userId":"u1","id":1.5}`, `{"call":"members","room":"${room}","limit":"all"}`, '{"call":"rooms","limit":"all"}', `{"call":"aiMessages","room":"${room}","thread":-2}`, `{"call":"history","room":"${room}","limit":1e400}`, `{"call":"history","room":"${room}","limit":-5}`]) {
      expect((await call(json)).status, json).toBe(400)
    }
    // Documented as clamped: at most 1000.
    expect(((await call(`{"call":"history","room":"${room}","limit":5000}`)).body as unknown as unknown[]).length).toBe(1)
  })

  it('presence spans both instances, also asked where the room has no member', async () => {
    const room = newRoom()
    track(await ChatSocket.open(a.wsUrl(''), { room, name: 'alice' }))
    const bob = track(await ChatStream.open(httpBase(b), { room, name: 'bob' }))
    await until(() => presenceSeen(bob).length === 2, 'both in presence', 5000)
    const names = (body: unknown) => (body as ChatUser[]).map(user => user.name).sort()
    // Bob's list came from B; A hears of him over the bus a moment later.
    let onA: string[] = []
    for (const deadline = Date.now() + 5000; onA.length < 2 && Date.now() < deadline;) onA = names((await callServer<unknown>(a, { call: 'presence', room })).body)
    expect(onA).toEqual(['alice', 'bob'])
    const c = await startServer({ output: 'postgresql', env })
    try {
      // A server answers HTTP before its bus subscription is up (ten quick asks were not enough under load): wait for it.
      await untilOnOneBus(a, c)
      expect(names((await callServer<unknown>(c, { call: 'presence', room })).body)).toEqual(['alice', 'bob'])
      expect((await callServer<unknown>(c, { call: 'presence', room: newRoom() })).body).toEqual([])
    }
    finally {
      await c.stop('SIGKILL')
    }
  })

  it('disconnect closes a user\'s WebSocket and SSE connections on every instance, and no one else\'s', async () => {
    const room = newRoom()
    const [aliceWs, aliceSse, aliceWsB, aliceSseB] = await openReaders(room, ALICE)
    const guest = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'guest' }))
    await until(() => presenceSeen(guest).length === 2, 'alice and the guest', 5000)
    expect((await callServer<unknown>(a, { call: 'disconnect', room, userId: 'u-alice' })).status).toBe(200)
    await until(() => aliceWs.closed && aliceWsB.closed, 'alice\'s sockets closed', 5000)
    expect(aliceWs.closed).toEqual({ code: 4001, reason: 'Disconnected by the server' })
    expect(aliceWsB.closed?.code).toBe(4001)
    await Promise.all([aliceSse.done, aliceSseB.done])
    await guest.waitFor(frame => frame.type === 'system' && frame.event === 'leave', 'alice left')
    expect(guest.closed).toBeUndefined()
  })

  it('checks every call\'s arguments: a bad one throws 400 with the `bad_request` frame naming it, changes nothing and logs nothing', async () => {
    const room = newRoom('apicheck')
    const team = newRoom('apiteam')
    expect((await callServer(a, { call: 'createRoom', input: { id: team, owner: 'user-check-owner', visibility: 'private' } })).status).toBe(200)
    const cases: [Record<string, unknown>, string][] = [
      [{ call: 'send', room, message: 123 }, '`message`'],
      [{ call: 'send', room, message: 'hi', user: { id: 5, name: {} } }, '`user`'],
      [{ call: 'send', room, message: 'hi', user: { id: '', name: '' } }, '`user`'],
      [{ call: 'send', room, message: 'hi', user: { id: 'guest:abc', name: 'G' } }, '`user`'],
      [{ call: 'send', room, message: 'hi', replyTo: -1 }, '`replyTo`'],
      [{ call: 'send', room, message: 'hi', replyTo: 1e300 }, '`replyTo`'],
      [{ call: 'send', room, message: 'hi', cid: 'x'.repeat(200) }, '`cid`'],
      [{ call: 'edit', room, target: -5, message: 'e' }, '`id`'],
      [{ call: 'delete', room, target: 1e300 }, '`id`'],
      [{ call: 'history', room, before: 'abc' }, '`before`'],
      [{ call: 'history', room, limit: -1 }, '`limit`'],
      [{ call: 'history', room, thread: -1 }, '`thread`'],
      [{ call: 'rooms', limit: -1 }, '`limit`'],
      [{ call: 'members', room: team, limit: 0 }, '`limit`'],
      [{ call: 'unread', room, userId: '' }, '`userId`'],
      [{ call: 'markRead', room, userId: 'user-z', id: -1 }, '`id`'],
      [{ call: 'markRead', room, userId: { toString: 'x' } }, '`userId`'],
      [{ call: 'markRead', room, userId: 7, id: 1 }, '`userId`'],
      [{ call: 'forget', room, userId: '' }, '`userId`'],
      [{ call: 'disconnect', room, userId: 'a\u0000b' }, '`userId`'],
      [{ call: 'addMember', room: team, userId: 'user-check-god', role: 'god' }, '`role`'],
      [{ call: 'setRole', room: team, userId: 'user-check-owner', role: 'toString' }, '`role`'],
      [{ call: 'mute', room: team, userId: 'user-check-q', until: 'soon' }, '`until`'],
      [{ call: 'mute', room: team, userId: 'user-check-q', until: -1 }, '`until`'],
      [{ call: 'createRoom', input: { members: 'abc' } }, '`members`'],
      [{ call: 'createRoom', input: { title: 5 } }, 'title'],
      [{ call: 'updateRoom', room: team, fields: { visibility: 'nope' } }, 'visibility'],
      [{ call: 'search', message: 'hi', search: { rooms: 'abc' } }, '`rooms`'],
      [{ call: 'search', message: 'hi', search: { user: { id: 7 } } }, '`user`'],
      [{ call: 'aiMessages', room, limit: -1 }, '`limit`'],
      [{ call: 'aiMessages', room, thread: -1 }, '`thread`'],
      [{ call: 'addAiMember', room, user: { id: 'guest:x', name: 'AI' } }, '`user`'],
      // A name with nothing visible once cleaned, as a client's would be (docs/PROTOCOL.md, "Messages from the server side").
      [{ call: 'send', room, message: 'hi', user: { id: 'bot-blank', name: '\u200B\u202E\u200D\u2066' } }, '`user`'],
      [{ call: 'edit', room, target: 1, message: 'e', user: { id: 'bot-blank', name: ' \uFEFF ' } }, '`user`'],
      [{ call: 'addAiMember', room: team, user: { id: 'bot-blank', name: '\u3164\u2800' } }, '`user`'],
    ]
    for (const [body, word] of cases) {
      const answer = await callServer<{ data?: Record<string, unknown> }>(a, body)
      expect(answer.status, JSON.stringify(body)).toBe(400)
      expect(answer.body.data, JSON.stringify(body)).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining(word) })
    }
    // Nothing was stored or changed.
    expect((await callServer<unknown[]>(a, { call: 'history', room })).body).toEqual([])
    expect((await callServer<{ uid: string, role: string }[]>(a, { call: 'members', room: team })).body.map(member => [member.uid, member.role])).toEqual([['user-check-owner', 'owner']])
    expect((await callServer<{ record: unknown }>(a, { call: 'room', room })).body.record).toBeNull()
    // Nor logged: no failure, and no message h3 would have to strip of characters a status line cannot carry.
    expect(a.logs()).not.toMatch(/toWellFormed|search failed|could not search|TypeError|Please prefer using `message`/)
  })

  it('cleans the names server code gives as display names: bidi and invisible characters go, emoji sequences stay, at most 32 characters', async () => {
    const room = newRoom('apinames')
    const sent = await callServer<ChatMessageFrame>(a, { call: 'send', room, message: 'deployed', user: { id: 'bot-names', name: '\u202EDeploy\u200B bot\u2066 👩\u200D💻\u200D' } })
    expect(sent.status).toBe(200)
    expect(sent.body).toMatchObject({ user: 'Deploy bot 👩\u200D💻', uid: 'bot-names' })
    const long = await callServer<ChatMessageFrame>(a, { call: 'send', room, message: 'long', user: { id: 'bot-names', name: `${'n'.repeat(40)}\u202E` } })
    expect(long.body.user).toBe('n'.repeat(32))
    const edited = await callServer<ChatMessageFrame>(b, { call: 'edit', room, target: sent.body.id, message: 'deployed again', user: { id: 'bot-names', name: 'Editor\u202E\u200F' } })
    expect(edited.body).toMatchObject({ type: 'edit', user: 'Editor' })
    // Stored as cleaned: what every reader gets later.
    expect((await callServer<ChatMessageFrame[]>(b, { call: 'history', room })).body.map(frame => frame.user)).toEqual(['Deploy bot 👩\u200D💻', 'n'.repeat(32)])
    // An AI member is named by its cleaned name: `@Named Bot` mentions it.
    expect((await callServer(a, { call: 'addAiMember', room, user: { id: 'bot-named', name: 'Named\u200B Bot\u202E' } })).status).toBe(200)
    const mention = await callServer<ChatMessageFrame>(a, { call: 'send', room, message: 'hello @Named Bot', user: { id: 'bot-names', name: 'Deploy bot' } })
    expect(mention.body.mentions).toEqual(['bot-named'])
  })

  it('chat:stored sees every stored message once, on the instance that stored it, and never holds delivery back', async () => {
    const room = newRoom()
    const socket = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'reader' }))
    await callServer<unknown>(a, { call: 'send', room, message: 'one' })
    socket.send({ type: 'message', message: 'two', cid: 'c-2' })
    socket.send({ type: 'message', message: 'two', cid: 'c-2' })
    await socket.waitFor(frame => frame.type === 'message' && frame.id === 2 && !frame.duplicate, 'id 2')
    const stored = async (server: TestServer) => (await (await fetch(server.url(`/_test/stored?room=${room}`))).json()) as ChatMessageFrame[]
    for (let tries = 0; tries < 50 && (await stored(b)).length < 1; tries++) await sleep(50)
    await sleep(200)
    expect((await stored(a)).map(frame => frame.message)).toEqual(['one'])
    expect((await stored(b)).map(frame => [frame.id, frame.message, frame.cid])).toEqual([[2, 'two', 'c-2']])

    // A hook that takes 2 s, or throws: the message is delivered and acknowledged at once all the same (held by the hook, it would take 2 s).
    for (const prefix of ['storedslow', 'storedfail']) {
      const slowRoom = newRoom(prefix)
      const member = track(await ChatSocket.open(a.wsUrl(''), { room: slowRoom, name: 'm' }))
      const sent = Date.now()
      for (let index = 0; index < 3; index++) member.send({ type: 'message', message: `m${index}`, cid: `c-${index}` })
      await member.waitFor(frame => frame.type === 'message' && frame.id === 3, `${prefix}: id 3`, 1900)
      expect(Date.now() - sent, prefix).toBeLessThan(1900)
    }
    expect(a.logs()).toContain('the chat:stored hook failed')
  })
})
