/**
 * Who said it (issue 11), against the built fixture with real sockets: a cookie-identified user
 * (the fixture's toy session, test/fixtures/basic/server/plugins/testHooks.ts) and guests.
 * Every attempt listed in the issue is made here and answered as docs/PROTOCOL.md, "Identity", says.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatStream, postMessage, presenceSeen, until, upgradeStatus } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const uniqueRoom = (prefix = 'id') => `${prefix}-${randomUUID().slice(0, 8)}`
const guestKey = () => randomBytes(16).toString('base64url')
const alice = { cookie: 'session=alice-token' }
const bob = { cookie: 'session=bob-token' }
const GUEST_ID = /^guest:[\w-]{22}$/

let server: TestServer
let http: string
let ws: string

beforeAll(async () => {
  server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_RESERVED_NAMES: '["admin"]' } })
  http = server.url('').replace(/\/$/, '')
  ws = `ws://127.0.0.1:${server.port}`
})

afterAll(async () => {
  await server?.stop()
})

/** Open a socket and wait for its presence frame (welcome, maybe name_refused, presence have arrived). */
async function join(params: Parameters<typeof ChatSocket.open>[1], headers: Record<string, string> = {}) {
  const socket = await ChatSocket.open(ws, params, { headers })
  await socket.waitFor(frame => frame.type === 'presence')
  return socket
}

const welcomeOf = (socket: ChatSocket) => socket.frames.find(frame => frame.type === 'system' && frame.event === 'welcome') as { peer: { id: string, name: string, guest?: true } }

describe('who said it: uid and guest on every frame that names a person', () => {
  it('marks a signed-in user and a guest apart on message, system, presence and typing frames, live and replayed', async () => {
    const room = uniqueRoom()
    const real = await join({ room }, alice)
    const guest = await join({ room, name: 'Mallory', guest: guestKey() })
    const guestId = welcomeOf(guest).peer.id
    expect(welcomeOf(real).peer).toEqual({ id: 'u-alice', name: 'Alice' })
    expect(welcomeOf(guest).peer).toEqual({ id: guestId, name: 'Mallory', guest: true })
    expect(guestId).toMatch(GUEST_ID)
    // The join frame names the guest with its id and the guest flag.
    expect(await real.waitFor(frame => frame.event === 'join')).toMatchObject({ peer: { id: guestId, name: 'Mallory', guest: true } })
    await until(() => presenceSeen(real).length === 2, 'presence of 2')
    expect(presenceSeen(real)).toEqual(expect.arrayContaining([{ id: 'u-alice', name: 'Alice' }, { id: guestId, name: 'Mallory', guest: true }]))

    // One after the other: two sockets' messages sent at once may be stored in either order.
    real.send({ type: 'message', message: 'from the real Alice', cid: 'a-1' })
    const fromReal = await guest.waitFor(frame => frame.message === 'from the real Alice')
    guest.send({ type: 'message', message: 'from a guest', cid: 'g-1' })
    const fromGuest = await real.waitFor(frame => frame.message === 'from a guest')
    expect(fromReal).toMatchObject({ type: 'message', user: 'Alice', uid: 'u-alice' })
    expect(fromReal).not.toHaveProperty('guest')
    expect(fromGuest).toMatchObject({ type: 'message', user: 'Mallory', uid: guestId, guest: true })

    guest.send({ type: 'typing' })
    expect(await real.waitFor(frame => frame.type === 'typing')).toMatchObject({ user: 'Mallory', uid: guestId, guest: true })
    real.send({ type: 'typing' })
    const typing = await guest.waitFor(frame => frame.type === 'typing')
    expect(typing).toMatchObject({ user: 'Alice', uid: 'u-alice' })
    expect(typing).not.toHaveProperty('guest')

    // The store keeps who sent what: a late reader's replay (SSE too) carries uid and guest.
    const late = await ChatStream.open(http, { room })
    await until(() => late.messages.length === 2, 'the replay')
    expect(late.messages).toEqual([
      expect.objectContaining({ message: 'from the real Alice', uid: 'u-alice', cid: 'a-1' }),
      expect.objectContaining({ message: 'from a guest', uid: guestId, guest: true, cid: 'g-1' }),
    ])
    expect(late.messages[0]).not.toHaveProperty('guest')
    await Promise.all([real.close(), guest.close(), late.close()])
  })
})

