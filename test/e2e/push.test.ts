/**
 * Web Push (issue 25, docs/PROTOCOL.md "Notifications") against a push service this test runs on
 * loopback (test/utils/pushReceiver.ts): it receives the real encrypted POSTs, checks their VAPID
 * JWT and decrypts their aes128gcm payload with the subscription's own keys. A direct message to
 * someone with no connection is pushed once with its text; someone online on any instance gets
 * nothing; a 410 removes the subscription; messages within the window make one push; mentions and
 * thread replies notify; muted rooms and the `chat:notify` hook suppress; bad input is refused.
 * SQLite (one instance) and two PostgreSQL instances over Redis.
 */
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { DatabaseSync } from 'node:sqlite'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'
import { ChatSocketV2, until, type FrameV2 } from '../utils/clients'
import { ownRedis } from '../utils/faults'
import { startPushReceiver, vapidKeys, type PushReceiver, type TestSubscription } from '../utils/pushReceiver'
import { callServer, serverPairs, startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
/** A signed-in test user (`user-…` session tokens name their own users); `push` ones are seen by the fixture's `chat:notify` hook. */
const newUser = (name: string, kind = 'push') => ({ id: `user-${kind}-${tag}-${++users}`, name })
const cookieOf = (user: { id: string, name: string }) => `session=${user.id}.${user.name}`
const WINDOW = 800
const SUBJECT = 'mailto:ops@example.test'
const keys = vapidKeys()
const PUSH_ENV = {
  NUXT_CHAT_RATE_LIMIT: 'false',
  NUXT_CHAT_PUSH_VAPID_PUBLIC_KEY: keys.publicKey,
  NUXT_CHAT_PUSH_VAPID_PRIVATE_KEY: keys.privateKey,
  NUXT_CHAT_PUSH_SUBJECT: SUBJECT,
  NUXT_CHAT_PUSH_WINDOW: String(WINDOW),
  NUXT_CHAT_PUSH_INSECURE_LOOPBACK: 'true',
  NUXT_CHAT_PUSH_MAX_SUBSCRIPTIONS: '2',
  NUXT_CHAT_PUSH_URL: '/chat?room={room}',
  // Who is online on the other instance is known within this (a key per person in Redis).
  NUXT_CHAT_PRESENCE_INTERVAL: '300',
}
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** A request to a push route as a page of the app would make it. */
function pushRequest(server: TestServer, path: string, method: string, user?: { id: string, name: string }, body?: unknown) {
  return fetch(server.url(`/_chat/push${path}`), {
    method,
    headers: { 'content-type': 'application/json', 'origin': server.url('').replace(/\/$/, ''), ...(user ? { cookie: cookieOf(user) } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
}

describe.each(serverPairs('nuxt_chat_push', PUSH_ENV))('push on %s', (_name, start) => {
  let a: TestServer
  let b: TestServer
  let receiver: PushReceiver
  let stop: (() => Promise<unknown>) | undefined
  const opened: ChatSocketV2[] = []
  const open = async (server: TestServer, user: { id: string, name: string }) => {
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: cookieOf(user) } })
    opened.push(socket)
    return socket
  }
  const say = async (socket: ChatSocketV2, room: string, message: string, fields: Record<string, unknown> = {}) => {
    const cid = `c-${randomUUID().slice(0, 8)}`
    socket.send({ type: 'message', room, message, cid, ...fields })
    const answer = await socket.waitFor(frame => (frame.type === 'message' && frame.cid === cid) || (frame.type === 'error' && frame.cid === cid), `the answer to ${message}`) as FrameV2 & ChatMessageFrame
    expect(answer.type).toBe('message')
    return answer
  }
  /** Subscribe `user` on `server` with a new subscription of the test's push service. */
  const subscribe = async (server: TestServer, user: { id: string, name: string }) => {
    const subscription = receiver.subscribe()
    const response = await pushRequest(server, '', 'POST', user, subscription.json)
    expect(response.status).toBe(201)
    return subscription
  }
  /** The direct room of two users, made by server code; the sender's socket in it. */
  const directRoom = async (sender: { id: string, name: string }, other: { id: string, name: string }) => {
    const { body } = await callServer<{ id: string }>(a, { call: 'directRoom', userId: sender.id, otherId: other.id })
    const socket = await open(a, sender)
    expect(await socket.join(body.id)).toMatchObject({ type: 'caught_up' })
    return { room: body.id, socket }
  }
  /** No push for `subscription` within a window and a half more. */
  const noPushFor = async (subscription: TestSubscription) => {
    await sleep(WINDOW * 2.5)
    expect(receiver.pushesOf(subscription)).toEqual([])
  }

  beforeAll(async () => {
    receiver = await startPushReceiver(keys.publicKey, SUBJECT)
    const started = await start()
    ;[a, b] = started.servers
    stop = started.stop
  })
  afterAll(async () => {
    for (const socket of opened) await socket.close()
    await stop?.()
    await receiver?.close()
  })

  it('a direct message to someone with no connection is pushed once: VAPID-signed, encrypted, with its sender and text', async () => {
    const ann = newUser('Ann')
    const bob = newUser('Bob')
    const subscription = await subscribe(b, bob)
    const { room, socket } = await directRoom(ann, bob)
    const sent = Date.now()
    await say(socket, room, 'Lunch at noon?')
    const [push] = await until(() => receiver.pushesOf(subscription).length > 0 && receiver.pushesOf(subscription), 'the push', 5000 + WINDOW)
    expect(push!.problems).toEqual([])
    // Held for the batching window, then sent at once.
    expect(push!.at - sent).toBeGreaterThanOrEqual(WINDOW - 20)
    expect(push!.at - sent).toBeLessThan(WINDOW + 1000)
    expect(push!.claims).toMatchObject({ aud: receiver.origin, sub: SUBJECT })
    expect(push!.headers.urgency).toBe('normal')
    expect(push!.payload).toEqual({ title: 'Ann', body: 'Lunch at noon?', room, url: `/chat?room=${encodeURIComponent(room)}`, count: 1, tag: `chat:${room}` })
    // The app's hook saw it (on the instance that stored it) before it went out.
    const { body: notified } = await fetch(a.url(`/_test/notified?uid=${bob.id}`)).then(async response => ({ body: await response.json() }))
    expect(notified).toEqual([{ uid: bob.id, room, title: 'Ann', body: 'Lunch at noon?', count: 1, send: true }])
    await sleep(WINDOW * 1.5)
    expect(receiver.pushesOf(subscription)).toHaveLength(1)
    // The sender is never notified of their own message.
    expect(await fetch(a.url(`/_test/notified?uid=${ann.id}`)).then(response => response.json())).toEqual([])
  })

  it('someone with an open connection on any instance gets no push, even with no room joined', async () => {
    const ann = newUser('Ann')
    const bob = newUser('Bob')
    const subscription = await subscribe(a, bob)
    // Bob's version 2 connection to the other instance, in no room.
    await open(b, bob)
    await sleep(700)
    const { room, socket } = await directRoom(ann, bob)
    await say(socket, room, 'are you there?')
    await noPushFor(subscription)
    expect(await fetch(a.url(`/_test/notified?uid=${bob.id}`)).then(response => response.json())).toEqual([])
  })

  it('three messages within the window make one push: "3 new messages from Ann" with the newest text', async () => {
    const ann = newUser('Ann')
    const bob = newUser('Bob')
    const subscription = await subscribe(a, bob)
    const { room, socket } = await directRoom(ann, bob)
    await say(socket, room, 'one')
    await say(socket, room, 'two')
    await say(socket, room, 'three: '.padEnd(300, 'x'))
    await until(() => receiver.pushesOf(subscription).length > 0, 'the push', 5000 + WINDOW)
    await sleep(WINDOW * 1.5)
    const pushes = receiver.pushesOf(subscription)
    expect(pushes).toHaveLength(1)
    expect(pushes[0]!.problems).toEqual([])
    expect(pushes[0]!.payload).toMatchObject({ title: '3 new messages from Ann', count: 3, room })
    // Shortened to `push.maxLength` (120) characters, the last one `…`.
    expect(pushes[0]!.payload.body).toBe(`${'three: '.padEnd(119, 'x')}…`)
  })

  it('a 410 from the push service removes the subscription: the next message pushes to the others only', async () => {
    const ann = newUser('Ann')
    const bob = newUser('Bob')
    const gone = await subscribe(a, bob)
    const live = await subscribe(b, bob)
    gone.status = 410
    const { room, socket } = await directRoom(ann, bob)
    await say(socket, room, 'first')
    await until(() => receiver.pushesOf(gone).length === 1 && receiver.pushesOf(live).length === 1, 'both pushes', 5000 + WINDOW)
    await sleep(WINDOW * 1.5)
    await say(socket, room, 'second')
    await until(() => receiver.pushesOf(live).length === 2, 'the second push', 5000 + WINDOW)
    await sleep(WINDOW * 1.5)
    expect(receiver.pushesOf(gone)).toHaveLength(1)
    expect(receiver.pushesOf(live).map(push => push.payload.body)).toEqual(['first', 'second'])
    // Deleted from the store: unsubscribing it finds nothing, the live one is there.
    expect(await pushRequest(a, '', 'DELETE', bob, { endpoint: gone.json.endpoint }).then(response => response.json())).toEqual({ removed: false })
    expect(await pushRequest(b, '', 'DELETE', bob, { endpoint: live.json.endpoint }).then(response => response.json())).toEqual({ removed: true })
  })

  it('a mention and a reply in a thread someone wrote in notify them; a muted room does not; the sender never', async () => {
    const ann = newUser('Ann')
    const bob = newUser('Bobby')
    const cat = newUser('Cat')
    const room = `push-${randomUUID().slice(0, 8)}`
    // Bob and Cat speak in the room (members, names known), then leave.
    const bobSocket = await open(b, bob)
    const catSocket = await open(b, cat)
    for (const socket of [bobSocket, catSocket]) expect(await socket.join(room)).toMatchObject({ type: 'caught_up' })
    const parent = await say(bobSocket, room, 'who is in for Friday?')
    // Bob is connected when Cat's reply is stored, and leaves at once: he got it, so no push of it.
    await say(catSocket, room, 'me', { thread: parent.id })
    await bobSocket.close()
    await catSocket.close()
    const bobPush = await subscribe(a, bob)
    const catPush = await subscribe(a, cat)
    // Gone from every instance (Redis keys live three presence intervals).
    await sleep(1500)
    const annSocket = await open(a, ann)
    expect(await annSocket.join(room)).toMatchObject({ type: 'caught_up' })
    await say(annSocket, room, 'count me in', { thread: parent.id })
    // Both follow the thread: Bob wrote its parent, Cat replied.
    await until(() => receiver.pushesOf(bobPush).length >= 1 && receiver.pushesOf(catPush).length >= 1, 'the thread pushes', 5000 + WINDOW).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify({ bob: receiver.pushesOf(bobPush).map(push => push.payload), cat: receiver.pushesOf(catPush).map(push => push.payload) })}`)
    })
    await sleep(WINDOW * 1.5)
    expect({ bob: receiver.pushesOf(bobPush).map(push => push.payload.body), cat: receiver.pushesOf(catPush).map(push => push.payload.body) }).toEqual({ bob: ['count me in'], cat: ['count me in'] })
    expect(receiver.pushesOf(bobPush)[0]!.payload).toMatchObject({ title: 'Ann', body: 'count me in' })
    // Cat mutes the room; Ann mentions both.
    expect(await pushRequest(a, '/mute', 'POST', cat, { room, muted: true }).then(response => response.json())).toEqual({ room, muted: true })
    expect(await pushRequest(b, '/mute', 'GET', cat).then(response => response.json())).toEqual({ rooms: [room] })
    await say(annSocket, room, 'hey @Bobby and @Cat')
    await until(() => receiver.pushesOf(bobPush).length === 2, 'the mention push', 5000 + WINDOW)
    expect(receiver.pushesOf(bobPush)[1]!.payload).toMatchObject({ title: 'Ann', body: 'hey @Bobby and @Cat' })
    await sleep(WINDOW * 1.5)
    expect(receiver.pushesOf(catPush)).toHaveLength(1)
    // Unmuted: the next mention reaches her.
    expect(await pushRequest(a, '/mute', 'POST', cat, { room, muted: false }).then(response => response.status)).toBe(200)
    await say(annSocket, room, '@Cat ping')
    await until(() => receiver.pushesOf(catPush).length === 2, 'the push after unmuting', 5000 + WINDOW)
  })

  it('a thread\'s followers who may no longer read its room (banned from a private room) are not pushed its replies', async () => {
    const [ann, bob, cat] = [newUser('Ann'), newUser('Bobby'), newUser('Cat')]
    const annSocket = await open(a, ann)
    const ref = annSocket.ref()
    annSocket.send({ type: 'create', ref, title: 'Staff', visibility: 'private', members: [bob.id, cat.id] })
    const room = (await annSocket.waitFor(frame => frame.ref === ref && frame.type === 'caught_up', 'the room made')).room as string
    const bobSocket = await open(b, bob)
    const catSocket = await open(b, cat)
    for (const socket of [bobSocket, catSocket]) expect(await socket.join(room)).toMatchObject({ type: 'caught_up' })
    const parent = await say(bobSocket, room, 'the plan for Friday')
    await say(catSocket, room, 'noted', { thread: parent.id })
    await bobSocket.close()
    await catSocket.close()
    const [bobPush, catPush] = [await subscribe(a, bob), await subscribe(a, cat)]
    const banRef = annSocket.ref()
    annSocket.send({ type: 'ban', room, user: bob.id, ref: banRef })
    expect(await annSocket.waitFor(frame => frame.ref === banRef, 'the ban')).toMatchObject({ type: 'ack' })
    // Gone from every instance (Redis keys live three presence intervals).
    await sleep(1500)
    await say(annSocket, room, 'the confidential details', { thread: parent.id })
    // Cat, a member who replied, is pushed; Bob wrote the parent, but is banned: before, he was pushed the text too.
    await until(() => receiver.pushesOf(catPush).length >= 1, 'Cat\'s push', 5000 + WINDOW)
    expect(receiver.pushesOf(catPush)[0]!.payload).toMatchObject({ body: 'the confidential details' })
    await noPushFor(bobPush)
  })

  it('messages for one person stored on both instances within the window make one push', async () => {
    const ann = newUser('Ann')
    const bob = newUser('Bo')
    const cat = newUser('Cat')
    const room = `push-${randomUUID().slice(0, 8)}`
    // Bob is a member of the room under his name, then leaves.
    const bobSocket = await open(b, bob)
    expect(await bobSocket.join(room)).toMatchObject({ type: 'caught_up' })
    await say(bobSocket, room, 'hello')
    await bobSocket.close()
    const subscription = await subscribe(a, bob)
    await sleep(1500)
    const catSocket = await open(b, cat)
    expect(await catSocket.join(room)).toMatchObject({ type: 'caught_up' })
    const { room: direct, socket: annSocket } = await directRoom(ann, bob)
    // One on each instance (the same one on SQLite).
    await say(annSocket, direct, 'call me')
    await say(catSocket, room, '@Bo standup moved')
    await until(() => receiver.pushesOf(subscription).length > 0, 'the push', 5000 + WINDOW)
    await sleep(WINDOW * 1.5)
    const pushes = receiver.pushesOf(subscription)
    expect(pushes).toHaveLength(1)
    expect(pushes[0]!.payload).toMatchObject({ title: '2 new messages from Ann and Cat', body: '@Bo standup moved', count: 2, room })
  })

  it('the chat:notify hook can take a notification over: nothing is pushed, the hook saw it', async () => {
    const ann = newUser('Ann')
    const mail = newUser('Dee', 'push-mail')
    const subscription = await subscribe(a, mail)
    const { room, socket } = await directRoom(ann, mail)
    await say(socket, room, 'see you')
    await until(async () => (await fetch(a.url(`/_test/notified?uid=${mail.id}`)).then(response => response.json()) as unknown[]).length === 1, 'the hook call', 5000 + WINDOW)
    await noPushFor(subscription)
  })
})

describe('push without VAPID keys', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('is off: its routes answer 503 and the log says why, once; the chat works', async () => {
    const user = newUser('Fay')
    for (const [path, method] of [['/key', 'GET'], ['', 'POST'], ['', 'DELETE'], ['/mute', 'POST'], ['/mute', 'GET']] as const) {
      const response = await pushRequest(server, path, method, user, method === 'GET' ? undefined : {})
      expect(response.status, `${method} ${path}`).toBe(503)
      expect(await response.json()).toMatchObject({ type: 'error', code: 'unavailable' })
    }
    expect(server.logs()).toMatch(/push is off/)
    expect(server.logs().match(/push is off/g)).toHaveLength(1)
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: cookieOf(user) } })
    expect(await socket.join(`push-off-${tag}`)).toMatchObject({ type: 'caught_up' })
    await socket.close()
  })
})

describe('push routes refuse bad input', () => {
  let server: TestServer
  let receiver: PushReceiver
  beforeAll(async () => {
    receiver = await startPushReceiver(keys.publicKey, SUBJECT)
    server = await startServer({ env: { ...PUSH_ENV, NUXT_CHAT_PUSH_INSECURE_LOOPBACK: 'false', NUXT_CHAT_READ_RATE_LIMIT: 'false' } })
  })
  afterAll(async () => {
    await server?.stop()
    await receiver?.close()
  })

  it('never posts to a push service whose name leads to this machine: the subscription is removed', async () => {
    // What an endpoint's host name resolving into the server's own network would reach (`127.0.0.1.nip.io`, DNS rebinding).
    let connections = 0
    const target = createTcpServer((socket) => {
      connections++
      socket.destroy()
    })
    await new Promise<void>(resolve => target.listen(0, '127.0.0.1', resolve))
    const ann = newUser('Ann')
    const bob = newUser('Bob')
    const named = { ...receiver.subscribe().json, endpoint: `https://push.example.test/rebind-${bob.id}` }
    expect((await pushRequest(server, '', 'POST', bob, named)).status).toBe(201)
    // The name answers 127.0.0.1 by the time a push goes out: \`localhost\`, which every machine's resolver knows, stands in for it.
    const database = () => new DatabaseSync(`${server.cwd}/.data/chat.sqlite`, { timeout: 5000 })
    const db = database()
    db.prepare('UPDATE chat_push_subscriptions SET endpoint = ? WHERE endpoint = ?').run(`https://localhost:${(target.address() as AddressInfo).port}/x`, named.endpoint)
    db.close()
    const { body } = await callServer<{ id: string }>(server, { call: 'directRoom', userId: ann.id, otherId: bob.id })
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: cookieOf(ann) } })
    expect(await socket.join(body.id)).toMatchObject({ type: 'caught_up' })
    socket.send({ type: 'message', room: body.id, message: 'psst', cid: 'c-rebind' })
    await until(() => /push service localhost: \S+ is this machine: the subscription is removed/.test(server.logs()), 'the refused push', WINDOW + 5000)
    expect(connections).toBe(0)
    const after = database()
    expect(after.prepare('SELECT count(*) AS n FROM chat_push_subscriptions WHERE uid = ?').get(bob.id)).toEqual({ n: 0 })
    after.close()
    await socket.close()
    await new Promise(resolve => target.close(resolve))
  })

  it('answers the public key; refuses guests, http endpoints, malformed keys and bodies; keeps at most maxSubscriptions', async () => {
    expect(await fetch(server.url('/_chat/push/key')).then(response => response.json())).toEqual({ publicKey: keys.publicKey })
    const user = newUser('Eve')
    const { json } = receiver.subscribe()
    // A guest (no session) has no subscriptions.
    const guest = await pushRequest(server, '', 'POST', undefined, json)
    expect(guest.status).toBe(401)
    expect(await guest.json()).toMatchObject({ type: 'error', code: 'unauthorized' })
    const refused = async (body: unknown, message: RegExp) => {
      const response = await pushRequest(server, '', 'POST', user, body)
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringMatching(message) })
    }
    // Without insecureLoopback, only https: endpoints.
    await refused(json, /https/)
    const https = (path: string) => `https://push.example.test/${path}`
    await refused({ ...json, endpoint: 'ftp://push.example.test/x' }, /https/)
    await refused({ ...json, endpoint: `https://user:pw@push.example.test/x` }, /credentials/)
    // Push services have host names: an address or localhost would aim the server at its own network.
    for (const endpoint of ['https://10.0.0.5/push/x', 'https://127.0.0.1:8443/x', 'https://[::1]/x', 'https://localhost/x', 'https://intranet/x']) await refused({ ...json, endpoint }, /host name/)
    await refused({ ...json, endpoint: https('x'.repeat(1100)) }, /1024/)
    await refused({ endpoint: https('a'), keys: { p256dh: 'AAAA', auth: json.keys.auth } }, /p256dh/)
    await refused({ endpoint: https('a'), keys: { p256dh: json.keys.p256dh, auth: 'short' } }, /auth/)
    await refused({ endpoint: https('a') }, /keys/)
    await refused('[1,2]', /JSON object/)
    await refused('{not json', /JSON object/)
    const tooLarge = await pushRequest(server, '', 'POST', user, { ...json, pad: 'x'.repeat(70_000) })
    expect(tooLarge.status).toBe(413)
    // Mutes: a valid room and a boolean.
    expect((await pushRequest(server, '/mute', 'POST', user, { room: 'bad room!', muted: true })).status).toBe(400)
    expect((await pushRequest(server, '/mute', 'POST', user, { room: 'fine', muted: 'yes' })).status).toBe(400)
    expect((await pushRequest(server, '', 'DELETE', user, { endpoint: 42 })).status).toBe(400)
    // At most 2 (NUXT_CHAT_PUSH_MAX_SUBSCRIPTIONS): the oldest goes.
    for (const path of ['one', 'two', 'three']) {
      expect((await pushRequest(server, '', 'POST', user, { ...json, endpoint: https(path) })).status).toBe(201)
      await sleep(5)
    }
    expect(await pushRequest(server, '', 'DELETE', user, { endpoint: https('one') }).then(response => response.json())).toEqual({ removed: false })
    expect(await pushRequest(server, '', 'DELETE', user, { endpoint: https('two') }).then(response => response.json())).toEqual({ removed: true })
    // Someone else cannot end another person's subscription.
    expect(await pushRequest(server, '', 'DELETE', newUser('Mal'), { endpoint: https('three') }).then(response => response.json())).toEqual({ removed: false })
    expect(await pushRequest(server, '', 'DELETE', user, { endpoint: https('three') }).then(response => response.json())).toEqual({ removed: true })
    // The service worker, allowed the whole site.
    const worker = await fetch(server.url('/_chat/push/sw.js'))
    expect(worker.headers.get('service-worker-allowed')).toBe('/')
    expect(worker.headers.get('content-type')).toContain('javascript')
    expect(await worker.text()).toContain('showNotification')
    // Nothing broke: the server still answers.
    expect((await fetch(server.url('/_chat/push/key'))).status).toBe(200)
  })
})

