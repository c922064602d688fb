/**
 * Replies and mentions (issue 24, docs/PROTOCOL.md "Replies and mentions") end to end, on SQLite and
 * on two PostgreSQL instances over Redis, with real sockets: a reply stored and replayed with its
 * original's excerpt, the excerpt following an edit and a delete, a bad `replyTo` refused with
 * nothing stored; `@name` resolved to member ids on both instances, `chat:mention` once per member,
 * `@room` only for owners and moderators, and the rooms list's unread mentions going up and down.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatTransport } from '../../src/runtime/app/chatConnection'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'
import { installEventSource } from '../utils/chaos'
import { ChatSocketV2, until, untilOnOneBus, type FrameV2 } from '../utils/clients'
import { callServer, ownPostgresDatabase, REDIS_URL, startServer, type TestServer } from '../utils/server'

installEventSource()

const tag = randomUUID().slice(0, 8)
let users = 0
/** A signed-in user of this file's own (the fixture's `user-….Name` sessions). */
const newUser = (name: string) => {
  const id = `user-${tag}-${++users}`
  return { id, name, headers: { cookie: `session=${id}.${name}` } }
}
type User = ReturnType<typeof newUser>

/** The `chat:mention` calls both instances made for a room. */
async function mentionsHeard(servers: TestServer[], room: string) {
  const lists = await Promise.all([...new Set(servers)].map(async server => await (await fetch(server.url(`/_test/mentions?room=${room}`))).json() as { uid: string, id: number }[]))
  return lists.flat()
}

