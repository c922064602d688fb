/**
 * The client's rooms and members commands (src/runtime/app/roomCommands.ts, what `useChatRooms()`
 * returns) against a built server, over the real shared socket: each answer reaches the call
 * whose `ref` it carries, a refusal rejects with the server's code and message, a made room can
 * then be opened by the tab's room connection on the same socket; over SSE the same commands go
 * as POSTs to the tab's one event stream; against a version 1 server they reject with `unsupported`.
 */
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatConnection } from '../../src/runtime/app/chatConnection'
import { createRoomCommands, type ChatRoomCommands } from '../../src/runtime/app/roomCommands'
import { forgetSharedSockets } from '../../src/runtime/app/sharedSocket'
import { installEventSource, storedOf } from '../utils/chaos'
import { until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
/** A fixture user (`user-…` toy session) and the guest key of their tab. */
const newUser = () => ({ id: `user-${tag}-${++users}`, tab: randomUUID().replaceAll('-', '') })

/** Tab (guest key) → the session cookie its WebSockets carry; none: a guest. */
const sessions = new Map<string, string>()
const opened: string[] = []
const PlainWebSocket = globalThis.WebSocket
const plainFetch = globalThis.fetch
/** Event streams and POSTs to the SSE route, by URL. */
const sseRequests: string[] = []
let connections: ChatConnection[] = []
installEventSource()

beforeAll(() => {
  // The tab's event stream and its POSTs carry the session of their guest key, as a browser's cookie would.
  globalThis.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input)
    if (url.pathname === '/api/sse') sseRequests.push(`${init?.method ?? 'GET'} ${url.search}`)
    const session = sessions.get(url.searchParams.get('guest') ?? '')
    return plainFetch(input, session ? { ...init, headers: { ...init?.headers as Record<string, string>, cookie: `session=${session}` } } : init)
  }
  globalThis.WebSocket = class extends PlainWebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      const session = sessions.get(new URL(url).searchParams.get('guest') ?? '')
      // undici's WebSocket takes headers in its init object (Node only).
      super(url, session ? { protocols, headers: { cookie: `session=${session}` } } as unknown as string[] : protocols)
      opened.push(String(url))
    }
  }
})
afterAll(() => {
  globalThis.WebSocket = PlainWebSocket
  globalThis.fetch = plainFetch
})
afterEach(() => {
  for (const connection of connections) connection.close()
  connections = []
  forgetSharedSockets()
  opened.length = 0
  sseRequests.length = 0
})

/** The commands of `user`'s tab (a guest's when `user` has no session). */
function commandsOf(baseURL: string, user: { id?: string, tab: string }, transport: 'ws' | 'sse' = 'ws'): ChatRoomCommands {
  if (user.id) sessions.set(user.tab, user.id)
  return createRoomCommands({ transport, route: '/_ws', sseRoute: '/api/sse', guestKey: user.tab, baseURL, timeout: 5000 })
}

/** A room connection in `user`'s tab (no name wish: signed in), on its shared socket as `useChat()` opens it. */
function roomOf(baseURL: string, user: { tab: string }, room: string): ChatConnection {
  const connection = createChatConnection({
    room, transport: 'ws', route: '/_ws', sseRoute: '/api/sse', maxMessages: 1000, maxQueue: 100, maxLength: 2000,
    autoReconnect: { delay: 50, maxDelay: 300 }, heartbeat: false, typingTimeout: 3000, baseURL, guestKey: user.tab, shareSocket: true,
  })
  connections.push(connection)
  connection.open()
  return connection
}