// srvx (Nitro 3) turns its graceful shutdown off when CI or TEST is set, as in this run: a production server has it.
const STOPPING_ENV = { ...PUSH_ENV, CI: '', TEST: '' }

describe('a shared push batch outlives the instance that opened it (two PostgreSQL instances on Redis)', () => {
  let pair: Awaited<ReturnType<ReturnType<typeof serverPairs>[1][1]>>
  let receiver: PushReceiver
  const opened: ChatSocketV2[] = []
  const queued = (uid: string) => execFileSync('redis-cli', ['EXISTS', `${pair.env.NUXT_CHAT_REDIS_CHANNEL}:push:queue:${uid}`]).toString().trim() === '1'

  beforeAll(async () => {
    receiver = await startPushReceiver(keys.publicKey, SUBJECT)
    pair = await serverPairs('nuxt_chat_push_owner', STOPPING_ENV)[1]![1]()
  })
  afterAll(async () => {
    for (const socket of opened) await socket.close()
    await pair?.stop()
    await receiver?.close()
  })
  // Each test stops the first instance: the next starts it again.
  afterEach(async () => {
    const child = pair.servers[0].process()
    if (!child || child.exitCode !== null || child.signalCode !== null) await pair.servers[0].start()
  })

  /** Ann's direct message to Bob (away, subscribed on `subscribedOn`) stored on `storedOn`, once its echo is back. */
  async function directMessage(storedOn: TestServer, subscribedOn: TestServer, text: string) {
    const ann = newUser('Ann')
    const bob = newUser('Bob')
    const subscription = receiver.subscribe()
    expect((await pushRequest(subscribedOn, '', 'POST', bob, subscription.json)).status).toBe(201)
    const { body } = await callServer<{ id: string }>(storedOn, { call: 'directRoom', userId: ann.id, otherId: bob.id })
    const socket = await ChatSocketV2.openV2(storedOn.wsUrl(''), {}, { headers: { cookie: cookieOf(ann) } })
    opened.push(socket)
    expect(await socket.join(body.id)).toMatchObject({ type: 'caught_up' })
    const cid = `c-${randomUUID().slice(0, 8)}`
    socket.send({ type: 'message', room: body.id, message: text, cid })
    await socket.waitFor(frame => frame.type === 'message' && frame.cid === cid, 'its echo')
    return { room: body.id, subscription, bob }
  }

  /** The same, stored on the first instance, once it is in the shared batch. */
  async function batchedOnA(text: string) {
    const sent = await directMessage(pair.servers[0], pair.servers[1], text)
    await until(() => queued(sent.bob.id), 'the batch in Redis', 5000)
    return sent
  }

  it('killed within its window: the other instance pushes the batch once the owner key ends, without a further message', async () => {
    const [a] = pair.servers
    const { room, subscription } = await batchedOnA('before the crash')
    await a.stop('SIGKILL')
    // The owner key ends 2 × window + 5 s after the batch opened; the other instance looks every second.
    const [push] = await until(() => receiver.pushesOf(subscription).length > 0 && receiver.pushesOf(subscription), 'the orphaned batch', 2 * WINDOW + 5000 + 4000)
    expect(push!.payload).toMatchObject({ title: 'Ann', body: 'before the crash', room, count: 1 })
    await sleep(WINDOW * 1.5)
    expect(receiver.pushesOf(subscription)).toHaveLength(1)
  })

  it('stopped within its window: it hands the batch over, and the other instance pushes it within about a second', async () => {
    const [a] = pair.servers
    const { room, subscription } = await batchedOnA('before the deploy')
    const stopped = Date.now()
    await a.stop('SIGTERM')
    const [push] = await until(() => receiver.pushesOf(subscription).length > 0 && receiver.pushesOf(subscription), 'the handed-over batch', 5000)
    expect(push!.at - stopped).toBeLessThan(3000)
    expect(push!.payload).toMatchObject({ title: 'Ann', body: 'before the deploy', room, count: 1 })
  })

  it('one instance without Redis, stopped within a window: its batch in memory goes out as it stops', async () => {
    const server = await startServer({ env: { ...STOPPING_ENV, NUXT_CHAT_PUSH_WINDOW: '10000' } })
    const { subscription } = await directMessage(server, server, 'before the restart')
    // Who follows the message is read from the store after the echo: the batch opens within this.
    await sleep(300)
    await server.stop('SIGTERM')
    // Long before its 10 s window: pushed on the way out, not lost with the process.
    expect(receiver.pushesOf(subscription).map(push => push.payload)).toMatchObject([{ title: 'Ann', body: 'before the restart', count: 1 }])
  })

  it('one instance whose Redis is down, stopped within a window: the batch it kept in memory goes out as it stops', async () => {
    const redis = await ownRedis()
    const server = await startServer({ env: { ...STOPPING_ENV, NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_PUSH_WINDOW: '10000' } })
    try {
      await redis.stop()
      const { subscription } = await directMessage(server, server, 'while Redis was down')
      await sleep(300)
      await server.stop('SIGTERM')
      // Before, the stop handed it to Redis (which did not answer) and dropped it.
      expect(receiver.pushesOf(subscription).map(push => push.payload)).toMatchObject([{ title: 'Ann', body: 'while Redis was down', count: 1 }])
    }
    finally {
      await server.stop()
      await redis.stop()
    }
  })

  it('a push service that never answers holds a stop for about 2 s, not for its 10 s timeout', async () => {
    const sockets = new Set<Socket>()
    const silent = createTcpServer(socket => sockets.add(socket))
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
    const server = await startServer({ env: { ...STOPPING_ENV, NUXT_CHAT_PUSH_WINDOW: '10000' } })
    try {
      const ann = newUser('Ann')
      const bob = newUser('Bob')
      const subscription = { ...receiver.subscribe().json, endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/push/silent` }
      expect((await pushRequest(server, '', 'POST', bob, subscription)).status).toBe(201)
      const { body } = await callServer<{ id: string }>(server, { call: 'directRoom', userId: ann.id, otherId: bob.id })
      const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: { cookie: cookieOf(ann) } })
      opened.push(socket)
      expect(await socket.join(body.id)).toMatchObject({ type: 'caught_up' })
      socket.send({ type: 'message', room: body.id, message: 'into the void', cid: 'c-silent' })
      await socket.waitFor(frame => frame.type === 'message' && frame.cid === 'c-silent', 'its echo')
      await sleep(300)
      const stopping = Date.now()
      await server.stop('SIGTERM')
      // The test's stop kills a server still running after 5 s: before, the stop waited for the push (10 s) and was killed.
      expect(Date.now() - stopping).toBeLessThan(4000)
      expect(sockets.size).toBe(1)
      expect(server.logs()).toMatch(/the server stopped before every notification it held was sent/)
    }
    finally {
      await server.stop()
      for (const socket of sockets) socket.destroy()
      await new Promise(resolve => silent.close(resolve))
    }
  })
})