const setups: [string, () => Promise<{ a: TestServer, b: TestServer, stop: () => Promise<void> }>][] = [
  ['SQLite', async () => {
    const server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
    return { a: server, b: server, stop: () => server.stop() }
  }],
  ['two PostgreSQL instances on Redis', async () => {
    const database = ownPostgresDatabase('nuxt_chat_replies')
    const env = { ...database.env, NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_REDIS_CHANNEL: `nuxt-chat-replies-${tag}`, NUXT_CHAT_RATE_LIMIT: 'false' }
    const [a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
    return { a, b, stop: async () => {
      await Promise.all([a.stop(), b.stop()])
      database.drop()
    } }
  }],
]

describe.each(setups)('replies and mentions: %s', (_name, setup) => {
  let a: TestServer
  let b: TestServer
  let stop: () => Promise<void>
  const opened: ChatSocketV2[] = []
  beforeAll(async () => {
    ;({ a, b, stop } = await setup())
  })
  afterAll(async () => {
    for (const socket of opened) await socket.close()
    await stop?.()
  })

  const connect = async (server: TestServer, user: User) => {
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: user.headers })
    opened.push(socket)
    return socket
  }
  /** A room of its own (`mention-…`): Olive owns it, Ann, Bob and Dan are members; Olive and Bob on `a`, Ann on `b`, all joined but Dan (offline). */
  async function team() {
    const room = `mention-${randomUUID().slice(0, 8)}`
    const [olive, ann, bob, dan] = [newUser('Olive'), newUser('Ann'), newUser('Bob'), newUser('Dan')]
    expect((await callServer(a, { call: 'createRoom', input: { id: room, title: 'Team', visibility: 'private', owner: olive.id, members: [ann.id, bob.id, dan.id] } })).status).toBe(200)
    const [oliveSocket, annSocket, bobSocket] = await Promise.all([connect(a, olive), connect(b, ann), connect(a, bob)])
    for (const socket of [oliveSocket, annSocket, bobSocket]) expect((await socket.join(room)).type).toBe('caught_up')
    return { room, olive, ann, bob, dan, oliveSocket, annSocket, bobSocket }
  }
  /** Send a message command and wait for its echo on the sender's socket. */
  async function say(socket: ChatSocketV2, room: string, message: string, extra: object = {}) {
    const cid = `c-${randomUUID().slice(0, 12)}`
    socket.send({ type: 'message', room, message, cid, ...extra })
    return await socket.waitFor(frame => frame.cid === cid && (frame.type === 'message' || frame.type === 'error'), `the answer to ${message}`) as unknown as ChatMessageFrame & { code?: string }
  }
  const messageOf = (socket: ChatSocketV2, room: string, id: number) => socket.waitFor(frame => frame.type === 'message' && frame.room === room && frame.id === id, `message ${id}`) as Promise<FrameV2 & ChatMessageFrame>

  it('a reply is stored and replayed with its original\'s excerpt, which follows an edit and shows a delete, on both instances', async () => {
    const { room, ann, annSocket, bobSocket } = await team()
    const original = await say(annSocket, room, `Lunch at noon? ${'🌮'.repeat(120)}`)
    const reply = await say(bobSocket, room, 'yes!', { replyTo: original.id })
    const quote = { id: original.id, user: 'Ann', uid: ann.id, excerpt: `Lunch at noon? ${'🌮'.repeat(85)}` }
    expect(reply.replyTo).toEqual(quote)
    // Live on the other instance.
    expect((await messageOf(annSocket, room, reply.id)).replyTo).toEqual(quote)

    annSocket.send({ type: 'edit', room, target: original.id, message: 'Lunch at one?' })
    await bobSocket.waitFor(frame => frame.type === 'edit' && frame.target === original.id, 'the edit')
    // Replayed (a fresh join, on either instance) and in a history page: the excerpt is the current text.
    for (const server of [a, b]) {
      const reader = await connect(server, ann)
      await reader.join(room)
      expect((await messageOf(reader, room, reply.id)).replyTo).toEqual({ ...quote, excerpt: 'Lunch at one?' })
      reader.send({ type: 'history', room, ref: 'h1' })
      const page = await reader.waitFor(frame => frame.type === 'history' && frame.ref === 'h1', 'a history page')
      expect((page.messages as ChatMessageFrame[]).find(message => message.id === reply.id)?.replyTo).toEqual({ ...quote, excerpt: 'Lunch at one?' })
    }

    annSocket.send({ type: 'delete', room, target: original.id })
    await bobSocket.waitFor(frame => frame.type === 'delete' && frame.target === original.id, 'the delete')
    const late = await connect(b, ann)
    await late.join(room)
    expect((await messageOf(late, room, reply.id)).replyTo).toEqual({ id: original.id, user: 'Ann', uid: ann.id, excerpt: '', deleted: true })
  })

  it('useChat\'s connection sends a reply over WebSocket and SSE, and keeps its excerpt current through an edit and a delete', async () => {
    const room = `mention-pub-${randomUUID().slice(0, 8)}`
    const client = (server: TestServer, name: string, transport: ChatTransport) => {
      const connection = createChatConnection({
        room, name, transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 50, maxLength: 2000,
        autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'), guestKey: `replies-${tag}-${name}-0123456789abcdef`,
      })
      connection.open()
      return connection
    }
    const ws = client(a, 'Wes', 'ws')
    const sse = client(b, 'Sia', 'sse')
    try {
      await until(() => ws.me.value && sse.me.value, 'both welcomed')
      expect(ws.send('the plan', { replyTo: 0 })).toBe(false)
      expect(ws.error.value?.code).toBe('bad_request')
      ws.send('the plan')
      const original = await until(() => sse.messages.value.find(message => message.message === 'the plan' && message.id), 'the original on the SSE client')
      expect(sse.send('sounds good', { replyTo: original.id })).toBe(true)
      // Shown at once (pending), with what the client holds of the original.
      const shown = await until(() => sse.messages.value.find(message => message.message === 'sounds good'), 'the reply shown')
      expect(shown).toMatchObject({ replyTo: { id: original.id, user: 'Wes', excerpt: 'the plan' } })
      for (const connection of [ws, sse]) {
        await until(() => connection.messages.value.find(message => message.message === 'sounds good' && message.id && message.replyTo?.excerpt === 'the plan'), 'the stored reply')
      }
      expect(ws.edit(original.id!, 'the new plan')).toBe(true)
      for (const connection of [ws, sse]) await until(() => connection.messages.value.find(message => message.replyTo?.excerpt === 'the new plan'), 'the excerpt after the edit')
      expect(ws.remove(original.id!)).toBe(true)
      for (const connection of [ws, sse]) await until(() => connection.messages.value.find(message => message.replyTo?.deleted === true && message.replyTo.excerpt === ''), 'the reply after the delete')
      // An unknown original: the server refuses it and the pending message fails.
      sse.send('to nothing', { replyTo: 9_000_000 })
      await until(() => sse.messages.value.find(message => message.message === 'to nothing' && message.failed), 'the refused reply')
      expect(sse.error.value?.code).toBe('bad_request')
    }
    finally {
      ws.close()
      sse.close()
    }
  })

  it('a replyTo that is no live message of the room is bad_request, and nothing is stored', async () => {
    const { room, bob, annSocket, bobSocket } = await team()
    const gone = await say(annSocket, room, 'soon gone')
    annSocket.send({ type: 'delete', room, target: gone.id })
    await bobSocket.waitFor(frame => frame.type === 'delete' && frame.target === gone.id, 'the delete')
    // Another room with more messages: its ids are no messages of this one.
    const other = `mention-${randomUUID().slice(0, 8)}`
    let otherId = 0
    for (let index = 0; index < 5; index++) otherId = Number((await callServer(a, { call: 'send', room: other, message: `m${index}` })).body.id)
    for (const replyTo of [otherId, 9_000_000, gone.id, gone.id + 1]) {
      const refused = await say(bobSocket, room, 'answer', { replyTo })
      expect(refused).toMatchObject({ type: 'error', code: 'bad_request' })
      expect(refused.message).toContain('reply')
    }
    // Malformed ids are refused as commands.
    bobSocket.send({ type: 'message', room, message: 'x', cid: 'c-bad-1', replyTo: 'one' })
    expect(await bobSocket.waitFor(frame => frame.cid === 'c-bad-1', 'the refusal')).toMatchObject({ type: 'error', code: 'bad_request' })
    // Over HTTP (version 1 POST) alike: 400, nothing stored.
    const posted = await fetch(`${b.url('/api/sse')}?room=${room}`, { method: 'POST', headers: { ...bob.headers, 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' }, body: JSON.stringify({ message: 'answer', replyTo: 9_000_000 }) })
    expect(posted.status).toBe(400)
    expect(await posted.json()).toMatchObject({ type: 'error', code: 'bad_request' })
    const history = await callServer(a, { call: 'history', room })
    expect((history.body as unknown as ChatMessageFrame[]).filter(message => !message.deleted)).toEqual([])
  })

  it('@name resolves to member ids on both instances; chat:mention fires once per member, never for the sender; @room and @here only for an owner', async () => {
    const { room, olive, ann, bob, dan, oliveSocket, annSocket, bobSocket } = await team()
    // Names are kept when people join: give the stores a moment.
    await new Promise(resolve => setTimeout(resolve, 200))
    const named = await say(oliveSocket, room, '@ann and @BOB, and olive@example.com, @Olive: standup')
    expect(named.mentions?.toSorted()).toEqual([ann.id, bob.id].toSorted())
    expect((await messageOf(annSocket, room, named.id)).mentions?.toSorted()).toEqual([ann.id, bob.id].toSorted())
    expect(named.mentionsAll).toBeUndefined()

    const plain = await say(bobSocket, room, '@room look (from a member)')
    expect(plain.mentionsAll).toBeUndefined()
    expect(plain.mentions).toBeUndefined()
    const everyone = await say(oliveSocket, room, '@room deploy at five')
    expect(everyone.mentionsAll).toBe('room')
    expect((await messageOf(annSocket, room, everyone.id)).mentionsAll).toBe('room')
    // @here: the members online (Ann on the other instance, Bob here), not Dan.
    const here = await say(oliveSocket, room, 'anyone @here?')
    expect(here.mentionsAll).toBe('here')

    const expected = [
      { uid: ann.id, id: named.id }, { uid: bob.id, id: named.id },
      { uid: ann.id, id: everyone.id }, { uid: bob.id, id: everyone.id }, { uid: dan.id, id: everyone.id },
      { uid: ann.id, id: here.id }, { uid: bob.id, id: here.id },
    ]
    const byOrder = (x: { uid: string, id: number }, y: { uid: string, id: number }) => x.id - y.id || (x.uid < y.uid ? -1 : 1)
    await until(async () => (await mentionsHeard([a, b], room)).length >= expected.length, 'the chat:mention calls')
    // A little longer: no call more comes (not twice, not the sender's, not the member's @room).
    await new Promise(resolve => setTimeout(resolve, 300))
    const heard = await mentionsHeard([a, b], room)
    expect(heard.toSorted(byOrder)).toEqual(expected.toSorted(byOrder))
    expect(heard.some(call => call.uid === olive.id)).toBe(false)

    // A banned member is no longer mentioned, on either instance (the ban reaches both names indexes).
    expect((await callServer(b, { call: 'ban', room, userId: bob.id })).status).toBe(200)
    await bobSocket.waitFor(frame => frame.type === 'left' && frame.room === room, 'Bob\'s ban')
    for (const [socket, text] of [[oliveSocket, '@Bob and @Ann, again'], [annSocket, '@bob @olive from b']] as const) {
      const after = await say(socket, room, text)
      expect(after.mentions).toEqual([socket === oliveSocket ? ann.id : olive.id])
    }
    await until(async () => (await mentionsHeard([a, b], room)).length >= expected.length + 2, 'the calls after the ban')
    await new Promise(resolve => setTimeout(resolve, 300))
    expect((await mentionsHeard([a, b], room)).filter(call => call.uid === bob.id)).toHaveLength(3)
  })

  it('the rooms list counts unread mentions, up with each one and down with read', async () => {
    const { room, ann, oliveSocket, bobSocket } = await team()
    await new Promise(resolve => setTimeout(resolve, 200))
    const list = await connect(b, ann)
    list.send({ type: 'rooms' })
    const first = await list.waitFor(frame => frame.type === 'rooms', 'the rooms list')
    expect((first.rooms as { room: string, mentions: number }[]).find(entry => entry.room === room)?.mentions).toBe(0)
    await say(oliveSocket, room, 'hello @Ann')
    await say(bobSocket, room, 'no mention here')
    const last = await say(oliveSocket, room, '@room all of you')
    const entry = await list.waitFor(frame => frame.type === 'room' && frame.room === room && frame.upTo === last.id, 'the entry after the mentions')
    expect(entry).toMatchObject({ unread: 3, mentions: 2 })
    list.send({ type: 'read', room, id: last.id - 1 })
    expect(await list.waitFor(frame => frame.type === 'room' && frame.room === room && frame.read === last.id - 1, 'the entry after a read')).toMatchObject({ mentions: 1 })
    list.send({ type: 'read', room })
    expect(await list.waitFor(frame => frame.type === 'room' && frame.room === room && frame.read === last.id, 'the entry after reading all')).toMatchObject({ unread: 0, mentions: 0 })
  })
})
