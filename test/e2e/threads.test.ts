/**
 * Threads (issue 24, docs/PROTOCOL.md "Threads"): replies stored in the room's log with `thread`,
 * delivered to every connection of the room on every instance, kept out of the main timeline (the
 * client's `messages`, history pages, unread counts) unless also sent to the room; the parent's
 * summary as served and as a client keeps it live; a thread's own pages; a thread through a
 * SIGKILL with exactly the replies the client sent. SQLite (one instance) and two PostgreSQL
 * instances over Redis, with real sockets and the real client.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatTransport } from '../../src/runtime/app/chatConnection'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'
import { installEventSource } from '../utils/chaos'
import { ChatSocketV2, until, type FrameV2 } from '../utils/clients'
import { callServer, serverPairs, startServer, type TestServer } from '../utils/server'

installEventSource()

const tag = randomUUID().slice(0, 8)
let users = 0
const newUser = () => `user-${tag}-${++users}`
const newRoom = () => `thread-${randomUUID().slice(0, 8)}`
const UNLIMITED = { NUXT_CHAT_RATE_LIMIT: 'false' }

describe.each(serverPairs('nuxt_chat_threads', UNLIMITED))('threads on %s', (_name, start) => {
  let a: TestServer
  let b: TestServer
  const opened: { close: () => unknown }[] = []
  const open = async (server: TestServer, user: string) => {
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: `session=${user}` } })
    opened.push(socket)
    return socket
  }
  /** Send a message on a v2 socket and wait for its echo. */
  const say = async (socket: ChatSocketV2, room: string, message: string, fields: Record<string, unknown> = {}) => {
    const cid = `c-${randomUUID().slice(0, 8)}`
    socket.send({ type: 'message', room, message, cid, ...fields })
    return await socket.waitFor(frame => (frame.type === 'message' && frame.cid === cid) || (frame.type === 'error' && frame.cid === cid), `the answer to ${message}`) as FrameV2 & ChatMessageFrame
  }

  let stop: (() => Promise<unknown>) | undefined
  beforeAll(async () => {
    const started = await start()
    ;[a, b] = started.servers
    stop = started.stop
  })
  afterAll(async () => {
    for (const socket of opened) await socket.close()
    await stop?.()
  })

  it('a thread reply reaches the room on both instances with `thread`; the parent is served with its summary; main pages and unread counts leave it out', async () => {
    const room = newRoom()
    const [ann, ben, cat] = [newUser(), newUser(), newUser()]
    const annSocket = await open(a, ann)
    const benSocket = await open(b, ben)
    for (const socket of [annSocket, benSocket]) expect(await socket.join(room)).toMatchObject({ type: 'caught_up' })
    // Cat reads the room now: her read position is the unread marker below.
    const catSocket = await open(b, cat)
    expect(await catSocket.join(room)).toMatchObject({ type: 'caught_up' })
    const parent = await say(annSocket, room, 'lunch?')
    await catSocket.waitFor(frame => frame.type === 'message' && frame.id === parent.id)
    catSocket.send({ type: 'read', room, id: parent.id })
    await catSocket.waitFor(frame => frame.type === 'read' && frame.read === parent.id)
    // Her rooms list, live on the same connection.
    catSocket.send({ type: 'rooms' })
    await catSocket.waitFor(frame => frame.type === 'rooms')

    const first = await say(benSocket, room, 'yes', { thread: parent.id })
    expect(first).toMatchObject({ type: 'message', thread: parent.id })
    const second = await say(annSocket, room, 'noon then', { thread: parent.id })
    const shared = await say(benSocket, room, 'everyone: noon', { thread: parent.id, alsoInRoom: true })
    expect(shared).toMatchObject({ thread: parent.id, alsoInRoom: true })
    // Both instances delivered every reply to every connection of the room.
    for (const socket of [annSocket, benSocket, catSocket]) await socket.waitFor(frame => frame.type === 'message' && frame.id === shared.id)
    expect(annSocket.messagesOf(room).filter(frame => frame.thread === parent.id).map(frame => frame.id)).toEqual([first.id, second.id, shared.id])

    // A newcomer's replay carries the parent's summary: three replies, newest first people.
    const late = await open(a, newUser())
    expect(await late.join(room)).toMatchObject({ type: 'caught_up' })
    const replayedParent = late.messagesOf(room).find(frame => frame.id === parent.id)!
    expect(replayedParent.replies).toEqual({ count: 3, lastId: shared.id, lastTs: shared.ts, users: [ben, ann] })

    // The thread's page holds its replies; the room's main page only what is in its timeline.
    const history = async (fields: Record<string, unknown>) => {
      const ref = late.ref()
      late.send({ type: 'history', room, ref, ...fields })
      return await late.waitFor(frame => frame.type === 'history' && frame.ref === ref) as FrameV2 & { messages: ChatMessageFrame[] }
    }
    expect((await history({ thread: parent.id })).messages.map(frame => frame.id)).toEqual([first.id, second.id, shared.id])
    expect((await history({})).messages.map(frame => frame.id)).toEqual([parent.id, shared.id])
    // Cat has not read: only the reply also sent to the room is unread, in the store and in her live list.
    const unread = await callServer(b, { call: 'unread', room, userId: cat })
    expect(unread.body).toEqual({ unread: 1 })
    const entry = () => [...catSocket.frames].reverse().find(frame => frame.type === 'room' && frame.room === room) as FrameV2 & { unread: number, last?: { id: number } } | undefined
    await until(() => entry()?.last?.id === shared.id, 'the list showing the reply also sent to the room')
    expect(entry()!.unread).toBe(1)
  })

  it('refuses a thread under a message that is none, a thread reply, or deleted, storing nothing', async () => {
    const room = newRoom()
    const socket = await open(a, newUser())
    expect(await socket.join(room)).toMatchObject({ type: 'caught_up' })
    const parent = await say(socket, room, 'topic')
    const reply = await say(socket, room, 'in it', { thread: parent.id })
    const gone = await say(socket, room, 'soon gone')
    socket.send({ type: 'delete', room, target: gone.id, cid: 'del-1' })
    await socket.waitFor(frame => frame.type === 'delete' && frame.target === gone.id)
    for (const thread of [999_999, reply.id, gone.id]) {
      const answer = await say(socket, room, 'nope', { thread })
      expect(answer).toMatchObject({ type: 'error', code: 'bad_request', message: `No message ${thread} to answer in a thread` })
    }
    expect((await say(socket, room, 'x', { alsoInRoom: true }))).toMatchObject({ type: 'error', code: 'bad_request' })
    const stored = await callServer(a, { call: 'history', room })
    expect((stored.body as unknown as ChatMessageFrame[]).filter(frame => !frame.deleted).map(frame => frame.message)).toEqual(['topic'])
  })

  it('the client keeps replies out of `messages`, shows them in its thread view, and counts them on the parent live, over WebSocket and SSE', async () => {
    const room = newRoom()
    const client = (server: TestServer, name: string, transport: ChatTransport) => {
      const connection = createChatConnection({
        room, name, transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 50, maxLength: 2000, shareSocket: true,
        autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'), guestKey: `threads-${tag}-${name}-0123456789abcdef`,
      })
      connection.open()
      opened.push({ close: () => connection.close() })
      return connection
    }
    const ws = client(a, 'Wes', 'ws')
    const sse = client(b, 'Sia', 'sse')
    await until(() => ws.me.value && sse.me.value && ws.status.value === 'OPEN' && sse.status.value === 'OPEN', 'both open')
    expect(ws.send('the plan')).toBe(true)
    await until(() => sse.messages.value.find(message => message.message === 'the plan' && message.id !== undefined), 'the parent on SSE')
    const parentId = sse.messages.value.find(message => message.message === 'the plan')!.id!
    expect(sse.send('I am in', { thread: parentId })).toBe(true)
    expect(sse.send('me too, everyone', { thread: parentId, alsoInRoom: true })).toBe(true)
    await until(() => ws.threadMessages(parentId).filter(message => message.id !== undefined).length === 2, 'both replies in Wes\'s thread view')
    expect(ws.messages.value.map(message => message.message)).toEqual(['the plan', 'me too, everyone'])
    const parent = ws.messages.value[0]!
    expect(parent.replies).toMatchObject({ count: 2, users: [sse.me.value!.id] })
    await until(() => sse.messages.value.length === 2 && sse.threadMessages(parentId).every(message => message.id !== undefined), 'Sia\'s own replies stored')
    expect(sse.messages.value.map(message => message.message)).toEqual(['the plan', 'me too, everyone'])
    expect(sse.threadMessages(parentId).map(message => message.message)).toEqual(['I am in', 'me too, everyone'])

    // A client that joins later loads the thread's pages and counts nothing twice.
    const late = client(a, 'Lou', 'ws')
    await until(() => late.messages.value.some(message => message.id === parentId), 'the parent replayed')
    expect(late.messages.value.find(message => message.id === parentId)!.replies?.count).toBe(2)
    expect(await late.loadThread(parentId)).toBeGreaterThanOrEqual(0)
    expect(late.threadMessages(parentId).map(message => message.message)).toEqual(['I am in', 'me too, everyone'])
    expect(late.messages.value.find(message => message.id === parentId)!.replies?.count).toBe(2)
  })
})

