/**
 * Rooms with members (issue 23, docs/PROTOCOL.md "Rooms and members"), against two built
 * PostgreSQL instances (a database of this file's own) on Redis (a channel of this file's own),
 * with real sockets: private rooms refused to non-members on every transport without telling
 * anything, direct rooms opened from both sides, bans ending connections on both instances
 * within a second and dropping the room from the lists, mutes, the role rules and the
 * `chat:action` hook. Users are the fixture's `user-…` toy sessions.
 */
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection, type ChatTransport } from '../../src/runtime/app/chatConnection'
import { installEventSource } from '../utils/chaos'
import { ChatSocket, ChatSocketV2, ChatStream, postMessage, signInByName, until, untilOnOneBus, upgradeStatus } from '../utils/clients'
import { callServer, ownPostgresDatabase, REDIS_URL, startServer, type TestServer } from '../utils/server'

installEventSource()

const tag = randomUUID().slice(0, 8)
const newRoom = (prefix = 'team') => `${prefix}-${randomUUID().slice(0, 8)}`
let users = 0
/** A signed-in user of this file's own: their id and the cookie that makes them (named `name`, else their id). */
const newUser = (prefix = 'user', name?: string) => {
  const id = `${prefix}-${tag}-${++users}`
  return { id, headers: { cookie: `session=${id}${name ? `.${name}` : ''}` } }
}
type User = ReturnType<typeof newUser>
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const wsBase = (server: TestServer) => server.wsUrl('')

/** Status and body of a plain GET (the admission probe of `/_ws`, an SSE stream, a history page). */
async function get(url: string, user?: User) {
  const response = await fetch(url, { headers: { 'sec-fetch-site': 'same-origin', ...user?.headers } })
  return { status: response.status, body: await response.text() }
}

