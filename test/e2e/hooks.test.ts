/**
 * The app hooks, with real cookies and sockets: `chat:identify` (who a peer is), `chat:join` (who
 * may enter a room) and `chat:message` (refuse or rewrite). The hooks live in the fixture's Nitro plugin
 * test/fixtures/basic/server/plugins/testHooks.ts (which also shows the nuxt-auth-utils way).
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { ChatSocket, ChatSocketV2, ChatStream, ChatStreamV2, postMessage, presenceSeen, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
let http: string
let ws: string
const uniqueRoom = (prefix = 'hk') => `${prefix}-${randomUUID().slice(0, 8)}`
const alice = { cookie: 'theme=dark; session=alice-token' }
const bob = { cookie: 'session=bob-token' }

beforeAll(async () => {
  server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
  http = server.url('').replace(/\/$/, '')
  ws = `ws://127.0.0.1:${server.port}`
})

afterAll(async () => {
  await server?.stop()
})

/** Try an upgrade: its HTTP status and whether a socket ever opened. */
function tryUpgrade(room: string, headers: Record<string, string> = {}): Promise<{ status: number, opened: boolean, body: string }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${ws}/_ws?room=${room}`, { headers })
    socket.on('open', () => {
      socket.close()
      resolve({ status: 101, opened: true, body: '' })
    })
    socket.on('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk) => {
        body += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, opened: false, body }))
    })
    socket.on('error', () => {})
  })
}

describe('chat:identify', () => {
  it('names the peer from its session cookie; the identified name wins over ?name=', async () => {
    const room = uniqueRoom()
    const socket = await ChatSocket.open(ws, { room, name: 'Mallory' }, { headers: alice })
    const welcome = await socket.waitFor(frame => frame.type === 'system')
    expect(welcome).toMatchObject({ event: 'welcome', message: 'Welcome Alice!', peer: { id: 'u-alice', name: 'Alice' } })
    socket.send('hi from a socket')
    const echo = await socket.waitFor(frame => frame.type === 'message')
    expect(echo).toMatchObject({ user: 'Alice', message: 'hi from a socket' })

    const stream = await ChatStream.open(http, { room, name: 'Mallory' }, bob)
    expect(await stream.waitFor(frame => frame.type === 'system')).toMatchObject({ message: 'Welcome Bob!' })
    const post = await postMessage(http, { message: 'hi from POST' }, { room, name: 'Mallory' }, alice)
    expect(post.status).toBe(200)
    expect(post.json).toMatchObject({ user: 'Alice', message: 'hi from POST' })
    await stream.waitFor(frame => frame.type === 'message' && frame.message === 'hi from POST')
    expect(stream.messages.map(frame => frame.user)).toEqual(['Alice', 'Alice'])

    // Without a session, ?name= is used as before.
    const anonymous = await ChatSocket.open(ws, { room, name: 'Mallory' })
    expect(await anonymous.waitFor(frame => frame.type === 'system')).toMatchObject({ message: 'Welcome Mallory!' })
    // An unknown token is no session.
    const forged = await ChatSocket.open(ws, { room, name: 'Eve' }, { headers: { cookie: 'session=alice-token-forged' } })
    expect(await forged.waitFor(frame => frame.type === 'system')).toMatchObject({ message: 'Welcome Eve!' })
    await Promise.all([socket.close(), stream.close(), anonymous.close(), forged.close()])
  })

  it('counts two sockets with the same session as one user in presence', async () => {
    const room = uniqueRoom()
    const watcher = await ChatSocket.open(ws, { room, name: 'Watcher' })
    await watcher.waitFor(frame => frame.type === 'presence')
    const tab1 = await ChatSocket.open(ws, { room }, { headers: alice })
    await watcher.waitFor(frame => frame.message === 'Alice joined!')
    const tab2 = await ChatStream.open(http, { room }, alice)
    const tab3 = await ChatSocket.open(ws, { room }, { headers: alice })
    await tab3.waitFor(frame => frame.type === 'presence')
    await tab2.waitFor(frame => frame.type === 'presence')

    for (const reader of [watcher, tab1, tab2, tab3]) {
      expect(presenceSeen(reader)).toHaveLength(2)
      expect(presenceSeen(reader).filter(user => user.id === 'u-alice')).toEqual([{ id: 'u-alice', name: 'Alice' }])
    }
    expect(tab3.frames.at(1)).toMatchObject({ type: 'presence', message: '2 online' })
    // One join, however many tabs.
    expect(watcher.frames.filter(frame => frame.message === 'Alice joined!')).toHaveLength(1)

    // A message from one tab reaches the others once.
    tab1.send('from tab 1')
    await tab3.waitFor(frame => frame.type === 'message' && frame.message === 'from tab 1')
    await tab2.waitFor(frame => frame.type === 'message' && frame.message === 'from tab 1')

    // Closing tabs: no leave until the last one goes.
    await tab1.close()
    await tab2.close()
    tab3.send('still here')
    await watcher.waitFor(frame => frame.type === 'message' && frame.message === 'still here')
    expect(watcher.frames.some(frame => frame.message === 'Alice left!')).toBe(false)
    await tab3.close()
    await watcher.waitFor(frame => frame.message === 'Alice left!')
    await until(() => presenceSeen(watcher).length === 1, 'presence without Alice')
    await watcher.close()
  })

  it('refuses a private room with 401 without a session and 403 for Bob, before any socket or stream opens', async () => {
    const room = uniqueRoom('private')

    const noSession = await tryUpgrade(room)
    expect(noSession).toMatchObject({ status: 401, opened: false })
    expect(noSession.body).toContain('Sign in first')
    expect(await tryUpgrade(room, bob)).toMatchObject({ status: 403, opened: false })
    expect(await tryUpgrade(room, { cookie: 'session=nope' })).toMatchObject({ status: 401, opened: false })

    for (const [headers, status, code] of [[{}, 401, 'unauthorized'], [bob, 403, 'forbidden']] as const) {
      const response = await fetch(`${http}/api/sse?room=${room}`, { headers })
      expect(response.status).toBe(status)
      expect(response.headers.get('content-type')).not.toContain('text/event-stream')
      expect(await response.json()).toMatchObject({ type: 'error', code, user: 'server' })
      const post = await postMessage(http, { message: 'sneaking in' }, { room }, headers)
      expect(post.status).toBe(status)
      expect(post.json).toMatchObject({ type: 'error', code })
    }

    // Alice may enter, and nothing from the refused requests was stored.
    const inside = await ChatSocket.open(ws, { room }, { headers: alice })
    await inside.waitFor(frame => frame.type === 'presence')
    expect((await postMessage(http, 'alice inside', { room }, alice)).status).toBe(200)
    await inside.waitFor(frame => frame.type === 'message')
    expect(inside.messages.map(frame => frame.message)).toEqual(['alice inside'])
    // Presence never showed a refused peer.
    expect(presenceSeen(inside)).toEqual([{ id: 'u-alice', name: 'Alice' }])
    await inside.close()
  })
})

describe('chat:join', () => {
  it('on version 2, identify runs once per connection and the join hook once per room; its refusal answers that room only', async () => {
    const user = `user-count-${randomUUID().slice(0, 8)}`
    const socket = await ChatSocketV2.openV2(ws, {}, { headers: { cookie: `session=${user}` } })
    const rooms = [uniqueRoom(), uniqueRoom(), uniqueRoom(), uniqueRoom()]
    for (const room of rooms) expect(await socket.join(room)).toMatchObject({ type: 'caught_up', room })
    // Refused by the hook, by `reject` and by a thrown 403; the connection and its rooms stay.
    expect(await socket.join(uniqueRoom('closed'))).toMatchObject({ type: 'join_refused', code: 'forbidden', message: 'closed for the night' })
    const bobs = await ChatSocketV2.openV2(ws, {}, { headers: bob })
    expect(await bobs.join(uniqueRoom('private'))).toMatchObject({ type: 'join_refused', code: 'forbidden', message: 'Not for Bob' })
    const guest = await ChatSocketV2.openV2(ws)
    expect(await guest.join(uniqueRoom('private'))).toMatchObject({ type: 'join_refused', code: 'unauthorized', message: 'Sign in first' })
    socket.send({ type: 'message', room: rooms[0], message: 'still here', cid: 'c1' })
    await socket.waitFor(frame => frame.type === 'message' && frame.room === rooms[0])
    const calls = await (await fetch(`${http}/_test/hook-calls?user=${user}`)).json()
    expect(calls).toEqual({ identify: 1, join: 5 })
    await Promise.all([socket.close(), bobs.close(), guest.close()])
  })

  it('refuses a version 1 upgrade, SSE stream and POST to a room the hook closes, with its reason', async () => {
    const room = uniqueRoom('closed')
    const upgrade = await tryUpgrade(room, alice)
    expect(upgrade).toMatchObject({ status: 403, opened: false })
    expect(upgrade.body).toContain('closed for the night')
    const response = await fetch(`${http}/api/sse?room=${room}`, { headers: alice })
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ code: 'forbidden', message: 'closed for the night' })
    expect((await postMessage(http, 'knock', { room }, alice)).status).toBe(403)
  })

  it('sees what identify set as ctx.data for the connection, on both versions; no client ever gets it', async () => {
    const red = { cookie: `session=user-red-${randomUUID().slice(0, 8)}` }
    const room = uniqueRoom('red')
    const socket = await ChatSocketV2.openV2(ws, {}, { headers: red })
    expect(await socket.join(room)).toMatchObject({ type: 'caught_up', room })
    const other = await ChatSocketV2.openV2(ws, {}, { headers: alice })
    expect(await other.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden', message: 'Not allowed in this room' })
    expect((await tryUpgrade(room, alice)).status).toBe(403)
    expect((await tryUpgrade(room, red)).status).toBe(101)
    expect(JSON.stringify(socket.frames)).not.toContain('"team"')
    await Promise.all([socket.close(), other.close()])
  })

  it('refuses the join on a version 2 SSE stream too', async () => {
    const stream = await ChatStreamV2.openV2(http, {}, alice)
    expect(await stream.join(uniqueRoom('closed'))).toMatchObject({ type: 'join_refused', code: 'forbidden', message: 'closed for the night' })
    expect(await stream.join(uniqueRoom())).toMatchObject({ type: 'caught_up' })
    await stream.close()
  })
})

describe('chat:message', () => {
  it('refuses a message with a `rejected` error frame carrying the reason; nothing stored', async () => {
    const room = uniqueRoom()
    const sender = await ChatSocket.open(ws, { room })
    const other = await ChatSocket.open(ws, { room })
    await other.waitFor(frame => frame.type === 'presence')
    sender.send({ type: 'message', message: 'this is forbidden', cid: 'f-1' })
    const error = await sender.waitFor(frame => frame.type === 'error')
    expect(error).toMatchObject({ type: 'error', code: 'rejected', message: 'contains a forbidden word', cid: 'f-1', user: 'server' })
    sender.send('also forbidden as raw text')
    await until(() => sender.frames.filter(frame => frame.code === 'rejected').length === 2, 'second rejection')

    const post = await postMessage(http, { message: 'forbidden over POST' }, { room })
    expect(post.status).toBe(403)
    expect(post.json).toMatchObject({ type: 'error', code: 'rejected', message: 'contains a forbidden word' })

    // The connection stays, and only the allowed message is stored and broadcast.
    sender.send('allowed')
    await other.waitFor(frame => frame.type === 'message')
    expect(other.messages.map(frame => frame.message)).toEqual(['allowed'])
    expect(sender.closed).toBeUndefined()
    const late = await ChatStream.open(http, { room })
    await late.waitFor(frame => frame.type === 'message')
    expect(late.messages.map(frame => frame.message)).toEqual(['allowed'])
    await Promise.all([sender.close(), other.close(), late.close()])
  })

  it('stores and broadcasts the rewritten text', async () => {
    const room = uniqueRoom()
    const sender = await ChatSocket.open(ws, { room }, { headers: bob })
    const other = await ChatStream.open(http, { room })
    await other.waitFor(frame => frame.type === 'presence')
    sender.send({ type: 'message', message: 'darn it, darn', cid: 'd-1' })
    const echo = await sender.waitFor(frame => frame.type === 'message')
    expect(echo).toMatchObject({ user: 'Bob', message: 'd**n it, d**n', cid: 'd-1' })
    const seen = await other.waitFor(frame => frame.type === 'message')
    expect(seen).toEqual(echo)

    const post = await postMessage(http, 'darn POST', { room })
    expect(post.json).toMatchObject({ message: 'd**n POST' })

    // What was stored is the rewritten text: a fresh reader's replay.
    const late = await ChatSocket.open(ws, { room })
    await until(() => late.messages.length === 2, 'replay')
    expect(late.messages.map(frame => frame.message)).toEqual(['d**n it, d**n', 'd**n POST'])
    // Resending the cid gives back the stored (rewritten) frame, not a second copy.
    sender.send({ type: 'message', message: 'darn it, darn', cid: 'd-1' })
    await until(() => sender.messages.length === 3, 'the stored frame again')
    expect(sender.messages.at(-1)).toEqual({ ...echo, duplicate: true })
    await Promise.all([sender.close(), other.close(), late.close()])
  })
})