describe('a thread through a SIGKILL', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: UNLIMITED })
  })
  afterAll(() => server?.stop())

  it('keeps exactly the replies the client sent, each once, none in the main timeline', async () => {
    const room = newRoom()
    const connection = createChatConnection({
      room, name: 'Kit', transport: 'ws', route: '/_ws', sseRoute: '/api/sse', maxMessages: 500, maxQueue: 200, maxLength: 2000, shareSocket: true,
      autoReconnect: { delay: 50, maxDelay: 300 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'), guestKey: `threads-kill-${tag}-0123456789abcdef`,
    })
    connection.open()
    try {
      await until(() => connection.status.value === 'OPEN', 'open')
      connection.send('parent')
      await until(() => connection.messages.value[0]?.id, 'the parent stored')
      const parentId = connection.messages.value[0]!.id!
      const texts = Array.from({ length: 60 }, (_, index) => `reply ${index + 1}`)
      // Half sent, the server killed mid-burst, the rest sent while it is down; the outbox resends what was not acknowledged.
      for (const text of texts.slice(0, 30)) expect(connection.send(text, { thread: parentId })).toBe(true)
      await server.stop('SIGKILL')
      for (const text of texts.slice(30)) expect(connection.send(text, { thread: parentId })).toBe(true)
      await server.start()
      await until(() => connection.threadMessages(parentId).filter(message => message.id !== undefined).length === texts.length, 'every reply stored', 30_000)
      expect(connection.threadMessages(parentId).map(message => message.message)).toEqual(texts)
      expect(connection.messages.value.map(message => message.message)).toEqual(['parent'])
      // The store agrees: each reply once, in the thread's page, none in the room's.
      const thread = await callServer(server, { call: 'history', room, thread: parentId, limit: 200 })
      expect((thread.body as unknown as ChatMessageFrame[]).map(frame => frame.message)).toEqual(texts)
      const main = await callServer(server, { call: 'history', room })
      expect((main.body as unknown as ChatMessageFrame[]).map(frame => frame.message)).toEqual(['parent'])
    }
    finally {
      connection.close()
    }
  })
})