describe('anyone can be "Alice": refused now', () => {
  it('refuses a guest every look-alike of a signed-in name in the room: default name, name_refused after the welcome', async () => {
    const room = uniqueRoom()
    const real = await join({ room }, alice)
    const wishes = ['Alice', ' Alice ', 'Alice\u200B', 'Alice\uFEFF', 'Alice\u2028', '\u0410lice', 'Alice\u2060', 'Al\u00ADice', 'Alice\u061C', 'Alice\u{E0041}\u{E007F}', 'ALICE', 'AIice']
    for (const wish of wishes) {
      const guest = await join({ room, name: wish })
      const [welcome, refusal] = guest.frames
      expect(welcome, JSON.stringify(wish)).toMatchObject({ type: 'system', event: 'welcome' })
      const peer = (welcome as { peer: { id: string, name: string, guest?: true } }).peer
      expect(peer.guest).toBe(true)
      expect(peer.name).toBe(`guest-${peer.id.slice(6, 12)}`)
      expect(refusal, JSON.stringify(wish)).toMatchObject({ type: 'error', code: 'name_refused', user: 'server' })
      expect(refusal!.message).toContain('signed-in')
      await guest.close()
    }
    // The POST twin: stored under the default name, marked as a guest's.
    const post = await postMessage(http, { message: 'I am Alice' }, { room, name: 'Alice\u200B' })
    expect(post.status).toBe(200)
    expect(post.json).toMatchObject({ user: expect.stringMatching(/^guest-[\w-]{6}$/), uid: expect.stringMatching(GUEST_ID), guest: true })
    expect(await real.waitFor(frame => frame.message === 'I am Alice')).toMatchObject({ guest: true })
    // A signed-in user is never refused a name, and a guest gets the name when nobody signed in has it.
    expect(real.frames.some(frame => frame.code === 'name_refused')).toBe(false)
    const elsewhere = await join({ room: uniqueRoom(), name: 'Alice' })
    expect(welcomeOf(elsewhere).peer).toMatchObject({ name: 'Alice', guest: true })
    expect(elsewhere.frames.some(frame => frame.code === 'name_refused')).toBe(false)
    await Promise.all([real.close(), elsewhere.close()])
  })

  it('refuses look-alikes made with marks and diacritics (issue 22, finding 8) over WebSocket, SSE and POST', async () => {
    const room = uniqueRoom()
    const real = await join({ room }, alice)
    const wishes = ['A\u0332lice', 'A\u0323lice', 'Alic\u00E8', 'A\u20DDlice', 'A\u0301\u0302\u0303lice', 'A\u0142ice', 'A\uFE0Flice', '\uFF21lic\u00E9', '\u{1D400}lice\u0308']
    for (const wish of wishes) {
      const guest = await join({ room, name: wish })
      expect(guest.frames[1], JSON.stringify(wish)).toMatchObject({ type: 'error', code: 'name_refused', message: expect.stringContaining('signed-in') })
      expect(welcomeOf(guest).peer.name).toMatch(/^guest-/)
      await guest.close()
    }
    const stream = await ChatStream.open(http, { room, name: 'A\u0332lice' })
    await stream.waitFor(frame => frame.code === 'name_refused')
    expect(stream.frames.find(frame => frame.type === 'system' && frame.event === 'welcome')).toMatchObject({ peer: { name: expect.stringMatching(/^guest-/) } })
    await stream.close()
    const post = await postMessage(http, { message: 'I am Alice too' }, { room, name: 'Alic\u00E8' })
    expect(post.json).toMatchObject({ user: expect.stringMatching(/^guest-[\w-]{6}$/), guest: true })
    // Other names with diacritics are names like any other.
    const jose = await join({ room, name: 'Jos\u00E9' })
    expect(welcomeOf(jose).peer.name).toBe('Jos\u00E9')
    await Promise.all([real.close(), jose.close()])
  })

  it('refuses look-alikes made with letter forms Unicode does not decompose (hooks, bars, belts) and one-stroke letters', async () => {
    const room = uniqueRoom()
    const real = await join({ room }, alice)
    for (const wish of ['A\u2C61ice', 'A\u026Cice', 'A\u04CFice', 'Aiice']) {
      const guest = await join({ room, name: wish })
      expect(guest.frames[1], JSON.stringify(wish)).toMatchObject({ type: 'error', code: 'name_refused', message: expect.stringContaining('signed-in') })
      expect(welcomeOf(guest).peer.name).toMatch(/^guest-/)
      await guest.close()
    }
    const post = await postMessage(http, { message: 'I am Alice three' }, { room, name: 'A\u2C61ice' })
    expect(post.json).toMatchObject({ user: expect.stringMatching(/^guest-[\w-]{6}$/), guest: true })
    // Names that only share letters with Alice keep them, as written.
    const alina = await join({ room, name: 'Alina' })
    expect(welcomeOf(alina).peer.name).toBe('Alina')
    expect(alina.frames.some(frame => frame.code === 'name_refused')).toBe(false)
    await Promise.all([real.close(), alina.close()])
  })

  it('refuses reserved and blank-looking names to guests, and normalizes the rest', async () => {
    const room = uniqueRoom()
    for (const [wish, reason] of [['server', 'reserved'], ['System', 'reserved'], ['\u0455erver', 'reserved'], ['admin', 'reserved'], ['\u3164', 'nothing visible'], ['\u2800\u2800', 'nothing visible'], ['\u200B', 'nothing visible'], ['\u{E0041}', 'nothing visible']] as const) {
      const guest = await join({ room, name: wish })
      expect(guest.frames[1], JSON.stringify(wish)).toMatchObject({ type: 'error', code: 'name_refused', message: expect.stringContaining(reason) })
      expect(welcomeOf(guest).peer.name).toMatch(/^guest-/)
      guest.send('hello')
      // Nothing a guest sends is shown as the server's.
      expect(await guest.waitFor(frame => frame.type === 'message')).toMatchObject({ user: expect.stringMatching(/^guest-/), guest: true })
      await guest.close()
    }
    const post = await postMessage(http, 'Alice left!', { room, name: 'server' })
    expect(post.json).toMatchObject({ user: expect.stringMatching(/^guest-/), guest: true })
    const tidy = await join({ room, name: '  Ada \u200B Lovelace\u202E ' })
    expect(welcomeOf(tidy).peer.name).toBe('Ada Lovelace')
    expect(tidy.frames.some(frame => frame.code === 'name_refused')).toBe(false)
    await tidy.close()
  })
})