describe('rooms with members, two PostgreSQL instances on Redis', () => {
  let a: TestServer
  let b: TestServer
  const database = ownPostgresDatabase('nuxt_chat_members')
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }
  const socket = async (server: TestServer, params: Record<string, string>, user?: User) => track(await ChatSocket.open(wsBase(server), params, user ? { headers: user.headers } : {}))

  beforeAll(async () => {
    const env = { ...database.env, NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_REDIS_CHANNEL: `nuxt-chat-members-${tag}`, NUXT_CHAT_RATE_LIMIT: 'false' }
    ;[a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
  })
  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await Promise.all([a?.stop(), b?.stop()])
    database.drop()
  })

  /** A room made by server code on instance `a`, owned by a new user, with new members. */
  async function roomWith(visibility: 'public' | 'private', memberCount = 1) {
    const owner = newUser()
    const members = Array.from({ length: memberCount }, () => newUser())
    const room = newRoom()
    const created = await callServer(a, { call: 'createRoom', input: { id: room, title: 'Team', visibility, owner: owner.id, members: members.map(member => member.id) } })
    expect(created.status).toBe(200)
    return { room, owner, members }
  }

  it('a private room refuses non-members on WebSocket, SSE, POST and history, with the answer of a room that does not exist', async () => {
    const { room, owner, members: [member] } = await roomWith('private')
    const outsider = newUser()
    const nowhere = 'dm:AAAAAAAAAAAAAAAAAAAAAA'
    // Members get in, on either instance.
    const ownSocket = await socket(a, { room }, owner)
    await ownSocket.waitFor(frame => frame.event === 'welcome')
    const memberStream = track(await ChatStream.open(httpBase(b), { room }, member!.headers))
    expect(memberStream.status).toBe(200)
    ownSocket.send({ type: 'message', message: 'members only', cid: 'c-1' })
    await memberStream.waitFor(frame => frame.type === 'message' && frame.message === 'members only')

    for (const server of [a, b]) {
      for (const [who, user] of [['outsider', outsider], ['guest', undefined]] as const) {
        const answers = async (name: string) => ({
          upgrade: await upgradeStatus(server.wsUrl(`/_ws?room=${encodeURIComponent(name)}`), user ? { headers: user.headers } : {}),
          probe: await get(server.url(`/_ws?room=${encodeURIComponent(name)}`), user),
          sse: await get(server.url(`/api/sse?room=${encodeURIComponent(name)}`), user),
          history: await get(server.url(`/api/sse?room=${encodeURIComponent(name)}&before=100`), user),
          post: await postMessage(httpBase(server), { message: 'let me in', cid: 'c-x' }, { room: name }, user?.headers).then(({ status, text }) => ({ status, body: text })),
          read: await postMessage(httpBase(server), { type: 'read' }, { room: name }, user?.headers).then(({ status, text }) => ({ status, body: text })),
        })
        const refused = await answers(room)
        expect(refused.upgrade, `${who}: upgrade`).toBe(403)
        for (const key of ['probe', 'sse', 'history', 'post', 'read'] as const) {
          expect(refused[key].status, `${who}: ${key}`).toBe(403)
          expect(JSON.parse(refused[key].body), `${who}: ${key}`).toEqual({ type: 'error', code: 'forbidden', user: 'server', message: 'Not allowed in this room' })
        }
        // Nothing tells a private room from one that does not exist.
        expect(await answers(nowhere), who).toEqual(refused)
      }
    }
    // Nothing was stored by the refused: the member's stream saw only the owner's message.
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(memberStream.messages.map(frame => frame.message)).toEqual(['members only'])
  })

  it('a direct room opened from both sides, on two instances, is one room of exactly those two', async () => {
    const alice = newUser()
    const bob = newUser()
    const carol = newUser()
    // Bob's rooms list, open before the room exists, shows it once Alice opens it.
    const bobsList = await socket(b, { rooms: '' }, bob)
    await bobsList.waitFor(frame => frame.type === 'rooms')
    const fromAlice = await socket(a, { dm: bob.id }, alice)
    const fromBob = await socket(b, { dm: alice.id }, bob)
    const room = String((await fromAlice.waitFor(frame => frame.event === 'welcome')).room)
    expect(room).toMatch(/^dm:[\w-]{22}$/)
    await bobsList.waitFor(frame => frame.type === 'room' && frame.room === room && !frame.removed, 'the direct room in Bob\'s list')
    expect((await fromBob.waitFor(frame => frame.event === 'welcome')).room).toBe(room)
    fromAlice.send({ type: 'message', message: 'hi Bob', cid: 'c-1' })
    await fromBob.waitFor(frame => frame.type === 'message' && frame.message === 'hi Bob')
    const server = await callServer(b, { call: 'directRoom', userId: bob.id, otherId: alice.id })
    expect(server.body).toMatchObject({ id: room, kind: 'dm', visibility: 'private' })
    expect(((await callServer(a, { call: 'members', room })).body as unknown as { uid: string }[]).map(member => member.uid).sort()).toEqual([alice.id, bob.id].sort())
    // A third person cannot read it by its name, nor moderate their way in.
    expect(await upgradeStatus(a.wsUrl(`/_ws?room=${encodeURIComponent(room)}`), { headers: carol.headers })).toBe(403)
    fromAlice.send({ type: 'invite', user: carol.id })
    expect(await fromAlice.waitFor(frame => frame.type === 'error')).toMatchObject({ code: 'forbidden' })
    // Guests have no direct rooms; nobody has one with themselves.
    expect((await get(a.url(`/_ws?dm=${bob.id}`))).status).toBe(401)
    expect(JSON.parse((await get(a.url(`/_ws?dm=${alice.id}`), alice)).body)).toMatchObject({ code: 'bad_request' })
  })

  it('a direct room is its two people\'s on PostgreSQL and both instances: a third member\'s row admits nowhere; a membership `forget` took comes back when either opens it', async () => {
    const [alice, bob, eve] = [newUser(), newUser(), newUser()]
    const fromAlice = await socket(a, { dm: bob.id }, alice)
    const room = String((await fromAlice.waitFor(frame => frame.event === 'welcome')).room)
    // Eve's row, as a server from before the rules (or a hand-written one) left it.
    execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database.name, '-tAc', `INSERT INTO chat_members (room, uid, role, joined_at) VALUES ('${room}', '${eve.id}', 'member', ${Date.now()}); INSERT INTO chat_reads (uid, room, id, ts) VALUES ('${eve.id}', '${room}', 0, ${Date.now()})`], { stdio: 'pipe' })
    for (const server of [a, b]) {
      expect(await upgradeStatus(server.wsUrl(`/_ws?room=${encodeURIComponent(room)}`), { headers: eve.headers })).toBe(403)
      expect((await postMessage(httpBase(server), { message: 'let me in', cid: 'eve-1' }, { room }, eve.headers)).status).toBe(403)
    }
    const evesList = await socket(b, { rooms: '' }, eve)
    expect(((await evesList.waitFor(frame => frame.type === 'rooms')).rooms as { room: string }[]).map(entry => entry.room)).not.toContain(room)

    // Bob's membership taken by server code on one instance; his list on the other drops the room, his join is refused.
    const bobsList = await socket(b, { rooms: '' }, bob)
    expect(((await bobsList.waitFor(frame => frame.type === 'rooms')).rooms as { room: string }[]).map(entry => entry.room)).toContain(room)
    expect((await callServer(a, { call: 'forget', room, userId: bob.id })).status).toBe(200)
    await bobsList.waitFor(frame => frame.type === 'room' && frame.room === room && frame.removed === true, 'the room off Bob\'s list')
    expect(await upgradeStatus(b.wsUrl(`/_ws?room=${encodeURIComponent(room)}`), { headers: bob.headers })).toBe(403)
    // Alice opens it again on instance a: Bob is back, on his list on instance b, and in by its id.
    const shown = bobsList.frames.length
    const again = await socket(a, { dm: bob.id }, alice)
    expect((await again.waitFor(frame => frame.event === 'welcome')).room).toBe(room)
    await until(() => bobsList.frames.slice(shown).find(frame => frame.type === 'room' && frame.room === room && !frame.removed), 'the room back on Bob\'s list')
    const fromBob = await socket(b, { room }, bob)
    expect((await fromBob.waitFor(frame => frame.event === 'welcome')).room).toBe(room)
    expect(((await callServer(b, { call: 'members', room })).body as unknown as { uid: string }[]).map(member => member.uid).sort()).toEqual([alice.id, bob.id, eve.id].sort())
  })

  it('a rooms list shows a room\'s title, kind and visibility, a new title within a second on the other instance, and a direct room titled with the other person\'s name', async () => {
    const alice = newUser('user', 'Alice')
    const bob = newUser('user', 'Bob')
    const bobsList = await socket(b, { rooms: '' }, bob)
    await bobsList.waitFor(frame => frame.type === 'rooms')
    const entryIn = (list: ChatSocket, room: string) => list.frames.findLast(frame => (frame.type === 'room' && frame.room === room) || frame.type === 'rooms') as Record<string, unknown> | undefined
    const listed = (list: ChatSocket, room: string, match: (entry: Record<string, unknown>) => boolean, what: string) => until(() => {
      const entry = entryIn(list, room)
      return entry?.type === 'room' && match(entry) && entry
    }, what, 5000)

    const created = (await callServer(a, { call: 'createRoom', input: { title: 'Plans', visibility: 'private', owner: alice.id, members: [bob.id] } })).body
    const room = String(created.id)
    expect(await listed(bobsList, room, entry => entry.title === 'Plans', 'the new room in Bob\'s list on B')).toMatchObject({ title: 'Plans', kind: 'room', visibility: 'private' })
    const renamedAt = performance.now()
    expect((await callServer(a, { call: 'updateRoom', room, fields: { title: 'Plans for May' } })).status).toBe(200)
    await listed(bobsList, room, entry => entry.title === 'Plans for May', 'the new title in Bob\'s list on B')
    expect(performance.now() - renamedAt).toBeLessThan(1000)

    // A direct room: titled with the other person's name once the server has seen them join a room, their id before.
    const alicesList = await socket(a, { rooms: '' }, alice)
    await alicesList.waitFor(frame => frame.type === 'rooms')
    const fromAlice = await socket(a, { dm: bob.id }, alice)
    const dm = String((await fromAlice.waitFor(frame => frame.event === 'welcome')).room)
    expect(await listed(alicesList, dm, () => true, 'the direct room in Alice\'s list')).toMatchObject({ kind: 'dm', visibility: 'private', with: bob.id, title: bob.id })
    fromAlice.send({ type: 'message', message: 'hi Bob', cid: 'dm-1' })
    expect(await listed(bobsList, dm, entry => entry.title === 'Alice', 'Alice\'s name on the direct room in Bob\'s list')).toMatchObject({ kind: 'dm', with: alice.id })
    const fromBob = await socket(b, { dm: alice.id }, bob)
    await fromBob.waitFor(frame => frame.event === 'welcome')
    fromBob.send({ type: 'message', message: 'hi Alice', cid: 'dm-2' })
    await listed(alicesList, dm, entry => entry.title === 'Bob', 'Bob\'s name on the direct room in Alice\'s list, once he joined it')
    // A room without a record (every version 1 room) has none of these fields.
    const plain = newRoom('plain')
    const inPlain = await socket(a, { room: plain }, alice)
    await inPlain.waitFor(frame => frame.type === 'presence')
    inPlain.send({ type: 'message', message: 'plain', cid: 'p-1' })
    const entry = await listed(alicesList, plain, entry => entry.unread !== undefined, 'the plain room in Alice\'s list')
    expect(Object.keys(entry).filter(key => ['title', 'kind', 'visibility', 'with'].includes(key))).toEqual([])
  })

  it.each(['ws', 'sse'] as ChatTransport[])('the real client opens a direct room by the other person\'s id (%s), and both sides send in it', async (transport) => {
    const alice = newUser()
    const bob = newUser()
    const restore = signInByName({ alice: alice.headers.cookie, bob: bob.headers.cookie })
    const client = (server: TestServer, name: string, dm: string) => {
      const connection = createChatConnection({
        room: 'chat', dm, name, transport, route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 50, maxLength: 2000,
        autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'),
      })
      track(connection)
      connection.open()
      return connection
    }
    try {
      const fromAlice = client(a, 'alice', bob.id)
      const fromBob = client(b, 'bob', alice.id)
      await until(() => fromAlice.me.value && fromBob.me.value, 'both welcomed').catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify([fromAlice.status.value, fromAlice.error.value, fromBob.status.value, fromBob.error.value])}`)
      })
      fromAlice.send('hello from Alice')
      await until(() => fromBob.messages.value.some(message => message.message === 'hello from Alice'), 'Bob got it')
      fromBob.send('hi Alice')
      await until(() => fromAlice.messages.value.some(message => message.message === 'hi Alice' && message.id), 'Alice got the answer')
      const rooms = new Set([...fromAlice.messages.value, ...fromBob.messages.value].map(message => message.room))
      expect([...rooms]).toEqual([(await callServer(a, { call: 'directRoom', userId: alice.id, otherId: bob.id })).body.id])
    }
    finally {
      restore()
    }
  })

  it('version 2: a join of a private room is refused to a non-member as a room that does not exist; a ban ends the subscription on the other instance within a second, the connection stays', async () => {
    const { room, owner, members: [member] } = await roomWith('private')
    const outsider = newUser()
    const open = async (server: TestServer, user: User) => track(await ChatSocketV2.openV2(wsBase(server), {}, { headers: user.headers }))
    const [stranger, ownerSocket, memberSocket] = await Promise.all([open(a, outsider), open(a, owner), open(b, member!)])
    const refused = await stranger.join(room)
    const nowhere = await stranger.join('dm:AAAAAAAAAAAAAAAAAAAAAA')
    expect(refused).toMatchObject({ type: 'join_refused', room, code: 'forbidden' })
    expect(refused.message).toBe(nowhere.message)
    expect(await ownerSocket.join(room)).toMatchObject({ type: 'caught_up', room })
    expect(await memberSocket.join(room)).toMatchObject({ type: 'caught_up', room })
    const other = newRoom('open')
    expect(await memberSocket.join(other)).toMatchObject({ type: 'caught_up', room: other })

    const started = performance.now()
    expect((await callServer(a, { call: 'ban', room, userId: member!.id })).status).toBe(200)
    const left = await memberSocket.waitFor(frame => frame.type === 'left' && frame.room === room, 'the banned room left', 5000)
    expect(performance.now() - started).toBeLessThan(1000)
    expect(left).toMatchObject({ reason: 'banned' })
    // The connection and its other room stay; the room stays shut.
    expect(memberSocket.closed).toBeUndefined()
    memberSocket.send({ type: 'message', room: other, message: 'still here', cid: 'v2-still' })
    await memberSocket.waitFor(frame => frame.type === 'message' && frame.room === other && frame.message === 'still here', 'the other room')
    expect(await memberSocket.join(room)).toMatchObject({ type: 'join_refused', code: 'forbidden' })
  })

  it('a ban ends the member\'s connections on both instances within a second, their list drops the room, and they stay out', async () => {
    const { room, owner, members: [member] } = await roomWith('public')
    const ownSocket = await socket(a, { room }, owner)
    await ownSocket.waitFor(frame => frame.event === 'welcome')
    const onA = await socket(a, { room }, member)
    const onB = await socket(b, { room }, member)
    const streamOnB = track(await ChatStream.open(httpBase(b), { room }, member!.headers))
    await Promise.all([onA, onB, streamOnB].map(reader => reader.waitFor(frame => frame.type === 'presence')))
    const list = await socket(b, { rooms: '' }, member)
    await until(() => list.frames.some(frame => frame.type === 'rooms' && (frame.rooms as { room: string }[]).some(entry => entry.room === room)), 'the room in the member\'s list')

    const started = performance.now()
    ownSocket.send({ type: 'ban', user: member!.id })
    expect(await ownSocket.waitFor(frame => frame.type === 'member')).toEqual({ type: 'member', room, uid: member!.id, role: 'member', banned: true, removed: true })
    await until(() => onA.closed && onB.closed, 'both sockets closed', 5000)
    await streamOnB.done
    const elapsed = performance.now() - started
    console.info(`ban → connections on both instances closed in ${elapsed.toFixed(0)} ms`)
    expect(elapsed).toBeLessThan(1000)
    expect(onA.closed).toEqual({ code: 4003, reason: 'Banned from the room' })
    expect(onB.closed).toEqual({ code: 4003, reason: 'Banned from the room' })
    await list.waitFor(frame => frame.type === 'room' && frame.room === room && frame.removed === true, 'the room dropped from the list')

    // Out everywhere: the upgrade, a POST, a new list.
    for (const server of [a, b]) expect(await upgradeStatus(server.wsUrl(`/_ws?room=${room}`), { headers: member!.headers })).toBe(403)
    expect((await postMessage(httpBase(b), { message: 'back?' }, { room }, member!.headers)).status).toBe(403)
    const again = await socket(a, { rooms: '' }, member)
    const rooms = await again.waitFor(frame => frame.type === 'rooms')
    expect((rooms.rooms as { room: string }[]).map(entry => entry.room)).not.toContain(room)
    // Unbanned, they may come back to the public room.
    expect((await callServer(b, { call: 'unban', room, userId: member!.id })).body).toEqual({ type: 'member', room, uid: member!.id })
    // A hears of it over the bus a moment later.
    await expect.poll(() => upgradeStatus(a.wsUrl(`/_ws?room=${room}`), { headers: member!.headers }), { timeout: 5000 }).toBe(101)
  })

  it('speaking in a public room, with a record or without (every version 1 room), makes a signed-in person its member once: the room joins their lists on both instances; a guest never', async () => {
    const { room } = await roomWith('public', 0)
    const plain = newRoom('plain')
    const speaker = newUser()
    const membersOf = async (name: string) => ((await callServer(a, { call: 'members', room: name })).body as unknown as { uid: string, role: string }[]).map(member => [member.uid, member.role])
    // Their lists: version 1's on A, version 2's on B.
    const listOnA = await socket(a, { rooms: '' }, speaker)
    await listOnA.waitFor(frame => frame.type === 'rooms')
    const listOnB = track(await ChatSocketV2.openV2(wsBase(b), {}, { headers: speaker.headers }))
    listOnB.send({ type: 'rooms' })
    await listOnB.waitFor(frame => frame.type === 'rooms')
    const listed = (list: ChatSocket | ChatSocketV2, name: string) => list.frames.some(frame => frame.type === 'room' && frame.room === name && !frame.removed)
    for (const name of [room, plain]) {
      expect(await membersOf(name)).not.toContainEqual([speaker.id, 'member'])
      // A POST: no connection in the room, nothing joined; the message alone makes the membership.
      expect((await postMessage(httpBase(a), { message: 'hello', cid: `sp-${name}` }, { room: name }, speaker.headers)).status).toBe(200)
      await until(() => listed(listOnA, name) && listed(listOnB, name), `${name} on both lists`, 5000)
      expect(await membersOf(name)).toContainEqual([speaker.id, 'member'])
      expect(listOnB.frames.findLast(frame => frame.type === 'room' && frame.room === name)).toMatchObject({ read: 1, unread: 0, last: { message: 'hello', uid: speaker.id } })
    }
    // The room with a record shows the role; the one without shows none of a record's fields.
    expect(listOnA.frames.findLast(frame => frame.type === 'room' && frame.room === room)).toMatchObject({ role: 'member', kind: 'room' })
    expect(listOnA.frames.findLast(frame => frame.type === 'room' && frame.room === plain)).not.toHaveProperty('role')
    // Once: more messages make no second membership.
    const speakerSocket = await socket(b, { room }, speaker)
    await speakerSocket.waitFor(frame => frame.type === 'presence')
    speakerSocket.send({ type: 'message', message: 'again', cid: 'sp-again' })
    await speakerSocket.waitFor(frame => frame.type === 'message' && frame.message === 'again')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(speakerSocket.frames.filter(frame => frame.type === 'member')).toEqual([])
    // A guest speaks and stays none.
    const guest = await socket(a, { room: plain, name: 'passer-by' })
    guest.send({ type: 'message', message: 'hi', cid: 'g-1' })
    await guest.waitFor(frame => frame.type === 'message' && frame.message === 'hi')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect((await membersOf(plain)).filter(([uid]) => String(uid).startsWith('guest:'))).toEqual([])
    expect(await membersOf(plain)).toEqual([[speaker.id, 'member']])
  })

  it('a member leaves a room for good with `remove` of themselves (version 2 and 1): their subscriptions end, their lists on both instances drop it, a `leave` alone keeps it', async () => {
    const { room, members: [member] } = await roomWith('public', 1)
    const plain = newRoom('plain')
    const listOnA = await socket(a, { rooms: '' }, member)
    await listOnA.waitFor(frame => frame.type === 'rooms')
    const onB = track(await ChatSocketV2.openV2(wsBase(b), {}, { headers: member!.headers }))
    for (const name of [room, plain]) expect(await onB.join(name)).toMatchObject({ type: 'caught_up', room: name })
    const listed = (name: string) => listOnA.frames.some(frame => (frame.type === 'rooms' && (frame.rooms as unknown as { room: string }[]).some(entry => entry.room === name)) || (frame.type === 'room' && frame.room === name && !frame.removed))
    await until(() => listed(room) && listed(plain), 'both rooms on the list')
    // A version 2 `leave` is no more than an unsubscription: the room stays on the list.
    onB.send({ type: 'leave', room: plain, ref: 'l-1' })
    await onB.waitFor(frame => frame.type === 'left' && frame.room === plain && frame.reason === 'left')
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(listOnA.frames.some(frame => frame.type === 'room' && frame.room === plain && frame.removed)).toBe(false)
    // Leaving for good, on B: the subscription ends there, the list on A drops the room.
    onB.send({ type: 'remove', room, user: member!.id, ref: 'bye' })
    expect(await onB.waitFor(frame => frame.ref === 'bye')).toEqual({ type: 'ack', ref: 'bye', room })
    expect(await onB.waitFor(frame => frame.type === 'left' && frame.room === room, 'left', 5000)).toMatchObject({ reason: 'removed' })
    await listOnA.waitFor(frame => frame.type === 'room' && frame.room === room && frame.removed === true, 'the room dropped from the list on A', 5000)
    expect(((await callServer(a, { call: 'members', room })).body as unknown as { uid: string }[]).map(entry => entry.uid)).not.toContain(member!.id)
    // The same on version 1, in the room without a record; a public room lets them back in.
    const v1 = await socket(a, { room: plain }, member)
    await v1.waitFor(frame => frame.type === 'presence')
    v1.send({ type: 'remove', user: member!.id })
    // Its own connection to the room ends like every other of theirs (the answer goes down with it).
    await until(() => v1.closed, 'the socket closed')
    expect(v1.closed).toEqual({ code: 4003, reason: 'Removed from the room' })
    await listOnA.waitFor(frame => frame.type === 'room' && frame.room === plain && frame.removed === true, 'the plain room dropped from the list')
    expect(await onB.join(room)).toMatchObject({ type: 'caught_up', room })
  })

  it('a muted member reads but cannot send, on either instance, until unmuted', async () => {
    const { room, owner, members: [member] } = await roomWith('private')
    const ownSocket = await socket(a, { room }, owner)
    const memberSocket = await socket(b, { room }, member)
    await memberSocket.waitFor(frame => frame.type === 'presence')
    ownSocket.send({ type: 'mute', user: member!.id })
    const muted = await ownSocket.waitFor(frame => frame.type === 'member')
    expect(muted).toMatchObject({ uid: member!.id, role: 'member', mutedUntil: 8_640_000_000_000_000 })
    expect(muted).not.toHaveProperty('removed')

    // B hears of the mute over the bus a moment after A answered: once a POST there is refused, so is the socket.
    await expect.poll(async () => (await postMessage(httpBase(b), { message: 'probe' }, { room }, member!.headers)).status, { timeout: 5000 }).toBe(403)
    memberSocket.send({ type: 'message', message: 'can I?', cid: 'm-1' })
    expect(await memberSocket.waitFor(frame => frame.type === 'error')).toMatchObject({ code: 'muted', cid: 'm-1', mutedUntil: 8_640_000_000_000_000 })
    const post = await postMessage(httpBase(a), { message: 'by POST?' }, { room }, member!.headers)
    expect(post.status).toBe(403)
    expect(post.json).toMatchObject({ code: 'muted' })
    // Still reading: live, and history.
    ownSocket.send({ type: 'message', message: 'you can read this', cid: 'o-1' })
    await memberSocket.waitFor(frame => frame.type === 'message' && frame.message === 'you can read this')
    expect((await get(a.url(`/api/sse?room=${room}&before=100`), member)).status).toBe(200)
    expect(memberSocket.closed).toBeUndefined()

    // Unmuted by server code on the other instance: the next message passes at once.
    expect((await callServer(b, { call: 'mute', room, userId: member!.id, until: 0 })).body).toEqual({ type: 'member', room, uid: member!.id, role: 'member' })
    memberSocket.send({ type: 'message', message: 'thanks', cid: 'm-2' })
    await ownSocket.waitFor(frame => frame.type === 'message' && frame.message === 'thanks')
    expect(ownSocket.messages.map(frame => frame.message)).not.toContain('can I?')
  })

  it('a person learns their role and mute on joining, and live from the other instance within a second; nobody else does; the rooms list carries the role', async () => {
    const { room, owner, members: [member, bystander] } = await roomWith('public', 2)
    const welcomeOf = (reader: ChatSocket | ChatStream) => reader.waitFor(frame => frame.event === 'welcome')
    const joinedOf = async (reader: ChatSocketV2, name: string) => {
      const answer = await reader.join(name)
      expect(answer, `join ${name}`).toMatchObject({ type: 'caught_up' })
      return reader.frames.findLast(frame => frame.type === 'joined' && frame.room === name)!
    }
    const openV2 = async (server: TestServer, user: User) => track(await ChatSocketV2.openV2(wsBase(server), {}, { headers: user.headers }))

    // On joining: version 1's welcome (WebSocket, SSE) and version 2's joined carry the role.
    const ownSocket = await socket(a, { room }, owner)
    expect(await welcomeOf(ownSocket)).toMatchObject({ role: 'owner' })
    expect(await joinedOf(await openV2(a, owner), room)).toMatchObject({ role: 'owner' })
    const memberStream = track(await ChatStream.open(httpBase(b), { room }, member!.headers))
    expect(await welcomeOf(memberStream)).toMatchObject({ role: 'member' })
    // No membership: a guest, a public room without a record; no mute: no mutedUntil.
    expect(await welcomeOf(await socket(a, { room, name: 'visitor' }))).not.toHaveProperty('role')
    const plain = newRoom('plain')
    expect(await welcomeOf(await socket(a, { room: plain }, owner))).not.toHaveProperty('role')
    expect(await joinedOf(await openV2(b, member!), plain)).not.toHaveProperty('role')

    // The member on B: a version 1 socket, a version 2 one, the real client (its own and on the tab's shared socket), and their rooms list.
    const memberSocket = await socket(b, { room }, member)
    expect(await welcomeOf(memberSocket)).toMatchObject({ role: 'member' })
    expect(await welcomeOf(memberSocket)).not.toHaveProperty('mutedUntil')
    const memberV2 = await openV2(b, member!)
    expect(await joinedOf(memberV2, room)).toMatchObject({ role: 'member' })
    const bystanderSocket = await socket(b, { room }, bystander)
    await welcomeOf(bystanderSocket)
    const list = await socket(b, { rooms: '' }, member)
    const listedAs = (role: string) => (entry: Record<string, unknown>) => entry.room === room && entry.role === role && entry.kind === 'room'
    await until(() => list.frames.some(frame => frame.type === 'rooms' ? (frame.rooms as unknown as Record<string, unknown>[]).some(listedAs('member')) : frame.type === 'room' && listedAs('member')(frame)), 'the room in the member\'s list, with their role')
    const restore = signInByName({ member: member!.headers.cookie })
    const clients = [false, true].map(shareSocket => track(createChatConnection({
      room, name: 'member', transport: 'ws', route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 50, maxLength: 2000,
      autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: b.url('/'), guestKey: `role-${tag}-${shareSocket}-key-0123456789`, shareSocket,
    })))
    try {
      for (const client of clients) client.open()
      await until(() => clients.every(client => client.role.value === 'member'), 'both clients know they are members')
      expect(clients.map(client => client.mutedUntil.value)).toEqual([undefined, undefined])

      // Promoted on A: every connection of theirs to the room on B hears it within a second.
      const promotedAt = performance.now()
      ownSocket.send({ type: 'role', user: member!.id, role: 'moderator' })
      const promoted = { type: 'member', room, uid: member!.id, role: 'moderator' }
      expect(await ownSocket.waitFor(frame => frame.type === 'member')).toEqual(promoted)
      for (const reader of [memberSocket, memberStream, memberV2]) expect(await reader.waitFor(frame => frame.type === 'member', 'the promotion on B', 5000)).toEqual(promoted)
      await until(() => clients.every(client => client.role.value === 'moderator'), 'both clients know they moderate', 5000)
      const elapsed = performance.now() - promotedAt
      console.info(`role on A → the member's four connections on B told in ${elapsed.toFixed(0)} ms`)
      expect(elapsed).toBeLessThan(1000)
      await list.waitFor(frame => frame.type === 'room' && listedAs('moderator')(frame), 'the new role in the rooms list', 5000)

      // Muted by server code on A: the end of the mute reaches them on B; a rejoin says it too.
      const mutedUntil = Date.now() + 600_000
      expect((await callServer(a, { call: 'mute', room, userId: member!.id, until: mutedUntil })).status).toBe(200)
      expect(await memberSocket.waitFor(frame => frame.type === 'member' && frame.mutedUntil !== undefined, 'the mute on B', 5000)).toEqual({ ...promoted, mutedUntil })
      await until(() => clients.every(client => client.mutedUntil.value === mutedUntil), 'both clients know until when they are muted', 5000)
      expect(await joinedOf(await openV2(b, member!), room)).toMatchObject({ role: 'moderator', mutedUntil })

      // Nobody else in the room was told: not the bystander, not the owner (beyond the answer to their own command).
      await new Promise(resolve => setTimeout(resolve, 300))
      expect(bystanderSocket.frames.filter(frame => frame.type === 'member')).toEqual([])
      expect(ownSocket.frames.filter(frame => frame.type === 'member')).toEqual([promoted])
    }
    finally {
      restore()
    }
  })

  it('moderator actions are refused to plain members and guests; moderators act below their role; owners set roles', async () => {
    const { room, owner, members: [moderator, plain, other] } = await roomWith('public', 3)
    const guestSocket = await socket(a, { room, name: 'visitor' })
    const plainSocket = await socket(b, { room }, plain)
    const modSocket = await socket(a, { room }, moderator)
    await Promise.all([guestSocket, plainSocket, modSocket].map(reader => reader.waitFor(frame => frame.event === 'welcome')))
    const answer = async (reader: ChatSocket, command: Record<string, unknown>) => {
      const seen = reader.frames.length
      reader.send(command)
      return await until(() => reader.frames.slice(seen).find(frame => frame.type === 'member' || frame.type === 'error'), `an answer to ${command.type}`)
    }
    for (const command of [{ type: 'ban', user: other!.id }, { type: 'mute', user: other!.id }, { type: 'remove', user: other!.id }, { type: 'invite', user: newUser().id }, { type: 'role', user: other!.id, role: 'moderator' }]) {
      expect(await answer(plainSocket, command), `member: ${command.type}`).toMatchObject({ type: 'error', code: 'forbidden' })
      expect(await answer(guestSocket, command), `guest: ${command.type}`).toMatchObject({ type: 'error', code: 'forbidden' })
    }
    // Only owners set roles: a moderator cannot make one.
    expect((await callServer(b, { call: 'setRole', room, userId: moderator!.id, role: 'moderator' })).body).toMatchObject({ role: 'moderator' })
    // The person concerned hears of it on their own socket (on the other instance), before acting as one.
    await modSocket.waitFor(frame => frame.type === 'member' && frame.uid === moderator!.id && frame.role === 'moderator', 'the promotion on the moderator\'s socket')
    expect(await answer(modSocket, { type: 'role', user: other!.id, role: 'moderator' })).toMatchObject({ code: 'forbidden' })
    expect(await answer(modSocket, { type: 'ban', user: owner.id })).toMatchObject({ code: 'forbidden' })
    // A moderator deletes anyone's message in their room; a plain member cannot.
    const posted = await postMessage(httpBase(b), { message: 'off topic', cid: 'p-1' }, { room }, other!.headers)
    const id = posted.json!.id as number
    expect(await answer(plainSocket, { type: 'delete', target: id })).toMatchObject({ type: 'error', code: 'forbidden' })
    modSocket.send({ type: 'delete', target: id, cid: 'd-1' })
    await modSocket.waitFor(frame => frame.type === 'delete' && frame.target === id)
    expect(await answer(modSocket, { type: 'remove', user: plain!.id })).toEqual({ type: 'member', room, uid: plain!.id, removed: true })
    await until(() => plainSocket.closed, 'the removed member\'s socket closed')
    expect(plainSocket.closed).toEqual({ code: 4003, reason: 'Removed from the room' })
  })

  it('a public room made private keeps those who joined it (its members now) and closes the others\' connections on both instances: a guest, a person forgotten since', async () => {
    const { room, owner, members: [member] } = await roomWith('public')
    const [joiner, outsider] = [newUser(), newUser()]
    const outsiderOnA = await socket(a, { room }, outsider)
    const outsiderOnB = await socket(b, { room }, outsider)
    const memberOnB = await socket(b, { room }, member)
    const joinerOnA = await socket(a, { room }, joiner)
    const guest = await socket(a, { room })
    await Promise.all([outsiderOnA, outsiderOnB, memberOnB, joinerOnA, guest].map(reader => reader.waitFor(frame => frame.type === 'presence')))
    // Joining made the joiner and the outsider members; the app forgets the outsider (the connections stay).
    await until(async () => ((await callServer(a, { call: 'members', room })).body as unknown as { uid: string }[]).some(entry => entry.uid === outsider.id), 'the outsider a member by joining')
    expect((await callServer(a, { call: 'forget', room, userId: outsider.id })).status).toBe(200)
    expect((await callServer(b, { call: 'updateRoom', room, fields: { visibility: 'private', topic: 'members only now' } })).body).toMatchObject({ id: room, visibility: 'private', topic: 'members only now', createdBy: owner.id })
    await until(() => outsiderOnA.closed && outsiderOnB.closed && guest.closed, 'the non-members closed', 5000)
    for (const reader of [outsiderOnA, outsiderOnB, guest]) expect(reader.closed).toEqual({ code: 4003, reason: 'Not allowed in this room' })
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(memberOnB.closed).toBeUndefined()
    expect(joinerOnA.closed).toBeUndefined()
  })

  it('the chat:action hook can refuse a moderation command the roles allow', async () => {
    const { room, owner } = await roomWith('private')
    const ownSocket = await socket(a, { room }, owner)
    await ownSocket.waitFor(frame => frame.event === 'welcome')
    const protectedUser = newUser('user-protected')
    ownSocket.send({ type: 'invite', user: protectedUser.id })
    expect(await ownSocket.waitFor(frame => frame.type === 'error')).toMatchObject({ code: 'forbidden', message: 'this person is protected' })
    expect(await upgradeStatus(b.wsUrl(`/_ws?room=${room}`), { headers: protectedUser.headers })).toBe(403)
    // The server API passes the hook too.
    expect((await callServer(b, { call: 'addMember', room, userId: protectedUser.id })).status).toBe(403)
    // An invite the hook lets through lets the person in, on the other instance at once.
    const invited = newUser()
    ownSocket.send({ type: 'invite', user: invited.id })
    await ownSocket.waitFor(frame => frame.type === 'member' && frame.uid === invited.id)
    expect(await upgradeStatus(b.wsUrl(`/_ws?room=${room}`), { headers: invited.headers })).toBe(101)
  })
})
