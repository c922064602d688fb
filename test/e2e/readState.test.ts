/**
 * Read state (issue 14, docs/PROTOCOL.md "Read state" and "Rooms list"), against two built
 * PostgreSQL instances on Redis with real sockets: read positions per signed-in user and room,
 * `read` frames to every connection of the user on both instances, the rooms list over
 * WebSocket and SSE, guests refused, and the real client's `unread` / `markRead`.
 * Users are the fixture's toy sessions; `user-…` tokens give each test users of its own.
 */
import { randomUUID } from 'node:crypto'
import { createDatabase } from 'db0'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { createChatConnection, type ChatTransport } from '../../src/runtime/app/chatConnection'
import { useChatRooms } from '../../src/runtime/app/composables/useChatRooms'
import { forgetSharedSockets } from '../../src/runtime/app/sharedSocket'
import type { ChatRoomState } from '../../src/runtime/shared/protocol'
import { installEventSource, sleep } from '../utils/chaos'
import { ChatSocket, ChatStream, postMessage, signInByName, until, untilOnOneBus, upgradeStatus } from '../utils/clients'
import { ownPostgres } from '../utils/faults'
import { callServer, POSTGRES_URL, REDIS_URL, startServer, type TestServer } from '../utils/server'

installEventSource()

const newRoom = (prefix = 'read') => `${prefix}-${randomUUID().slice(0, 8)}`
/** A signed-in user of this test's own: their id, and the cookie that makes them. */
const newUser = () => {
  const id = `user-${randomUUID().slice(0, 8)}`
  return { id, headers: { cookie: `session=${id}` } }
}
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const isRead = (frame: { type: string }) => frame.type === 'read'
type Frames = { frames: Record<string, unknown>[] }
const lastRead = (reader: Frames) => reader.frames.filter(isRead as (frame: Record<string, unknown>) => boolean).at(-1)