describe('stable guest identity', () => {
  it('keeps a guest key\'s id and name across reconnects and transports, never echoes the key, and resends by cid safely', async () => {
    const room = uniqueRoom()
    const key = guestKey()
    const first = await join({ room, name: 'Gus', guest: key })
    const id = welcomeOf(first).peer.id
    expect(id).toMatch(GUEST_ID)
    first.send({ type: 'message', message: 'queued before the drop', cid: 'q-1' })
    const stored = await first.waitFor(frame => frame.type === 'message')
    expect(stored).toMatchObject({ uid: id, guest: true })
    first.ws.terminate()

    const second = await join({ room, name: 'Gus', guest: key, since: stored.id as number })
    expect(welcomeOf(second).peer).toEqual({ id, name: 'Gus', guest: true })
    // Resent after the reconnect: the same stored message, not a second one.
    second.send({ type: 'message', message: 'queued before the drop', cid: 'q-1' })
    expect(await second.waitFor(frame => frame.type === 'message')).toMatchObject({ id: stored.id, uid: id, message: 'queued before the drop' })
    expect((await storedIn(room)).length).toBe(1)
    const post = await postMessage(http, { message: 'over POST', cid: 'q-2' }, { room, guest: key })
    expect(post.json).toMatchObject({ uid: id, user: `guest-${id.slice(6, 12)}`, guest: true })
    const stream = await ChatStream.open(http, { room, guest: key })
    await stream.waitFor(frame => frame.type === 'presence')
    expect(stream.frames[0]).toMatchObject({ peer: { id, guest: true } })
    for (const reader of [first, second]) expect(reader.raw.some(frame => frame.data.includes(key))).toBe(false)
    expect(stream.text).not.toContain(key)
    expect(post.text).not.toContain(key)
    await Promise.all([second.close(), stream.close()])
  })

  it('gives a guest without a key a fresh id per connection and a short default name, not a UUID', async () => {
    const room = uniqueRoom()
    const a = await join({ room })
    const b = await join({ room })
    const [pa, pb] = [welcomeOf(a).peer, welcomeOf(b).peer]
    expect(pa.id).toMatch(GUEST_ID)
    expect(pa.id).not.toBe(pb.id)
    expect(pa.name).toBe(`guest-${pa.id.slice(6, 12)}`)
    expect(pa.name).not.toMatch(/[0-9a-f]{8}-/)
    expect(a.frames[0]!.message).toBe(`Welcome ${pa.name}!`)
    await Promise.all([a.close(), b.close()])
  })

  it('refuses a malformed guest key with 400 on the upgrade, the SSE stream and POST', async () => {
    const room = uniqueRoom()
    for (const key of ['short', 'x'.repeat(65), 'has space in it 1234567890', 'ünïcödé-ünïcödé-ünïcödé']) {
      const query = `room=${room}&guest=${encodeURIComponent(key)}`
      expect(await upgradeStatus(`${ws}/_ws?${query}`), key).toBe(400)
      const stream = await fetch(`${http}/api/sse?${query}`)
      expect(stream.status).toBe(400)
      expect(await stream.json()).toMatchObject({ type: 'error', code: 'bad_request' })
      expect((await postMessage(http, 'x', { room, guest: key })).status).toBe(400)
    }
    expect((await storedIn(room)).length).toBe(0)
  })
})

