/**
 * Protocol version 2 (docs/PROTOCOL.md, "Version 2"): one WebSocket, many rooms, against built
 * servers with real sockets: joins with replays and cursors, every room frame naming its room,
 * refusals per room, leaves, exactly-once through a reconnect, v1 and v2 side by side, two
 * instances on Redis, and bad input.
 */
import { randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatSocketV2, postMessage, PROTOCOL_V2, until, untilOnOneBus } from '../utils/clients'
import { scrapeMetrics } from '../utils/metrics'
import { REDIS_URL, startServer, type TestServer } from '../utils/server'

const newRoom = (prefix = 'mux') => `${prefix}-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const wsBase = (server: TestServer) => server.wsUrl('')
// Many rooms and messages from one address: the per-person and per-address message and new-room limits are not what these tests are about.
const UNLIMITED = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' }

describe('protocol version 2 on one instance', () => {
  let server: TestServer
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(socket: T) => {
    opened.push(socket)
    return socket
  }
  const open = async (params: { name?: string, guest?: string } = {}, options: WebSocket.ClientOptions = {}) => track(await ChatSocketV2.openV2(wsBase(server), params, options))

  beforeAll(async () => {
    server = await startServer({ env: { ...UNLIMITED, NUXT_CHAT_MAX_ROOMS_PER_CONNECTION: '60' } })
  })
  afterAll(async () => {
    await Promise.all(opened.map(socket => socket.close()))
    await server?.stop()
  })

  it('answers with the subprotocol and says hello first; no subprotocol is version 1 unchanged', async () => {
    const v2 = await open({ name: 'Hallo' })
    expect(v2.ws.protocol).toBe(PROTOCOL_V2)
    const hello = await v2.waitFor(frame => frame.type === 'hello', 'hello')
    expect(v2.frames[0]).toBe(hello)
    expect(hello).toMatchObject({ version: 2, me: { name: 'Hallo', guest: true }, limits: { maxLength: 2000, maxRooms: 60 } })

    const room = newRoom()
    const v1 = track(await ChatSocket.open(wsBase(server), { room, name: 'Old' }))
    expect(v1.ws.protocol).toBe('')
    const welcome = await v1.waitFor(frame => frame.type === 'system', 'welcome')
    expect(welcome).toMatchObject({ event: 'welcome', room, message: 'Welcome Old!' })
  })

  it('joins 50 rooms on one socket, each with its replay, fast', async () => {
    const rooms = Array.from({ length: 50 }, () => newRoom('fifty'))
    for (const room of rooms) {
      for (const text of ['one', 'two']) expect((await postMessage(httpBase(server), { message: `${room} ${text}` }, { room })).status).toBe(200)
    }
    const socket = await open({ name: 'Fifty' })
    await socket.waitFor(frame => frame.type === 'hello', 'hello')
    const started = performance.now()
    const refs = rooms.map((room) => {
      const ref = socket.ref()
      socket.send({ type: 'join', room, ref })
      return ref
    })
    await until(() => refs.every(ref => socket.frames.some(frame => frame.type === 'caught_up' && frame.ref === ref)), 'every caught_up')
    const elapsed = performance.now() - started
    console.info(`[multiplex] 50 joins on one socket: last caught_up after ${elapsed.toFixed(1)} ms`)
    for (const [index, room] of rooms.entries()) {
      const frames = socket.framesOf(room).map(frame => frame.type)
      // joined, the presence list, the replay, caught_up: in that order.
      expect(frames.indexOf('joined'), room).toBe(0)
      expect(frames.indexOf('presence')).toBeGreaterThan(0)
      expect(frames.indexOf('caught_up')).toBeGreaterThan(frames.lastIndexOf('message'))
      expect(socket.messagesOf(room).map(message => message.message)).toEqual([`${room} one`, `${room} two`])
      expect(socket.framesOf(room).find(frame => frame.type === 'joined')?.ref).toBe(refs[index])
    }
    expect(socket.frames.some(frame => frame.type === 'system' && frame.event === 'welcome')).toBe(false)
    // Generous on a shared 2-core machine; the goal (< 200 ms) is printed above.
    expect(elapsed).toBeLessThan(3000)
  })

  it('carries messages, edits, reactions, typing, presence and read in three rooms on one socket', async () => {
    const rooms = [newRoom(), newRoom(), newRoom()]
    const alice = await open({ name: 'alice' }, { headers: { cookie: `session=user-mux-a${randomUUID().slice(0, 6)}` } })
    const bob = await open({ name: 'Bob' })
    for (const room of rooms) expect((await alice.join(room)).type).toBe('caught_up')
    for (const room of rooms) expect((await bob.join(room)).type).toBe('caught_up')
    for (const room of rooms) {
      // Presence: alice sees Bob join each room.
      await alice.waitFor(frame => frame.room === room && frame.type === 'presence_diff' && (frame.joins as { name: string }[]).some(user => user.name === 'Bob'), `Bob in ${room}`)
      bob.send({ type: 'message', room, message: `hello ${room}`, cid: `c-${room}`, ref: `m-${room}` })
    }
    for (const room of rooms) {
      const message = await alice.waitFor(frame => frame.type === 'message' && frame.room === room && frame.message === `hello ${room}`, `message in ${room}`)
      const ack = await bob.waitFor(frame => frame.type === 'ack' && frame.ref === `m-${room}`, `ack in ${room}`)
      expect(ack).toMatchObject({ room, id: message.id })
      bob.send({ type: 'edit', room, target: message.id, message: `edited ${room}`, cid: `e-${room}` })
      alice.send({ type: 'reaction', room, target: message.id, emoji: '👍', cid: `r-${room}` })
      bob.send({ type: 'typing', room })
      alice.send({ type: 'read', room, id: message.id })
    }
    for (const room of rooms) {
      await alice.waitFor(frame => frame.type === 'edit' && frame.room === room && frame.message === `edited ${room}`, `edit in ${room}`)
      await bob.waitFor(frame => frame.type === 'reaction' && frame.room === room && frame.emoji === '👍', `reaction in ${room}`)
      await alice.waitFor(frame => frame.type === 'typing' && frame.room === room && frame.user === 'Bob', `typing in ${room}`)
      await alice.waitFor(frame => frame.type === 'read' && frame.room === room && (frame.read as number) > 0, `read in ${room}`)
    }
    // Nothing of one room is told as another's: each room saw its own message only.
    for (const room of rooms) expect(alice.messagesOf(room).map(message => message.message)).toEqual([`hello ${room}`])
    // The history command names its room too.
    const ref = alice.ref()
    alice.send({ type: 'history', room: rooms[1], ref })
    const history = await alice.waitFor(frame => frame.type === 'history' && frame.ref === ref, 'history')
    expect(history.room).toBe(rooms[1])
  })

  it('refuses a join for that room only; the others keep working', async () => {
    const room = newRoom()
    const guest = await open({ name: 'Guesty' })
    expect((await guest.join(room)).type).toBe('caught_up')
    // The fixture's identify hook lets only signed-in users into `private-*` rooms.
    const refused = await guest.join(`private-${randomUUID().slice(0, 8)}`)
    expect(refused).toMatchObject({ type: 'join_refused', code: 'unauthorized' })
    expect(guest.closed).toBeUndefined()
    guest.send({ type: 'message', room, message: 'still here', cid: 'c-still' })
    await guest.waitFor(frame => frame.type === 'message' && frame.room === room && frame.message === 'still here', 'the message after a refusal')
  })

  it('refuses a guest the join of a room where a signed-in user has a look-alike name; the guest joins rooms with nobody signed in', async () => {
    const room = newRoom()
    const alice = await open({}, { headers: { cookie: 'session=alice-token' } })
    expect((await alice.join(room)).type).toBe('caught_up')
    const guest = await open({ name: 'A\u0142ice' })
    // Checked once per room as it is joined: the name passed the reserved names at the connection, not the room's signed-in names.
    expect(await guest.join(room)).toMatchObject({ type: 'join_refused', room, code: 'name_refused', message: expect.stringContaining('signed-in') })
    expect(await guest.join(newRoom())).toMatchObject({ type: 'caught_up' })
    expect(guest.closed).toBeUndefined()
  })

  it('counts a connection in three rooms as one connection in the metrics', async () => {
    const before = (await scrapeMetrics(server)).get('nuxt_chat_connections')!
    const socket = await open({ name: 'Counted' })
    for (const room of [newRoom(), newRoom(), newRoom()]) await socket.join(room)
    expect((await scrapeMetrics(server)).get('nuxt_chat_connections')).toBe(before + 1)
    await socket.close()
  })

  it('stops delivery after leave', async () => {
    const room = newRoom()
    const reader = await open({ name: 'Leaver' })
    await reader.join(room)
    expect((await postMessage(httpBase(server), { message: 'before' }, { room })).status).toBe(200)
    await reader.waitFor(frame => frame.type === 'message' && frame.message === 'before', 'before')
    const ref = reader.ref()
    reader.send({ type: 'leave', room, ref })
    expect(await reader.waitFor(frame => frame.type === 'left' && frame.ref === ref, 'left')).toMatchObject({ room, reason: 'left' })
    expect((await postMessage(httpBase(server), { message: 'after' }, { room })).status).toBe(200)
    reader.send({ type: 'ping' })
    await reader.waitFor(frame => frame.type === 'pong', 'pong')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(reader.messagesOf(room).map(message => message.message)).toEqual(['before'])
    // A command to the room left is refused, naming it.
    reader.send({ type: 'typing', room, ref: 'after-leave' })
    expect(await reader.waitFor(frame => frame.type === 'error' && frame.ref === 'after-leave', 'not_found')).toMatchObject({ code: 'not_found', room })
    // And it can join again.
    expect((await reader.join(room)).type).toBe('caught_up')
  })

  it('ends one room when the app disconnects the user from it; the connection and its other rooms stay', async () => {
    const [kept, ended] = [newRoom(), newRoom()]
    const socket = await open({ name: 'Ejected' })
    const hello = await socket.waitFor(frame => frame.type === 'hello', 'hello')
    await socket.join(kept)
    await socket.join(ended)
    const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'disconnect', room: ended, userId: (hello.me as { id: string }).id }) })
    expect(response.status).toBe(200)
    expect(await socket.waitFor(frame => frame.type === 'left' && frame.room === ended, 'left')).toMatchObject({ reason: 'disconnected' })
    expect((await postMessage(httpBase(server), { message: 'in kept' }, { room: kept })).status).toBe(200)
    expect((await postMessage(httpBase(server), { message: 'in ended' }, { room: ended })).status).toBe(200)
    await socket.waitFor(frame => frame.type === 'message' && frame.message === 'in kept', 'the kept room\'s message')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(socket.messagesOf(ended)).toEqual([])
    expect(socket.closed).toBeUndefined()
  })

  it('delivers each message once per room through a reconnect with cursors', async () => {
    const rooms = [newRoom(), newRoom()] as const
    const guest = randomUUID().replaceAll('-', '')
    const first = await open({ name: 'Again', guest })
    for (const room of rooms) await first.join(room)
    first.send({ type: 'message', room: rooms[0], message: 'a1', cid: 'a1' })
    first.send({ type: 'message', room: rooms[1], message: 'b1', cid: 'b1' })
    const a1 = await first.waitFor(frame => frame.type === 'message' && frame.cid === 'a1', 'a1')
    const b1 = await first.waitFor(frame => frame.type === 'message' && frame.cid === 'b1', 'b1')
    await first.close()
    expect((await postMessage(httpBase(server), { message: 'a2' }, { room: rooms[0] })).status).toBe(200)

    const second = await open({ name: 'Again', guest })
    await second.join(rooms[0], a1.id as number)
    await second.join(rooms[1], b1.id as number)
    // The replay after each room's cursor: a2 only, b1 not again.
    expect(second.messagesOf(rooms[0]).map(message => message.message)).toEqual(['a2'])
    expect(second.messagesOf(rooms[1])).toEqual([])
    // The outbox resends b1 with its cid: stored once, answered as a duplicate to the sender only.
    second.send({ type: 'message', room: rooms[1], message: 'b1', cid: 'b1' })
    const again = await second.waitFor(frame => frame.type === 'message' && frame.cid === 'b1', 'b1 again')
    expect(again).toMatchObject({ id: b1.id, duplicate: true, room: rooms[1] })
  })

  it('lets a v1 client and a v2 client in one room see each other', async () => {
    const room = newRoom()
    const v1 = track(await ChatSocket.open(wsBase(server), { room, name: 'One' }))
    const v2 = await open({ name: 'Two' })
    await v1.waitFor(frame => frame.type === 'presence', 'v1 presence')
    await v2.join(room)
    expect(v2.framesOf(room).find(frame => frame.type === 'presence')?.users).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'One' })]))
    v1.send('from one')
    v2.send({ type: 'message', room, message: 'from two', cid: 'two-1' })
    await v2.waitFor(frame => frame.type === 'message' && frame.message === 'from one', 'v1 message on v2')
    await v1.waitFor(frame => frame.type === 'message' && frame.message === 'from two', 'v2 message on v1')
    await v1.waitFor(frame => frame.type === 'system' && frame.event === 'join' && frame.message === 'Two joined!', 'v2 join on v1')
  })

  it('answers bad input with clear errors and never crashes', async () => {
    const socket = await open({ name: 'Bad' })
    await socket.waitFor(frame => frame.type === 'hello', 'hello')
    const expectError = async (sent: string | object, ref: string, code: string, pattern: RegExp) => {
      socket.send(sent)
      const error = await until(() => socket.frames.filter(frame => frame.type === 'error').at(-1 - 0), `error for ${ref}`)
      expect(error).toMatchObject({ code })
      expect(error.message).toMatch(pattern)
      socket.frames = []
    }
    await expectError('raw text', 'raw', 'bad_request', /JSON/)
    await expectError('ping', 'raw ping', 'bad_request', /JSON/)
    await expectError({ type: 'shout', ref: 'x1' }, 'unknown', 'bad_request', /Unknown command `shout`/)
    await expectError({ type: 'message', message: 'no room', ref: 'x2' }, 'no room', 'bad_request', /`room`/)
    await expectError({ type: 'join', room: 'bad room!', ref: 'x3' }, 'bad join', 'bad_request', /`room`/)
    await expectError([1, 2], 'array', 'bad_request', /object/)
    await expectError({ type: 'message', room: newRoom(), message: 'not joined' }, 'not joined', 'not_found', /join it first/)
    socket.ws.send(Buffer.from('binary'), { binary: true })
    await until(() => socket.frames.find(frame => frame.type === 'error' && /Binary/.test(frame.message as string)), 'binary refused')

    // Too many rooms: the 61st join is refused with its own code; leaving one lets another in.
    const rooms = Array.from({ length: 61 }, () => newRoom('many'))
    for (const room of rooms.slice(0, 60)) socket.send({ type: 'join', room, ref: `j-${room}` })
    await until(() => socket.frames.filter(frame => frame.type === 'caught_up').length === 60, '60 joins')
    expect(await socket.join(rooms[60]!)).toMatchObject({ type: 'join_refused', code: 'too_many_rooms', room: rooms[60] })
    expect(await socket.join(rooms[0]!)).toMatchObject({ type: 'join_refused', code: 'bad_request' })
    socket.send({ type: 'leave', room: rooms[0] })
    await socket.waitFor(frame => frame.type === 'left' && frame.room === rooms[0], 'left')
    expect((await socket.join(rooms[60]!)).type).toBe('caught_up')
    expect(socket.closed).toBeUndefined()

    // A v2 upgrade naming a room is refused before it opens.
    expect(await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${wsBase(server)}/_ws?room=chat`, PROTOCOL_V2)
      ws.on('open', () => resolve(101))
      ws.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0))
      ws.on('error', () => resolve(0))
    })).toBe(400)
    // The server still serves.
    const after = await open({ name: 'After' })
    expect((await after.join(newRoom())).type).toBe('caught_up')
  })
})

