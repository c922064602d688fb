/**
 * The real client's one connection per tab (src/runtime/app/sharedLink.ts with its WebSocket and
 * SSE carriers, what `useChat()` runs) against a built server: rooms of one tab share one
 * WebSocket (or one version 2 event stream), a room switch is a leave and a join on it, a dropped
 * connection resumes every room from its cursor exactly once, a direct room (`dm`) rides on the
 * same connection, and a server that speaks only version 1 gets the per-room sockets (or
 * streams) of before.
 */
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatConnection } from '../../src/runtime/app/chatConnection'
import { FetchEventSource, startProxy, storedOf } from '../utils/chaos'
import { ChatSocket, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const newRoom = () => `shared-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')

/** Every WebSocket the client code opens, with its URL and subprotocols. */
const opened: { url: string, protocols: unknown, socket: WebSocket }[] = []
/** Every version 2 command the client code sends: frames on its WebSockets, bodies of its POSTs. */
const sent: Record<string, unknown>[] = []
/** Every EventSource the client code opens, with its URL. */
const streams: { url: string, source: FetchEventSource }[] = []
const PlainWebSocket = globalThis.WebSocket
const global = globalThis as { EventSource?: unknown }
const PlainEventSource = global.EventSource
const plainFetch = globalThis.fetch
let connections: ChatConnection[] = []
/** The session cookie the client's requests carry, as a signed-in browser's do (none: a guest). */
let cookie: string | undefined

beforeAll(() => {
  globalThis.WebSocket = class extends PlainWebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      // Node's WebSocket takes request headers in an options object.
      super(url, (cookie ? { protocols, headers: { cookie } } : protocols) as string[])
      opened.push({ url: String(url), protocols, socket: this })
    }

    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView) {
      if (typeof data === 'string' && data.startsWith('{')) sent.push(JSON.parse(data))
      super.send(data)
    }
  }
  globalThis.fetch = (input, init) => {
    if (init?.method === 'POST' && typeof init.body === 'string') sent.push(JSON.parse(init.body))
    if (!cookie) return plainFetch(input, init)
    const headers = new Headers(init?.headers)
    headers.set('cookie', cookie)
    return plainFetch(input, { ...init, headers })
  }
  global.EventSource = class extends FetchEventSource {
    constructor(url: string | URL) {
      super(url)
      streams.push({ url: String(url), source: this })
    }
  }
})
afterAll(() => {
  globalThis.WebSocket = PlainWebSocket
  globalThis.fetch = plainFetch
  global.EventSource = PlainEventSource
})
afterEach(() => {
  for (const connection of connections) connection.close()
  connections = []
  cookie = undefined
  opened.length = 0
  streams.length = 0
  sent.length = 0
})

/** A room connection of one tab (its guest key), sharing the tab's socket (or event stream) as `useChat()` does. */
function roomClient(baseURL: string, room: string, guestKey: string, name = 'Tab', transport: 'ws' | 'sse' = 'ws', dm?: string): ChatConnection {
  const connection = createChatConnection({
    room, ...(dm === undefined ? {} : { dm }), name, transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 1000, maxQueue: 100, maxLength: 2000,
    autoReconnect: { delay: 50, maxDelay: 300 }, heartbeat: false, typingTimeout: 3000, baseURL, guestKey, shareSocket: true,
  })
  connections.push(connection)
  connection.open()
  return connection
}

describe('one socket per tab against a version 2 server', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('puts three rooms on one socket, each with its own messages, and switches rooms on it', async () => {
    const guest = randomUUID().replaceAll('-', '')
    const rooms = [newRoom(), newRoom(), newRoom()]
    for (const room of rooms) expect((await postMessage(httpBase(server), { message: `before ${room}` }, { room })).status).toBe(200)
    const clients = rooms.map(room => roomClient(server.url('/'), room, guest))
    await until(() => clients.every(client => client.status.value === 'OPEN'), 'three rooms open')
    expect(opened).toHaveLength(1)
    expect(opened[0]!.protocols).toBe('nuxt-chat.2')
    expect(new URL(opened[0]!.url).searchParams.has('room')).toBe(false)
    clients.forEach((client, index) => client.send(`hello ${rooms[index]}`))
    for (const [index, client] of clients.entries()) {
      const room = rooms[index]!
      await until(() => storedOf(client).length === 2, `two messages in ${room}`)
      expect(storedOf(client).map(message => message.message)).toEqual([`before ${room}`, `hello ${room}`])
    }
    // A v1 reader in the third room sees the tab's message, and the tab is one user there.
    const reader = await ChatSocket.open(server.wsUrl(''), { room: rooms[2] })
    await reader.waitFor(frame => frame.type === 'message' && frame.message === `hello ${rooms[2]}`, 'the tab\'s message on v1')

    // Switching: the third room's connection goes, a fourth room comes, on the same socket.
    connections.splice(connections.indexOf(clients[2]!), 1)
    clients[2]!.close()
    const fourth = roomClient(server.url('/'), newRoom(), guest)
    await until(() => fourth.status.value === 'OPEN', 'the fourth room open')
    await reader.waitFor(frame => frame.type === 'system' && frame.event === 'leave', 'the tab left the third room')
    expect(opened).toHaveLength(1)
    await reader.close()
  })

  it('resumes every room from its cursor after the socket drops, each message once', async () => {
    const guest = randomUUID().replaceAll('-', '')
    const rooms = [newRoom(), newRoom()]
    const clients = rooms.map(room => roomClient(server.url('/'), room, guest))
    await until(() => clients.every(client => client.status.value === 'OPEN'), 'rooms open')
    clients.forEach(client => client.send('one'))
    await until(() => clients.every(client => storedOf(client).length === 1), 'first messages stored')
    // The socket drops; meanwhile others write, and the tab queues a message per room.
    opened[0]!.socket.close()
    await until(() => clients.every(client => client.status.value !== 'OPEN'), 'rooms dropped')
    for (const room of rooms) expect((await postMessage(httpBase(server), { message: 'while away' }, { room })).status).toBe(200)
    clients.forEach(client => client.send('two'))
    await until(() => clients.every(client => client.status.value === 'OPEN' && storedOf(client).length === 3), 'rooms back with every message')
    for (const client of clients) {
      const ids = storedOf(client).map(message => message.id)
      expect(new Set(ids).size).toBe(3)
      expect(storedOf(client).map(message => message.message).sort()).toEqual(['one', 'two', 'while away'])
    }
    // Reconnected on one new socket, not one per room.
    expect(opened).toHaveLength(2)
  })
})

describe('a direct room on the shared connection', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  /** Two signed-in people of this case: the tab is Alice's. */
  function people() {
    const tag = randomUUID().slice(0, 8)
    const alice = `user-dm-alice-${tag}`
    const bob = `user-dm-bob-${tag}`
    cookie = `session=${alice}`
    return { alice, bob }
  }

  /** Bob in the direct room with `alice`, on a version 1 socket of his own (not the tab's). */
  function bobsSocket(bob: string, alice: string) {
    const params: Record<string, string> = { dm: alice }
    return ChatSocket.open(server.wsUrl(''), params, { headers: { cookie: `session=${bob}` } })
  }

  /** The direct room's id as server code gets it (`useChatServer().directRoom`). */
  async function directRoomOf(alice: string, bob: string): Promise<string> {
    const response = await plainFetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'directRoom', userId: alice, otherId: bob }) })
    return String((await response.json() as { id: string }).id)
  }

  /** The tab's connections: version 2 sockets, version 1 sockets, event streams. */
  const carriers = () => ({ v2: opened.filter(entry => entry.protocols === 'nuxt-chat.2').length, v1: opened.filter(entry => entry.protocols !== 'nuxt-chat.2').length, streams: streams.length })

  for (const transport of ['ws', 'sse'] as const) {
    const one = transport === 'ws' ? { v2: 1, v1: 0, streams: 0 } : { v2: 0, v1: 0, streams: 1 }

    it(`puts two rooms and a direct room on one ${transport === 'ws' ? 'socket' : 'event stream'}; both people write in the direct room, which is \`directRoom\`'s (${transport})`, async () => {
      const { alice, bob } = people()
      const guest = randomUUID().replaceAll('-', '')
      const rooms = [newRoom(), newRoom()]
      const inRooms = rooms.map(room => roomClient(server.url('/'), room, guest, 'Alice', transport))
      const direct = roomClient(server.url('/'), 'chat', guest, 'Alice', transport, bob)
      await until(() => [...inRooms, direct].every(client => client.status.value === 'OPEN'), 'two rooms and the direct room open', 5000).catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify([direct.status.value, direct.error.value, carriers()])}`)
      })
      expect(carriers()).toEqual(one)
      // The direct room was asked for by the other person's id, on the shared connection.
      expect(sent.filter(command => command.type === 'dm')).toEqual([expect.objectContaining({ user: bob })])

      const fromBob = await bobsSocket(bob, alice)
      direct.send('hi Bob')
      await fromBob.waitFor(frame => frame.type === 'message' && frame.message === 'hi Bob', 'Alice\'s message at Bob')
      fromBob.send({ type: 'message', message: 'hi Alice', cid: 'bob-1' })
      await until(() => storedOf(direct).length === 2, 'Bob\'s answer at Alice')
      inRooms.forEach((client, index) => client.send(`in ${rooms[index]}`))
      await until(() => inRooms.every(client => storedOf(client).length === 1), 'the rooms\' messages')
      expect(storedOf(direct).map(message => message.message)).toEqual(['hi Bob', 'hi Alice'])
      for (const [index, client] of inRooms.entries()) expect(storedOf(client).map(message => message.message)).toEqual([`in ${rooms[index]}`])
      // Both people and server code name the same room.
      const room = await directRoomOf(alice, bob)
      expect(room).toMatch(/^dm:/)
      expect(new Set(storedOf(direct).map(message => message.room))).toEqual(new Set([room]))
      expect((await fromBob.waitFor(frame => frame.type === 'system' && frame.event === 'welcome')).room).toBe(room)
      expect(carriers()).toEqual(one)
      await fromBob.close()
    })

    it(`resumes the direct room with a \`join\` from its cursor after the ${transport === 'ws' ? 'socket' : 'event stream'} is cut, each message once (${transport})`, async () => {
      const proxy = await startProxy(() => Number(new URL(server.url('/')).port))
      try {
        const { alice, bob } = people()
        const guest = randomUUID().replaceAll('-', '')
        const inRoom = roomClient(`${proxy.base}/`, newRoom(), guest, 'Alice', transport)
        const direct = roomClient(`${proxy.base}/`, 'chat', guest, 'Alice', transport, bob)
        await until(() => inRoom.status.value === 'OPEN' && direct.status.value === 'OPEN', 'the room and the direct room open', 5000)
        const fromBob = await bobsSocket(bob, alice)
        direct.send('one')
        await until(() => storedOf(direct).length === 1, 'the first message stored')
        const [first] = storedOf(direct)
        // The network drops every connection of the tab; meanwhile Bob writes, and the tab queues a message.
        while (proxy.cut()) { /* every open connection */ }
        await until(() => direct.status.value !== 'OPEN' && inRoom.status.value !== 'OPEN', 'the tab dropped')
        fromBob.send({ type: 'message', message: 'while away', cid: 'bob-away' })
        await fromBob.waitFor(frame => frame.type === 'message' && frame.message === 'while away', 'Bob\'s message stored')
        direct.send('two')
        await until(() => direct.status.value === 'OPEN' && inRoom.status.value === 'OPEN' && storedOf(direct).length === 3, 'the direct room back with every message')
        // A live message after the resume: nothing of the replay comes twice behind it.
        fromBob.send({ type: 'message', message: 'after', cid: 'bob-after' })
        await until(() => storedOf(direct).some(message => message.message === 'after'), 'Bob\'s live message')
        const ids = storedOf(direct).map(message => message.id)
        expect(new Set(ids).size).toBe(4)
        expect(storedOf(direct).map(message => message.message).sort()).toEqual(['after', 'one', 'two', 'while away'])
        await fromBob.waitFor(frame => frame.type === 'message' && frame.message === 'two', 'the queued message at Bob')
        expect(fromBob.messages.filter(message => message.message === 'two')).toHaveLength(1)
        // Asked for by `dm` once; after the cut, joined by its room from the cursor (replay and exactly once as for any room).
        expect(sent.filter(command => command.type === 'dm')).toHaveLength(1)
        const joins = sent.filter(command => command.type === 'join' && command.room === first!.room)
        expect(joins.length).toBeGreaterThan(0)
        expect(joins.every(command => command.since === first!.id)).toBe(true)
        // Reconnected on one new connection for both.
        expect(carriers()).toEqual(transport === 'ws' ? { v2: 2, v1: 0, streams: 0 } : { v2: 0, v1: 0, streams: 2 })
        await fromBob.close()
      }
      finally {
        await proxy.close()
      }
    })
  }

  for (const first of ['room', 'dm'] as const) {
    it(`keeps a \`room: 'dm:…'\` and a \`dm\` of the same room in one tab working (the ${first} first)`, async () => {
      const { alice, bob } = people()
      const room = await directRoomOf(alice, bob)
      const guest = randomUUID().replaceAll('-', '')
      const open = (kind: 'room' | 'dm') => kind === 'room' ? roomClient(server.url('/'), room, guest, 'Alice') : roomClient(server.url('/'), 'chat', guest, 'Alice', 'ws', bob)
      const earlier = open(first)
      await until(() => earlier.status.value === 'OPEN', 'the first open')
      const later = open(first === 'room' ? 'dm' : 'room')
      await until(() => later.status.value === 'OPEN', 'the second open', 5000).catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify([later.status.value, later.error.value, carriers()])}`)
      })
      const fromBob = await bobsSocket(bob, alice)
      fromBob.send({ type: 'message', message: 'to both', cid: 'bob-both' })
      await until(() => [earlier, later].every(client => storedOf(client).some(message => message.message === 'to both')), 'Bob\'s message at both')
      later.send('from the second')
      await fromBob.waitFor(frame => frame.type === 'message' && frame.message === 'from the second', 'the second\'s message at Bob')
      for (const client of [earlier, later]) expect(new Set(storedOf(client).map(message => message.room))).toEqual(new Set([room]))
      // The room is held once on the shared socket: the second of them has a version 1 socket of its own.
      expect(carriers()).toEqual({ v2: 1, v1: 1, streams: 0 })
      await fromBob.close()
    })
  }
})

describe('one socket per tab against a version 1 server', () => {
  it('falls back to a version 1 socket per room', async () => {
    // A server of before: it answers any upgrade with the seed's welcome, whatever the subprotocol.
    const seen: string[] = []
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    wss.on('connection', (ws, request) => {
      const room = new URL(request.url!, 'http://x').searchParams.get('room') ?? 'chat'
      seen.push(`${request.headers['sec-websocket-protocol'] ?? ''} ${room}`)
      ws.send(JSON.stringify({ type: 'system', event: 'welcome', room, user: 'server', message: 'Welcome Old!', peer: { id: 'guest:x', name: 'Old' } }))
      ws.on('message', data => ws.send(JSON.stringify({ type: 'message', id: 1, room, user: 'Old', message: String(JSON.parse(String(data)).message), ts: 1, cid: JSON.parse(String(data)).cid })))
    })
    await new Promise(resolve => wss.once('listening', resolve))
    try {
      const base = `http://127.0.0.1:${(wss.address() as AddressInfo).port}/`
      const guest = randomUUID().replaceAll('-', '')
      const clients = ['a', 'b'].map(room => roomClient(base, room, guest))
      await until(() => clients.every(client => client.status.value === 'OPEN' && client.me.value?.name === 'Old'), 'both rooms open on version 1', 5000).catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify({ seen, status: clients.map(client => [client.status.value, client.me.value, client.error.value]) })}`)
      })
      clients[0]!.send('on v1')
      await until(() => storedOf(clients[0]!).length === 1, 'the message echoed')
      // The shared socket (no room) was tried once; then one version 1 socket per room, without the subprotocol.
      expect(seen.filter(entry => entry.startsWith('nuxt-chat.2'))).toHaveLength(1)
      expect(seen.filter(entry => !entry.startsWith('nuxt-chat.2')).sort()).toEqual([' a', ' b'])
    }
    finally {
      // `ws` closes its HTTP server only once every connection is gone.
      for (const client of wss.clients) client.terminate()
      await new Promise(resolve => wss.close(resolve))
    }
  })
})

describe('one event stream per tab against a version 2 server', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('puts three rooms on one stream, with messages, typing and a room switch (a leave) on it', async () => {
    const guest = randomUUID().replaceAll('-', '')
    const rooms = [newRoom(), newRoom(), newRoom()]
    for (const room of rooms) expect((await postMessage(httpBase(server), { message: `before ${room}` }, { room })).status).toBe(200)
    const clients = rooms.map(room => roomClient(server.url('/'), room, guest, 'Tab', 'sse'))
    await until(() => clients.every(client => client.status.value === 'OPEN'), 'three rooms open')
    expect(streams).toHaveLength(1)
    const url = new URL(streams[0]!.url)
    expect(url.searchParams.get('v')).toBe('2')
    expect(url.searchParams.get('guest')).toBe(guest)
    expect(url.searchParams.has('room')).toBe(false)
    expect(opened).toEqual([])
    clients.forEach((client, index) => client.send(`hello ${rooms[index]}`))
    for (const [index, client] of clients.entries()) {
      const room = rooms[index]!
      await until(() => storedOf(client).length === 2, `two messages in ${room}`)
      expect(storedOf(client).map(message => message.message)).toEqual([`before ${room}`, `hello ${room}`])
    }
    // A v1 reader in the third room sees the tab's message, and the tab typing there.
    const reader = await ChatSocket.open(server.wsUrl(''), { room: rooms[2] })
    await reader.waitFor(frame => frame.type === 'message' && frame.message === `hello ${rooms[2]}`, 'the tab\'s message on v1')
    clients[2]!.notifyTyping()
    await reader.waitFor(frame => frame.type === 'typing' && frame.user === 'Tab', 'the tab typing')
    // Older history comes back as a command on the stream too.
    clients[0]!.clear()
    expect(await clients[0]!.loadOlder()).toBe(2)
    expect(storedOf(clients[0]!).map(message => message.message)).toEqual([`before ${rooms[0]}`, `hello ${rooms[0]}`])

    // Switching: the third room's connection goes (a leave POSTed to the stream), a fourth room comes, on the same stream.
    connections.splice(connections.indexOf(clients[2]!), 1)
    clients[2]!.close()
    const fourth = roomClient(server.url('/'), newRoom(), guest, 'Tab', 'sse')
    await until(() => fourth.status.value === 'OPEN', 'the fourth room open')
    await reader.waitFor(frame => frame.type === 'system' && frame.event === 'leave', 'the tab left the third room')
    expect(streams).toHaveLength(1)
    await reader.close()
    // The last room gone, the stream lingers a moment (a room switch), then closes.
    for (const connection of connections.splice(0)) connection.close()
    expect(streams[0]!.source.readyState).toBe(1)
    await until(() => streams[0]!.source.readyState === 2, 'the stream closed', 5000)
  })

  it('resumes every room from its cursor after the stream is cut, each message once', async () => {
    const proxy = await startProxy(() => Number(new URL(server.url('/')).port))
    try {
      const guest = randomUUID().replaceAll('-', '')
      const rooms = [newRoom(), newRoom()]
      const clients = rooms.map(room => roomClient(`${proxy.base}/`, room, guest, 'Tab', 'sse'))
      await until(() => clients.every(client => client.status.value === 'OPEN'), 'rooms open')
      clients.forEach(client => client.send('one'))
      await until(() => clients.every(client => storedOf(client).length === 1), 'first messages stored')
      // The network drops every connection of the tab; meanwhile others write, and the tab queues a message per room.
      while (proxy.cut()) { /* every open connection */ }
      await until(() => clients.every(client => client.status.value !== 'OPEN'), 'rooms dropped')
      for (const room of rooms) expect((await postMessage(httpBase(server), { message: 'while away' }, { room })).status).toBe(200)
      clients.forEach(client => client.send('two'))
      await until(() => clients.every(client => client.status.value === 'OPEN' && storedOf(client).length === 3), 'rooms back with every message')
      for (const client of clients) {
        const ids = storedOf(client).map(message => message.id)
        expect(new Set(ids).size).toBe(3)
        expect(storedOf(client).map(message => message.message).sort()).toEqual(['one', 'two', 'while away'])
      }
      // Reconnected on one new stream, not one per room.
      expect(streams).toHaveLength(2)
    }
    finally {
      await proxy.close()
    }
  })
})

describe('one event stream per tab against a version 1 server', () => {
  it('falls back to a version 1 stream per room', async () => {
    // A server of before: any GET is a room's stream (`chat` without `room`) opening with the seed's welcome; a POST echoes.
    const seen: string[] = []
    const old = createServer((request, response) => {
      const url = new URL(request.url!, 'http://x')
      const room = url.searchParams.get('room') ?? 'chat'
      if (request.method === 'POST') {
        let body = ''
        request.on('data', (chunk) => {
          body += chunk
        })
        request.on('end', () => {
          const { message, cid } = JSON.parse(body)
          response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'message', id: 1, room, user: 'Old', message, ts: 1, cid }))
        })
        return
      }
      seen.push(url.searchParams.has('v') ? `v2 ${url.searchParams.get('guest') ? 'guest' : ''}` : `v1 ${room}`)
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      response.write(`data: ${JSON.stringify({ type: 'system', event: 'welcome', room, user: 'server', message: 'Welcome Old!', peer: { id: 'guest:x', name: 'Old' } })}\n\n`)
    })
    await new Promise<void>(resolve => old.listen(0, '127.0.0.1', resolve))
    try {
      const base = `http://127.0.0.1:${(old.address() as AddressInfo).port}/`
      const guest = randomUUID().replaceAll('-', '')
      const clients = ['a', 'b'].map(room => roomClient(base, room, guest, 'Tab', 'sse'))
      await until(() => clients.every(client => client.status.value === 'OPEN' && client.me.value?.name === 'Old'), 'both rooms open on version 1', 5000).catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify({ seen, status: clients.map(client => [client.status.value, client.me.value, client.error.value]) })}`)
      })
      clients[0]!.send('on v1')
      await until(() => storedOf(clients[0]!).length === 1, 'the message echoed')
      // The shared stream (no room, the guest key) was tried once; then one version 1 stream per room.
      expect(seen.filter(entry => entry.startsWith('v2'))).toEqual(['v2 guest'])
      expect(seen.filter(entry => entry.startsWith('v1')).sort()).toEqual(['v1 a', 'v1 b'])
      expect(streams).toHaveLength(3)
    }
    finally {
      for (const connection of connections) connection.close()
      old.closeAllConnections()
      await new Promise(resolve => old.close(resolve))
    }
  })
})