describe('cids are scoped per sender', () => {
  it('does not let guest B\'s cid claim guest A\'s message, nor A read B\'s back', async () => {
    const room = uniqueRoom()
    const attacker = await join({ room, guest: guestKey() })
    attacker.send({ type: 'message', message: 'ATTACKER TEXT', cid: 'c-1' })
    const attack = await attacker.waitFor(frame => frame.type === 'message')
    const victim = await join({ room, guest: guestKey() })
    victim.send({ type: 'message', message: 'my own text', cid: 'c-1' })
    const ack = await victim.waitFor(frame => frame.type === 'message' && frame.message === 'my own text')
    expect(ack).toMatchObject({ cid: 'c-1', uid: welcomeOf(victim).peer.id })
    expect(ack).not.toHaveProperty('duplicate')
    expect(ack.id).toBe((attack.id as number) + 1)
    // The attacker reuses the victim's cid: it gets its own message back, never the victim's.
    await attacker.waitFor(frame => frame.message === 'my own text')
    attacker.send({ type: 'message', message: 'probe', cid: 'c-1' })
    await until(() => attacker.messages.length === 3, 'the answer to the attacker\'s resend')
    expect(attacker.messages.at(-1)).toMatchObject({ id: attack.id, message: 'ATTACKER TEXT', uid: welcomeOf(attacker).peer.id })
    // Same for guests without a key (the seed page) and over POST.
    const seedA = await postMessage(http, { message: 'seed A', cid: 's-1' }, { room })
    const seedB = await postMessage(http, { message: 'seed B', cid: 's-1' }, { room })
    expect(seedB.json).toMatchObject({ message: 'seed B', id: (seedA.json!.id as number) + 1 })
    expect((await storedIn(room)).map(frame => frame.message)).toEqual(['ATTACKER TEXT', 'my own text', 'seed A', 'seed B'])
    await Promise.all([attacker.close(), victim.close()])
  })

  it('refuses cids outside [A-Za-z0-9._:-] (lone surrogates no longer collide): bad_request, nothing stored', async () => {
    const room = uniqueRoom()
    const socket = await join({ room, guest: guestKey() })
    for (const cid of ['\uD800', '\uDC00', 'a b', 'c/1', '\u00E9']) socket.send(JSON.stringify({ type: 'message', message: `cid ${JSON.stringify(cid)}`, cid }))
    await until(() => socket.frames.filter(frame => frame.type === 'error').length === 5, 'five refusals')
    expect(socket.frames.filter(frame => frame.type === 'error').every(frame => frame.code === 'bad_request')).toBe(true)
    expect((await postMessage(http, { message: 'x', cid: '\uD800' }, { room })).status).toBe(400)
    socket.send({ type: 'message', message: 'ok', cid: 'Ok_1.2:3-4' })
    await socket.waitFor(frame => frame.type === 'message')
    expect((await storedIn(room)).map(frame => frame.message)).toEqual(['ok'])
    await socket.close()
  })
})