describe('protocol version 2 on two instances over Redis', () => {
  let a: TestServer
  let b: TestServer
  const opened: ChatSocketV2[] = []

  beforeAll(async () => {
    const env = { ...UNLIMITED, NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_REDIS_CHANNEL: `nuxt-chat-multiplex-${randomUUID().slice(0, 8)}` }
    ;[a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
  })
  afterAll(async () => {
    await Promise.all(opened.map(socket => socket.close()))
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('delivers every room\'s messages across instances, once and in order', async () => {
    const rooms = [newRoom('redis'), newRoom('redis')]
    const onA = await ChatSocketV2.openV2(wsBase(a), { name: 'OnA' })
    const onB = await ChatSocketV2.openV2(wsBase(b), { name: 'OnB' })
    opened.push(onA, onB)
    for (const room of rooms) {
      await onA.join(room)
      await onB.join(room)
    }
    for (let index = 1; index <= 5; index++) {
      for (const room of rooms) {
        onA.send({ type: 'message', room, message: `a${index}`, cid: `a${index}` })
        onB.send({ type: 'message', room, message: `b${index}`, cid: `b${index}` })
      }
    }
    for (const socket of [onA, onB]) {
      for (const room of rooms) {
        await until(() => socket.messagesOf(room).length === 10, `10 messages in ${room}`)
        const ids = socket.messagesOf(room).map(message => message.id)
        expect(ids).toEqual([...ids].sort((x, y) => x - y))
        expect(new Set(ids).size).toBe(10)
      }
    }
    // Presence across instances: OnA sees OnB in each room.
    for (const room of rooms) {
      await until(() => onA.framesOf(room).some(frame => (frame.type === 'presence_diff' && (frame.joins as { name: string }[]).some(user => user.name === 'OnB')) || (frame.type === 'presence' && (frame.users as { name: string }[]).some(user => user.name === 'OnB'))), `OnB seen in ${room}`)
    }
  })
})