describe('rooms and members commands against a version 2 server', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('matches answers by ref, rejects refusals with the server\'s code, and the made room opens on the same socket', async () => {
    const [owner, member, outsider] = [newUser(), newUser(), newUser()]
    const ownerCommands = commandsOf(server.url('/'), owner)
    const { room } = await ownerCommands.createRoom({ title: 'Plans', visibility: 'private', members: [member.id] })
    expect(room).toMatch(/^room-[\w-]{16}$/)

    // Several at once: each promise gets its own answer (one refusal among them).
    const [invited, missing, renamed] = await Promise.allSettled([
      ownerCommands.invite(room, outsider.id),
      ownerCommands.remove(room, `user-${tag}-nobody`),
      ownerCommands.update(room, { topic: 'Q3' }),
    ])
    expect(invited).toEqual({ status: 'fulfilled', value: { room } })
    expect(missing).toMatchObject({ status: 'rejected', reason: { code: 'not_found', message: expect.any(String) } })
    expect(renamed).toEqual({ status: 'fulfilled', value: { room } })

    // The tab left the room `create` joined: its room connection joins it on the one socket.
    const ownerRoom = roomOf(server.url('/'), owner, room)
    await until(() => ownerRoom.status.value === 'OPEN', 'the owner\'s room open')
    ownerRoom.send('welcome')
    await until(() => storedOf(ownerRoom).length === 1, 'the owner\'s message stored')
    expect(opened.filter(url => new URL(url).searchParams.get('guest') === owner.tab)).toHaveLength(1)
    await expect(ownerCommands.setRole(room, outsider.id, 'moderator')).resolves.toEqual({ room })

    // A member may not moderate their owner: the refusal frame rejects the promise.
    const memberCommands = commandsOf(server.url('/'), member)
    await expect(memberCommands.ban(room, owner.id)).rejects.toMatchObject({ code: 'forbidden', message: expect.any(String) })
    // The owner mutes the member: the member's send in the room is refused with `muted`.
    await expect(ownerCommands.mute(room, member.id)).resolves.toEqual({ room })
    const memberRoom = roomOf(server.url('/'), member, room)
    await until(() => memberRoom.status.value === 'OPEN', 'the member\'s room open')
    memberRoom.send('can I?')
    await until(() => memberRoom.error.value?.code === 'muted', 'the member\'s send refused')
    await expect(ownerCommands.ban(room, member.id)).resolves.toEqual({ room })
    await until(() => memberRoom.status.value !== 'OPEN', 'the banned member\'s room closed')
  })

  it('searches the user\'s rooms on the shared socket and over SSE; a guest must name a room', async () => {
    const owner = newUser()
    const commands = commandsOf(server.url('/'), owner)
    const { room } = await commands.createRoom({ title: 'Finds', visibility: 'private' })
    const word = `w${randomUUID().replaceAll('-', '').slice(0, 10)}`
    const ownerRoom = roomOf(server.url('/'), owner, room)
    await until(() => ownerRoom.status.value === 'OPEN', 'the owner\'s room open')
    ownerRoom.send(`look: ${word} <b>here</b>`)
    await until(() => storedOf(ownerRoom).length === 1, 'the message stored')
    const found = await commands.search(word)
    expect(found).toMatchObject({ type: 'search_results', q: word, hits: [{ room, id: storedOf(ownerRoom)[0]!.id, excerpt: `look: ${word} <b>here</b>`, highlights: [[6, 6 + word.length]] }] })
    expect(opened.filter(url => new URL(url).searchParams.get('guest') === owner.tab)).toHaveLength(1)
    await expect(commands.search('"*"')).rejects.toMatchObject({ code: 'bad_request' })
    const overSse = await commandsOf(server.url('/'), { ...owner, tab: randomUUID().replaceAll('-', '') }, 'sse').search(word, { room })
    expect(overSse.hits.map(hit => hit.id)).toEqual(found.hits.map(hit => hit.id))
    const guest = commandsOf(server.url('/'), { tab: randomUUID().replaceAll('-', '') })
    await expect(guest.search(word)).rejects.toMatchObject({ code: 'unauthorized' })
    await expect(guest.search(word, { room })).rejects.toMatchObject({ code: 'forbidden' })
  })

  it('opens one direct room from both sides, and refuses a guest', async () => {
    const [ann, bob] = [newUser(), newUser()]
    const fromAnn = await commandsOf(server.url('/'), ann).openDirect(bob.id)
    expect(fromAnn.room).toMatch(/^dm:[\w-]{22}$/)
    await expect(commandsOf(server.url('/'), bob).openDirect(ann.id)).resolves.toEqual(fromAnn)
    // Again while the tab follows it: still that room.
    const annRoom = roomOf(server.url('/'), ann, fromAnn.room)
    await until(() => annRoom.status.value === 'OPEN', 'Ann\'s direct room open')
    await expect(commandsOf(server.url('/'), ann).openDirect(bob.id)).resolves.toEqual(fromAnn)

    const guest = commandsOf(server.url('/'), { tab: randomUUID().replaceAll('-', '') })
    await expect(guest.createRoom({ title: 'Mine', visibility: 'private' })).rejects.toMatchObject({ code: 'unauthorized', message: expect.stringContaining('Sign in') })
    await expect(guest.openDirect(bob.id)).rejects.toMatchObject({ code: 'unauthorized' })
  })

  it('go over SSE as POSTs to the tab\'s one event stream, answered on it by ref; a refusal rejects with the server\'s code', async () => {
    const [ann, bob] = [newUser(), newUser()]
    const commands = commandsOf(server.url('/'), ann, 'sse')
    const [made, direct] = await Promise.all([commands.createRoom({ title: 'Over SSE', visibility: 'private' }), commands.openDirect(bob.id)])
    expect(made.room).toMatch(/^room-/)
    expect(direct.room).toMatch(/^dm:/)
    await expect(commands.invite(made.room, bob.id)).resolves.toEqual({ room: made.room })
    await expect(commands.setRole(made.room, ann.id, 'member')).rejects.toMatchObject({ code: 'forbidden' })
    const record = await (await plainFetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'members', room: made.room }) })).json() as { uid: string, role: string }[]
    expect(record.map(member => [member.uid, member.role]).sort()).toEqual([[ann.id, 'owner'], [bob.id, 'member']].sort())
    // One stream for all of it: every POST names the stream the one GET opened.
    const streams = sseRequests.filter(request => request.startsWith('GET '))
    expect(streams).toHaveLength(1)
    const posts = sseRequests.filter(request => request.startsWith('POST '))
    expect(posts.length).toBeGreaterThanOrEqual(4)
    expect(new Set(posts.map(post => new URLSearchParams(post.slice(5)).get('stream'))).size).toBe(1)
    expect(opened).toEqual([])
    // A guest's stream: refused by the server, not by the client.
    await expect(commandsOf(server.url('/'), { tab: randomUUID().replaceAll('-', '') }, 'sse').createRoom({ title: 'Mine', visibility: 'public' })).rejects.toMatchObject({ code: 'unauthorized' })
  })
})

describe('rooms and members commands against a version 1 server', () => {
  it('reject with unsupported', async () => {
    // A server of before: it answers any upgrade with the seed's welcome, whatever the subprotocol.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    wss.on('connection', ws => ws.send(JSON.stringify({ type: 'system', event: 'welcome', room: 'chat', user: 'server', message: 'Welcome Old!', peer: { id: 'guest:x', name: 'Old' } })))
    await new Promise(resolve => wss.once('listening', resolve))
    try {
      const base = `http://127.0.0.1:${(wss.address() as AddressInfo).port}/`
      const commands = commandsOf(base, newUser())
      await expect(commands.createRoom({ title: 'Old', visibility: 'private' })).rejects.toMatchObject({ code: 'unsupported', message: expect.stringContaining('version 1') })
      // Known from then on: no second try.
      await expect(commands.invite('lobby', 'someone')).rejects.toMatchObject({ code: 'unsupported' })
      expect(opened).toHaveLength(1)
    }
    finally {
      for (const client of wss.clients) client.terminate()
      await new Promise(resolve => wss.close(resolve))
    }
  })
})