describe('the admission probe: a plain GET on the WebSocket route', () => {
  it('answers 401 / 403 / 400 with an error frame when an upgrade would be refused, else 426', async () => {
    const probe = async (query: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${http}/_ws?${query}`, { headers })
      return { status: response.status, type: response.headers.get('content-type'), body: await response.json() }
    }
    const room = uniqueRoom('private')
    expect(await probe(`room=${room}`)).toMatchObject({ status: 401, type: 'application/json', body: { type: 'error', code: 'unauthorized', message: 'Sign in first' } })
    expect(await probe(`room=${room}`, bob)).toMatchObject({ status: 403, body: { code: 'forbidden' } })
    expect(await probe('room=bad%20room')).toMatchObject({ status: 400, body: { code: 'bad_request' } })
    expect(await probe('room=x&guest=short')).toMatchObject({ status: 400, body: { code: 'bad_request' } })
    expect(await probe('room=x', { origin: 'http://evil.example' })).toMatchObject({ status: 403, body: { code: 'forbidden' } })
    const allowed = await probe(`room=${room}`, alice)
    expect(allowed).toMatchObject({ status: 426, body: { type: 'error' } })
    expect((await fetch(`${http}/_ws?room=${room}`, { headers: alice })).headers.get('upgrade')).toBe('websocket')
  })
})

describe('ids a signed-in user may not have', () => {
  it('refuses an id from chat:identify that a guest or the server holds (`guest:…`, `server`): logged, every request refused 500, nothing sent as them', async () => {
    // A server of its own: the failures it logs are what this test is about, and no other test's.
    const own = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
    try {
      const base = own.url('').replace(/\/$/, '')
      const room = uniqueRoom()
      for (const token of ['guest-impostor-token', 'server-impostor-token']) {
        const headers = { cookie: `session=${token}` }
        const probe = await fetch(`${base}/_ws?room=${room}`, { headers })
        expect(probe.status, token).toBe(500)
        expect(await probe.json()).toMatchObject({ type: 'error', message: 'Internal error' })
        expect((await fetch(`${base}/api/sse?room=${room}`, { headers })).status, token).toBe(500)
        expect((await postMessage(base, { message: 'as someone else', cid: 'c-1' }, { room }, headers)).status, token).toBe(500)
        expect(await upgradeStatus(`ws://127.0.0.1:${own.port}/_ws`, { headers: { ...headers, 'sec-websocket-protocol': 'nuxt-chat.2' } }), token).toBe(500)
      }
      const history = await (await fetch(`${base}/api/sse?room=${room}&before=999`)).json() as { messages: unknown[] }
      expect(history.messages).toEqual([])
      expect(own.logs()).toContain('chat:identify named a user `guest:')
      expect(own.logs()).toContain('chat:identify named a user `server`')
    }
    finally {
      await own.stop()
    }
  })
})