describe('read state, two PostgreSQL instances on Redis', () => {
  let a: TestServer
  let b: TestServer
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }
  const db = createDatabase(postgresql({ url: POSTGRES_URL }))

  beforeAll(async () => {
    const env = { NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_RATE_LIMIT: 'false' }
    ;[a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
  })

  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')])
    await db.dispose()
  })

  it('tells a signed-in user their read state on join; markRead reaches every connection of theirs on both instances, forward only, and nobody else', async () => {
    const room = newRoom()
    const [carol, dave] = [newUser(), newUser()]
    const carolWs = track(await ChatSocket.open(a.wsUrl(''), { room }, { headers: carol.headers }))
    // Joining made the position, at the room's newest id (none yet).
    expect(await carolWs.waitFor(isRead, 'the read frame')).toEqual({ type: 'read', room, uid: carol.id, read: 0, unread: 0, upTo: 0, user: 'server', message: '0 unread' })
    const daveWs = track(await ChatSocket.open(b.wsUrl(''), { room }, { headers: dave.headers }))
    await daveWs.waitFor(isRead, 'dave\'s read frame')
    for (const text of ['one', 'two', 'three']) daveWs.send({ type: 'message', message: text, cid: `d-${text}` })
    await carolWs.waitFor(frame => frame.type === 'message' && frame.id === 3, 'dave\'s three')
    carolWs.send('mine')
    await carolWs.waitFor(frame => frame.type === 'message' && frame.id === 4, 'four messages')
    daveWs.send({ type: 'delete', target: 2, cid: 'd-del' })
    await carolWs.waitFor(frame => frame.type === 'delete', 'the delete')

    // A second device on the other instance: unread counts others' live messages (one, three), not mine, not the deleted one.
    const carolSse = track(await ChatStream.open(httpBase(b), { room }, carol.headers))
    expect(await carolSse.waitFor(isRead, 'the SSE read frame')).toMatchObject({ read: 0, unread: 2, upTo: 5 })
    expect(carolSse.ids[carolSse.frames.findIndex(isRead)]).toBeUndefined()

    carolWs.send({ type: 'read', id: 3 })
    await until(() => lastRead(carolSse)?.read === 3 && lastRead(carolWs)?.read === 3, 'both devices at 3')
    expect(lastRead(carolSse)).toMatchObject({ uid: carol.id, read: 3, unread: 0, upTo: 5 })
    // Only forward: a lower id than the connection was told changes nothing, and costs nothing (no answer).
    await until(() => carolWs.frames.filter(isRead).length === 2, 'the answer to id 3')
    carolWs.send({ type: 'read', id: 1 })
    await sleep(200)
    expect(carolWs.frames.filter(isRead)).toHaveLength(2)
    expect(lastRead(carolWs)).toMatchObject({ read: 3 })

    // Over POST (how SSE clients send it): without an id, up to the newest.
    daveWs.send({ type: 'message', message: 'four', cid: 'd-four' })
    await carolSse.waitFor(frame => frame.type === 'message' && frame.id === 6, 'four')
    const posted = await postMessage(httpBase(b), { type: 'read' }, { room }, carol.headers)
    expect(posted).toMatchObject({ status: 200, json: { type: 'read', uid: carol.id, read: 6, unread: 0, upTo: 6 } })
    await until(() => lastRead(carolWs)?.read === 6, 'the WebSocket device at 6')
    await sleep(200)
    expect(daveWs.frames.filter(frame => frame.type === 'read' && frame.uid === carol.id)).toEqual([])

    // Bad input: a clear error, nothing moves.
    carolWs.send({ type: 'read', id: -1 })
    expect(await carolWs.waitFor(frame => frame.type === 'error', 'the refusal')).toMatchObject({ code: 'bad_request' })
    expect((await postMessage(httpBase(a), { type: 'read', id: 'x' }, { room }, carol.headers)).status).toBe(400)
    expect(lastRead(carolWs)).toMatchObject({ read: 6 })

    // The server-side API: Dave has unread Carol's message (id 4); marking read reaches his connection.
    expect((await callServer(a, { call: 'unread', room, userId: dave.id })).body).toEqual({ unread: 1 })
    expect((await callServer(a, { call: 'markRead', room, userId: dave.id })).body).toEqual({ read: 6 })
    await until(() => lastRead(daveWs)?.read === 6, 'dave\'s connection on the other instance')
    expect((await callServer(b, { call: 'unread', room, userId: dave.id })).body).toEqual({ unread: 0 })
  })

  it('guests have no read state: refused over WebSocket, POST and the rooms list, and nothing is stored', async () => {
    const room = newRoom()
    const guest = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'visitor' }))
    await guest.waitFor(frame => frame.type === 'presence', 'presence')
    guest.send({ type: 'read' })
    expect(await guest.waitFor(frame => frame.type === 'error', 'the refusal')).toMatchObject({ code: 'unauthorized' })
    const posted = await postMessage(httpBase(a), { type: 'read', id: 1 }, { room, name: 'visitor' })
    expect(posted).toMatchObject({ status: 401, json: { type: 'error', code: 'unauthorized' } })
    expect(await upgradeStatus(`${a.wsUrl()}?rooms`)).toBe(401)
    const list = await fetch(`${httpBase(a)}/api/sse?rooms`)
    expect(list.status).toBe(401)
    expect(await list.json()).toMatchObject({ code: 'unauthorized' })
    expect((await callServer(a, { call: 'markRead', room, userId: 'guest:AAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(400)
    await sleep(200)
    expect(guest.frames.some(isRead)).toBe(false)
    expect(await db.prepare('SELECT COUNT(*) AS n FROM chat_reads WHERE room = ?').get(room)).toEqual({ n: '0' })
  })

  it('rooms list over WebSocket and SSE: unread and last message of each room the user is in, live across instances', async () => {
    const [r1, r2, r3] = [newRoom('list'), newRoom('list'), newRoom('list')]
    const [erin, frank] = [newUser(), newUser()]
    for (const room of [r1, r2]) {
      const visit = await ChatSocket.open(a.wsUrl(''), { room }, { headers: erin.headers })
      await visit.waitFor(isRead, 'joined')
      await visit.close()
      await sleep(20)
    }
    const listWs = track(await ChatSocket.open(b.wsUrl(''), { rooms: '' }, { headers: erin.headers }))
    const listSse = track(await ChatStream.open(httpBase(a), { rooms: '' }, erin.headers))
    for (const list of [listWs, listSse]) {
      expect(await list.waitFor(frame => frame.type === 'rooms', 'the list')).toEqual({
        type: 'rooms', user: 'server', message: '2 rooms',
        rooms: [{ room: r2, read: 0, unread: 0, mentions: 0, upTo: 0 }, { room: r1, read: 0, unread: 0, mentions: 0, upTo: 0 }],
      })
    }
    /** The newest state of `room` as a list connection was told it. */
    const entry = (list: Frames, room: string) => {
      let state: ChatRoomState | undefined
      for (const frame of list.frames) {
        if (frame.type === 'rooms') state = (frame.rooms as ChatRoomState[]).find(item => item.room === room)
        else if (frame.type === 'room' && frame.room === room) state = frame as unknown as ChatRoomState
      }
      return state
    }
    const both = (room: string, check: (state: ChatRoomState | undefined) => boolean, what: string) => until(() => check(entry(listWs, room)) && check(entry(listSse, room)), what)

    // A message in a room nobody has open, posted on instance a: the list on b (and on a) hears of it.
    expect((await postMessage(httpBase(a), { message: 'hello r1' }, { room: r1 }, frank.headers)).status).toBe(200)
    await both(r1, state => state?.unread === 1 && state.last?.message === 'hello r1', 'the first message')
    expect(entry(listWs, r1)).toMatchObject({ room: r1, read: 0, unread: 1, upTo: 1, last: { type: 'message', id: 1, user: frank.id, uid: frank.id, message: 'hello r1' } })
    await postMessage(httpBase(b), { message: 'again' }, { room: r1 }, frank.headers)
    await postMessage(httpBase(a), { message: 'my own' }, { room: r1 }, erin.headers)
    await both(r1, state => state?.upTo === 3 && state.unread === 2 && state.last?.message === 'my own', 'three messages, two unread')

    // Marked read from the list (WebSocket, instance b): both lists follow.
    listWs.send({ type: 'read', room: r1 })
    await both(r1, state => state?.read === 3 && state.unread === 0, 'r1 read')
    // Only rooms on the list: a position elsewhere would show a room the user was never admitted to.
    listWs.send({ type: 'read', room: r3 })
    expect(await listWs.waitFor(frame => frame.type === 'error', 'the refusal')).toMatchObject({ code: 'not_found' })
    listWs.send({ type: 'message', message: 'not here' })
    await until(() => listWs.frames.filter(frame => frame.type === 'error').length === 2, 'the second refusal')
    expect(listWs.frames.filter(frame => frame.type === 'error')[1]).toMatchObject({ code: 'bad_request' })

    // Joining a room for the first time (on instance a) adds it to both lists.
    const inR3 = track(await ChatSocket.open(a.wsUrl(''), { room: r3 }, { headers: erin.headers }))
    await inR3.waitFor(isRead, 'joined r3')
    await both(r3, state => state?.read === 0 && state.unread === 0, 'r3 listed')
    // An edit of the last message, from the other instance, shows in `last`; a delete of an unread one lowers the count.
    await postMessage(httpBase(b), { message: 'r2 news' }, { room: r2 }, frank.headers)
    await postMessage(httpBase(b), { message: 'r2 more' }, { room: r2 }, frank.headers)
    await both(r2, state => state?.unread === 2, 'two unread in r2')
    expect((await postMessage(httpBase(b), { type: 'edit', target: 2, message: 'r2 more, edited' }, { room: r2 }, frank.headers)).status).toBe(200)
    await both(r2, state => state?.last?.message === 'r2 more, edited' && state.last.edited === 3, 'the edit')
    expect((await postMessage(httpBase(a), { type: 'delete', target: 1 }, { room: r2 }, frank.headers)).status).toBe(200)
    await both(r2, state => state?.unread === 1, 'the delete')
    expect(entry(listSse, r2)).toEqual(entry(listWs, r2))
  })

  it('the list is the memberships: a read position without one (an earlier version\'s) lists nothing, and a read cannot list it; sending there makes the membership, listed on the person\'s other connections on both instances', async () => {
    const [room, joined] = [newRoom('member'), newRoom('member')]
    const [kim, lou] = [newUser(), newUser()]
    expect((await postMessage(httpBase(a), { message: 'before kim' }, { room }, lou.headers)).status).toBe(200)
    // A position alone, as an earlier version made it (no membership).
    await db.prepare('INSERT INTO chat_reads (uid, room, id, ts) VALUES (?, ?, ?, ?)').run(kim.id, room, 0, Date.now())
    const listWs = track(await ChatSocket.open(b.wsUrl(''), { rooms: '' }, { headers: kim.headers }))
    const listSse = track(await ChatStream.open(httpBase(a), { rooms: '' }, kim.headers))
    for (const list of [listWs, listSse]) expect(await list.waitFor(frame => frame.type === 'rooms', 'the list')).toMatchObject({ rooms: [] })
    const listed = (list: Frames, name: string) => list.frames.some(frame => frame.type === 'room' && frame.room === name && !frame.removed)
    // Its position moves (the server API, a POST), and a message comes: still not listed; a read from the list is refused.
    expect((await callServer(a, { call: 'markRead', room, userId: kim.id })).body).toEqual({ read: 1 })
    expect((await postMessage(httpBase(b), { type: 'read' }, { room }, kim.headers)).status).toBe(200)
    expect((await postMessage(httpBase(b), { message: 'still not yours' }, { room }, lou.headers)).status).toBe(200)
    listWs.send({ type: 'read', room })
    expect(await listWs.waitFor(frame => frame.type === 'error', 'the refusal')).toMatchObject({ code: 'not_found' })
    await sleep(300)
    for (const list of [listWs, listSse]) expect(listed(list, room)).toBe(false)

    // Kim speaks there (a POST on b): a member now, the room on both lists (b and a), unread from her position.
    expect((await postMessage(httpBase(b), { message: 'hello from kim' }, { room }, kim.headers)).status).toBe(200)
    await until(() => listed(listWs, room) && listed(listSse, room), 'the room on both lists')
    expect(listSse.frames.findLast(frame => frame.type === 'room' && frame.room === room)).toMatchObject({ read: 1, unread: 1, upTo: 3, last: { message: 'hello from kim', uid: kim.id } })
    // Choosing to join another room (a WebSocket from the page, on a) lists it too; a new list shows both, most recently active first.
    const inJoined = track(await ChatSocket.open(a.wsUrl(''), { room: joined }, { headers: kim.headers }))
    await inJoined.waitFor(isRead, 'joined')
    await until(() => listed(listWs, joined) && listed(listSse, joined), 'the joined room on both lists')
    const again = track(await ChatSocket.open(a.wsUrl(''), { rooms: '' }, { headers: kim.headers }))
    expect(((await again.waitFor(frame => frame.type === 'rooms', 'a new list')).rooms as ChatRoomState[]).map(entry => entry.room)).toEqual([joined, room])
  })

  it('a burst of read commands is folded: one stored at a time per connection, the highest id wins, lower ids cost nothing', async () => {
    const room = newRoom('burst')
    const ivan = newUser()
    const ivanWs = track(await ChatSocket.open(a.wsUrl(''), { room }, { headers: ivan.headers }))
    await ivanWs.waitFor(isRead, 'joined')
    for (let n = 1; n <= 40; n++) ivanWs.send({ type: 'message', message: `m${n}`, cid: `i-${n}` })
    await ivanWs.waitFor(frame => frame.type === 'message' && frame.id === 40, 'forty messages')
    const list = track(await ChatSocket.open(b.wsUrl(''), { rooms: '' }, { headers: ivan.headers }))
    await list.waitFor(frame => frame.type === 'rooms', 'the list')
    for (let n = 1; n <= 40; n++) ivanWs.send({ type: 'read', id: n })
    for (let n = 1; n <= 40; n++) list.send({ type: 'read', room, id: n })
    await until(() => lastRead(ivanWs)?.read === 40, 'the position at 40')
    await sleep(300)
    const answers = ivanWs.frames.filter(isRead).length - 1
    // Forty reads each from two connections: a handful stored, not eighty.
    expect(answers).toBeGreaterThanOrEqual(1)
    expect(answers).toBeLessThanOrEqual(8)
    expect(list.frames.filter(frame => frame.type === 'room' && frame.room === room).length).toBeLessThanOrEqual(8)
    expect(list.frames.filter(frame => frame.type === 'room' && frame.room === room).at(-1)).toMatchObject({ read: 40, unread: 0 })
    expect((await db.prepare('SELECT id FROM chat_reads WHERE room = ? AND uid = ?').get(room, ivan.id))).toEqual({ id: '40' })
  })

  it('a user barred from a room (forget, disconnect) stops getting its messages through an open rooms list, on both instances, and cannot bring it back with a read', async () => {
    const [kept, barred] = [newRoom('bar'), newRoom('bar')]
    const [gina, frank] = [newUser(), newUser()]
    for (const room of [kept, barred]) {
      const visit = await ChatSocket.open(a.wsUrl(''), { room }, { headers: gina.headers })
      await visit.waitFor(isRead, 'joined')
      await visit.close()
    }
    const listWs = track(await ChatSocket.open(b.wsUrl(''), { rooms: '' }, { headers: gina.headers }))
    const listSse = track(await ChatStream.open(httpBase(a), { rooms: '' }, gina.headers))
    for (const list of [listWs, listSse]) await list.waitFor(frame => frame.type === 'rooms', 'the list')
    const removed = (list: Frames, room: string) => list.frames.some(frame => frame.type === 'room' && frame.room === room && frame.removed === true)

    // The app forgets her position (on instance a): both lists are told the room is gone.
    expect((await callServer(a, { call: 'forget', room: barred, userId: gina.id })).body).toEqual({ forgotten: true })
    await until(() => removed(listWs, barred) && removed(listSse, barred), 'the room removed from both lists')
    expect(listWs.frames.find(frame => frame.type === 'room' && frame.room === barred)).toEqual({ type: 'room', room: barred, removed: true, read: 0, unread: 0, upTo: 0, user: 'server', message: `${barred}: removed` })
    // New messages in the barred room reach neither list; the kept room still does.
    await postMessage(httpBase(a), { message: 'secret' }, { room: barred }, frank.headers)
    await postMessage(httpBase(b), { message: 'public' }, { room: kept }, frank.headers)
    await until(() => [listWs, listSse].every(list => list.frames.some(frame => frame.type === 'room' && frame.room === kept && (frame.last as { message?: string } | undefined)?.message === 'public')), 'the kept room\'s message')
    await sleep(200)
    for (const list of [listWs, listSse]) expect(JSON.stringify(list.frames)).not.toContain('secret')

    // A read from the list, or a POST read, does not put the room back.
    listWs.send({ type: 'read', room: barred })
    expect(await listWs.waitFor(frame => frame.type === 'error', 'the refusal')).toMatchObject({ code: 'not_found' })
    expect(await postMessage(httpBase(b), { type: 'read' }, { room: barred }, gina.headers)).toMatchObject({ status: 404, json: { type: 'error', code: 'not_found' } })
    expect((await callServer(b, { call: 'markRead', room: barred, userId: gina.id })).body).toEqual({})
    // Hers is gone (Frank's, who spoke there, stays).
    expect(await db.prepare('SELECT COUNT(*) AS n FROM chat_reads WHERE room = ? AND uid = ?').get(barred, gina.id)).toEqual({ n: '0' })

    // disconnect takes the room off her open lists as well (on the other instance too); her position stays.
    expect((await callServer(b, { call: 'disconnect', room: kept, userId: gina.id })).status).toBe(200)
    await until(() => removed(listWs, kept) && removed(listSse, kept), 'the disconnected room removed from both lists')
    await postMessage(httpBase(a), { message: 'after disconnect' }, { room: kept }, frank.headers)
    await sleep(200)
    for (const list of [listWs, listSse]) expect(JSON.stringify(list.frames)).not.toContain('after disconnect')
    expect(await db.prepare('SELECT COUNT(*) AS n FROM chat_reads WHERE room = ? AND uid = ?').get(kept, gina.id)).toEqual({ n: '1' })
  })

  for (const transport of ['ws', 'sse'] as const) {
    it(`${transport}: useChat's unread counts others' messages live; markRead clears it on the user's other device, on the other instance`, async () => {
      const room = newRoom('client')
      const [gina, hank] = [newUser(), newUser()]
      const restore = signInByName({ 'gina-1': gina.headers.cookie, 'gina-2': gina.headers.cookie, 'hank': hank.headers.cookie })
      const client = (server: TestServer, name: string, over: ChatTransport) => {
        const connection = createChatConnection({
          room, name, transport: over, route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 50, maxLength: 2000,
          autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'),
          guestKey: randomUUID().replaceAll('-', ''),
        })
        track(connection)
        connection.open()
        return connection
      }
      try {
        const first = client(a, 'gina-1', transport)
        const second = client(b, 'gina-2', 'ws')
        const other = client(a, 'hank', 'ws')
        const guest = client(b, 'visitor', transport)
        await until(() => [first, second, other, guest].every(connection => connection.me.value), 'everyone welcomed')
        expect(first.me.value).toEqual({ id: gina.id, name: gina.id })
        await sleep(100)
        other.send('one')
        other.send('two')
        await until(() => first.messages.value.length === 2, 'two messages')
        first.send('mine')
        await until(() => first.unread.value === 2 && second.unread.value === 2 && guest.messages.value.length === 3, 'two unread on both devices')
        other.remove(first.messages.value.find(message => message.message === 'one')!.id!)
        await until(() => first.unread.value === 1 && second.unread.value === 1, 'one unread after the delete')

        expect(first.markRead()).toBe(true)
        await sleep(0)
        expect(first.unread.value).toBe(0)
        await until(() => second.unread.value === 0, 'read on the other device')
        other.send('three')
        await until(() => first.unread.value === 1 && second.unread.value === 1, 'a new one')
        // Hank's own messages are not unread to him; Gina's one is.
        expect(other.unread.value).toBe(1)

        // Guests: nothing to mark, nothing counted.
        expect(guest.markRead()).toBe(false)
        expect(guest.unread.value).toBe(0)
        expect(guest.error.value).toBeNull()
      }
      finally {
        restore()
      }
    })
  }

  for (const transport of ['ws', 'sse'] as const) {
    it(`${transport}: useChatRooms() lists the rooms with unread and last message, live, and markRead clears one; a guest is told to sign in`, async () => {
      const [room, quiet] = [newRoom('rooms'), newRoom('rooms')]
      const [ivy, jack] = [newUser(), newUser()]
      for (const name of [quiet, room]) {
        const visit = await ChatSocket.open(a.wsUrl(''), { room: name }, { headers: ivy.headers })
        await visit.waitFor(isRead, 'joined')
        await visit.close()
        await sleep(20)
      }
      // The composable as a browser page on instance b runs it; requests without `?name=` are Ivy's.
      vi.stubGlobal('window', {})
      vi.stubGlobal('location', { href: b.url('/') })
      const restore = signInByName({ '': ivy.headers.cookie })
      const scope = effectScope()
      try {
        const { rooms, status, markRead } = scope.run(() => useChatRooms({ transport }))!
        await until(() => rooms.value.length === 2, 'both rooms listed')
        expect(status.value).toBe('OPEN')
        expect(rooms.value.map(entry => [entry.room, entry.unread])).toEqual([[quiet, 0], [room, 0]].sort(([x], [y]) => x! < y! ? -1 : 1))
        expect(markRead(newRoom('other'))).toBe(false)

        await postMessage(httpBase(a), { message: 'news' }, { room }, jack.headers)
        await until(() => rooms.value[0]?.room === room && rooms.value[0].unread === 1, 'the news, first')
        expect(rooms.value[0]!.last).toMatchObject({ message: 'news', uid: jack.id })
        expect(markRead(room)).toBe(true)
        await until(() => rooms.value.find(entry => entry.room === room)?.unread === 0, 'read')
      }
      finally {
        scope.stop()
        restore()
      }
      // A guest: refused, with a reason, and no reconnecting. Another tab: not the signed-in tab's shared socket.
      forgetSharedSockets()
      const guestScope = effectScope()
      try {
        const guest = guestScope.run(() => useChatRooms({ transport }))!
        await until(() => guest.error.value?.code === 'unauthorized', 'the refusal')
        expect(guest.rooms.value).toEqual([])
        expect(guest.status.value).toBe('CLOSED')
      }
      finally {
        guestScope.stop()
        vi.unstubAllGlobals()
      }
    })
  }
})

describe('rooms list when its store fails, own PostgreSQL', () => {
  let pg: Awaited<ReturnType<typeof ownPostgres>>
  let server: TestServer

  beforeAll(async () => {
    pg = await ownPostgres()
    await pg.start()
    server = await startServer({ output: 'postgresql', env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_DATABASE_OPTIONS_URL: pg.url } })
  })

  afterAll(async () => {
    await server?.stop('SIGKILL')
    await pg?.stop('immediate')
    pg?.remove()
  })

  it('a WebSocket list whose first read fails is told `unavailable` and closed with 1011, so the client retries; the retry gets the list', async () => {
    const room = newRoom('down')
    const hana = newUser()
    const visit = await ChatSocket.open(server.wsUrl(''), { room }, { headers: hana.headers })
    await visit.waitFor(isRead, 'joined')
    await visit.close()
    await pg.stop('fast')
    const failed = await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: hana.headers })
    expect(await failed.waitFor(frame => frame.type === 'error', 'the refusal', 20_000)).toMatchObject({ code: 'unavailable' })
    await until(() => failed.closed, 'the close', 20_000)
    expect(failed.closed?.code).toBe(1011)
    await pg.start()
    const again = await ChatSocket.open(server.wsUrl(''), { rooms: '' }, { headers: hana.headers })
    expect(await again.waitFor(frame => frame.type === 'rooms', 'the list', 20_000)).toMatchObject({ rooms: [{ room }] })
    await again.close()
  }, 60_000)
})