describe('malformed Host', () => {
  /** Send a raw request (fetch and ws would fix the Host header) and read its status line. */
  const statusLine = (head: string) => new Promise<string>((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.write(head))
    let data = ''
    socket.on('data', (chunk) => {
      data += chunk
      if (data.includes('\r\n')) {
        resolve(data.slice(0, data.indexOf('\r\n')))
        socket.destroy()
      }
    })
    socket.on('error', reject)
  })
  it('answers 400 on the upgrade, the probe and SSE, never 500', async () => {
    const upgrade = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
    expect(await statusLine(`GET /_ws?room=x HTTP/1.1\r\nHost: a b\r\n${upgrade}\r\n`)).toMatch(/^HTTP\/1\.1 400/)
    expect(await statusLine('GET /_ws?room=x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(await statusLine('GET /api/sse?room=x HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(server.logs()).not.toContain('upgrade failed')
  })
})

describe('origin: scheme, host and port', () => {
  it('refuses another scheme, a non-canonical origin and a trailing-dot host; believes X-Forwarded-Proto only from a trusted proxy', async () => {
    const own = `http://127.0.0.1:${server.port}`
    const status = (origin: string, extra: Record<string, string> = {}) => upgradeStatus(`${ws}/_ws?room=${uniqueRoom()}`, { headers: { origin, ...extra } })
    expect(await status(own)).toBe(101)
    for (const origin of [`https://127.0.0.1:${server.port}`, `HTTP://127.0.0.1:${server.port}`, `http://127.0.0.1.:${server.port}`, 'http://127.0.0.1', `http://127.0.0.1:${server.port}/`, 'null']) {
      expect(await status(origin), origin).toBe(403)
      expect((await fetch(`${http}/api/sse?room=x`, { headers: { origin } })).status, origin).toBe(403)
      expect((await postMessage(http, 'x', { room: 'x' }, { origin })).status, origin).toBe(403)
    }
    // Nobody configured a proxy here: a client cannot claim https.
    expect(await status(`https://127.0.0.1:${server.port}`, { 'x-forwarded-proto': 'https' })).toBe(403)

    const proxied = await startServer({ env: { NUXT_CHAT_CLIENT_IP_HEADER: 'x-forwarded-for' } })
    try {
      const url = `ws://127.0.0.1:${proxied.port}/_ws?room=${uniqueRoom()}`
      const secure = `https://127.0.0.1:${proxied.port}`
      expect(await upgradeStatus(url, { headers: { 'origin': secure, 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' } })).toBe(101)
      expect(await upgradeStatus(url, { headers: { 'origin': `http://127.0.0.1:${proxied.port}`, 'x-forwarded-proto': 'https' } })).toBe(403)
      expect(await upgradeStatus(url, { headers: { origin: secure } })).toBe(403)
    }
    finally {
      await proxied.stop()
    }
  })
})

/** An HTTP request from a given local address (127.0.0.0/8 all reach the server), so each test has its own client address. */
function requestFrom(localAddress: string, url: string, body?: object): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: body ? 'POST' : 'GET', localAddress, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body ? JSON.stringify(body) : undefined)
  })
}

/** POST a message from a given local address. */
function postFrom(localAddress: string, base: string, body: object, params: Record<string, string>): Promise<number> {
  return requestFrom(localAddress, `${base}/api/sse?${new URLSearchParams(params)}`, body)
}

describe('limits per person and per address', () => {
  let limited: TestServer
  let limitedWs: string
  let limitedHttp: string
  beforeAll(async () => {
    limited = await startServer()
    limitedWs = `ws://127.0.0.1:${limited.port}`
    limitedHttp = limited.url('').replace(/\/$/, '')
  })
  afterAll(async () => {
    await limited?.stop()
  })
  /** Per-address budget for `elapsed` ms (default rateLimitPerIp: burst 30, 60 per 10 s), plus one for timing. */
  const addressBudget = (elapsed: number) => 30 + Math.ceil(elapsed * 60 / 10_000) + 1

  it('shares one person\'s budget over all their connections and POSTs (a guest key; a signed-in user)', async () => {
    const room = uniqueRoom()
    const key = guestKey()
    const tabs = await Promise.all([0, 1, 2].map(() => ChatSocket.open(limitedWs, { room, guest: key }, { localAddress: '127.0.0.21' })))
    await Promise.all(tabs.map(tab => tab.waitFor(frame => frame.type === 'presence')))
    const started = Date.now()
    tabs.forEach((tab, t) => Array.from({ length: 8 }, (_, i) => tab.send({ type: 'message', message: `tab ${t} #${i}`, cid: `t${t}-${i}` })))
    await until(() => tabs.every(tab => tab.frames.filter(frame => frame.type === 'message' || frame.type === 'error').length >= 8), 'answers to 24 messages')
    const post = await postFrom('127.0.0.21', limitedHttp, { message: 'and a POST' }, { room, guest: key })
    const elapsed = Date.now() - started
    const stored = (await storedIn(room, limitedHttp)).length
    // Person: burst 10 and 2 per second.
    expect(stored).toBeGreaterThanOrEqual(10)
    expect(stored).toBeLessThanOrEqual(10 + Math.ceil(elapsed / 500) + 1)
    expect(post).toBe(429)

    const aliceRoom = uniqueRoom()
    const aliceTabs = await Promise.all([0, 1].map(() => ChatSocket.open(limitedWs, { room: aliceRoom }, { headers: alice, localAddress: '127.0.0.22' })))
    await Promise.all(aliceTabs.map(tab => tab.waitFor(frame => frame.type === 'presence')))
    aliceTabs.forEach((tab, t) => Array.from({ length: 8 }, (_, i) => tab.send(`alice ${t} #${i}`)))
    await until(() => aliceTabs.every(tab => tab.frames.filter(frame => frame.type === 'message' || frame.type === 'error').length >= 8), 'answers to 16 messages')
    expect(aliceTabs.flatMap(tab => tab.frames).filter(frame => frame.code === 'rate_limited').length).toBeGreaterThanOrEqual(4)
    await Promise.all([...tabs, ...aliceTabs].map(tab => tab.close()))
  })

  it('100 connections from one address store at most the per-address budget', async () => {
    const room = uniqueRoom()
    const sockets = await Promise.all(Array.from({ length: 100 }, () => ChatSocket.open(limitedWs, { room }, { localAddress: '127.0.0.23' })))
    await Promise.all(sockets.map(socket => socket.waitFor(frame => frame.type === 'presence')))
    const started = Date.now()
    sockets.forEach((socket, s) => Array.from({ length: 10 }, (_, i) => socket.send(`conn ${s} #${i}`)))
    await until(() => sockets.every(socket => socket.frames.filter(frame => frame.type === 'error' || (frame.type === 'message' && String(frame.message).startsWith(`conn ${sockets.indexOf(socket)} `))).length >= 10), 'answers to 1000 messages', 30_000)
    const elapsed = Date.now() - started
    const stored = (await storedIn(room, limitedHttp)).length
    console.info(`[figures] 100 connections x 10 messages from one address: ${stored} of 1000 stored in ${elapsed} ms (budget ${addressBudget(elapsed)})`)
    expect(stored).toBeGreaterThanOrEqual(30)
    expect(stored).toBeLessThanOrEqual(addressBudget(elapsed))
    // The 101st connection from that address is refused (maxConnectionsPerIp: 100 by default).
    expect(await upgradeStatus(`${limitedWs}/_ws?room=${room}`, { localAddress: '127.0.0.23' })).toBe(429)
    // ... and the probe tells why.
    expect(await requestFrom('127.0.0.23', `${limitedHttp}/_ws?room=${room}`)).toBe(429)
    expect(await requestFrom('127.0.0.25', `${limitedHttp}/_ws?room=${room}`)).toBe(426)
    await Promise.all(sockets.map(socket => socket.close()))
  })

  it('reconnecting after every 10 messages stores at most the per-address budget; POSTs share it', async () => {
    const room = uniqueRoom()
    const started = Date.now()
    let answered = 0
    for (let round = 0; round < 30; round++) {
      const socket = await ChatSocket.open(limitedWs, { room }, { localAddress: '127.0.0.24' })
      await socket.waitFor(frame => frame.type === 'presence')
      for (let i = 0; i < 10; i++) socket.send(`round ${round} #${i}`)
      await until(() => socket.frames.filter(frame => frame.type === 'error' || (frame.type === 'message' && String(frame.message).startsWith(`round ${round} `))).length >= 10, 'answers to 10')
      answered += 10
      await socket.close()
    }
    const posts = []
    for (let i = 0; i < 10; i++) posts.push(await postFrom('127.0.0.24', limitedHttp, { message: `post ${i}` }, { room }))
    const elapsed = Date.now() - started
    const stored = (await storedIn(room, limitedHttp)).length
    console.info(`[figures] reconnect every 10 messages, 30 rounds + 10 POSTs from one address: ${stored} of ${answered + 10} stored in ${elapsed} ms (budget ${addressBudget(elapsed)})`)
    expect(stored).toBeLessThanOrEqual(addressBudget(elapsed))
    expect(posts.filter(status => status === 429).length).toBeGreaterThan(0)
  })

  it('warns once when requests carry X-Forwarded-For and clientIpHeader is unset', async () => {
    for (let i = 0; i < 3; i++) await fetch(`${limitedHttp}/api/sse?room=${uniqueRoom()}`, { method: 'POST', headers: { 'x-forwarded-for': `198.51.100.${i}`, 'content-type': 'text/plain' }, body: 'x' })
    await until(() => limited.logs().includes('clientIpHeader'), 'the warning')
    expect(limited.logs().split('X-Forwarded-For but').length - 1).toBe(1)
  })
})

/** What a room stored on `base`: a fresh reader's replay. */
async function storedIn(room: string, base = http) {
  // since=0: up to maxReplay (1000) messages, not the last `replay` (50).
  const reader = await ChatStream.open(base, { room, since: 0 })
  await reader.waitFor(frame => frame.type === 'presence')
  await new Promise(resolve => setTimeout(resolve, 150))
  await reader.close()
  return reader.messages
}
