/**
 * Protocol version 2 over SSE (docs/PROTOCOL.md, "Version 2 over SSE"): one real event stream for
 * many rooms, commands as POSTs naming it, against built servers: replays per room, messages and
 * changes in two rooms, streams of other people, refused joins, the connection slot, reconnects.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatStream, ChatStreamV2, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
const newRoom = (prefix = 'ssev2') => `${prefix}-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const UNLIMITED = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' }
let users = 0
/** Poll an async check until it gives a value. */
async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeout = 10_000): Promise<T> {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
const newUser = () => {
  const id = `user-ssev2-${tag}-${++users}`
  return { id, headers: { cookie: `session=${id}` } }
}

describe('protocol version 2 over SSE', () => {
  let server: TestServer
  const opened: { close: () => unknown }[] = []
  const open = async (params: { name?: string, guest?: string } = {}, headers: Record<string, string> = {}) => {
    const stream = await ChatStreamV2.openV2(httpBase(server), params, headers)
    opened.push(stream)
    return stream
  }

  beforeAll(async () => {
    server = await startServer({ env: UNLIMITED })
  })
  afterAll(async () => {
    await Promise.all(opened.map(stream => stream.close()))
    await server?.stop()
  })

  it('greets with hello and an unguessable stream id; one stream joins three rooms, each with its replay', async () => {
    const rooms = [newRoom(), newRoom(), newRoom()]
    for (const room of rooms) {
      for (const text of ['one', 'two']) expect((await postMessage(httpBase(server), { message: `${room} ${text}` }, { room })).status).toBe(200)
    }
    const stream = await open({ name: 'Three', guest: randomUUID().replace(/-/g, '') })
    const hello = stream.frames[0]!
    expect(hello).toMatchObject({ type: 'hello', version: 2, me: { name: 'Three', guest: true } })
    expect(stream.id).toMatch(/^[\w-]{24}$/)
    for (const room of rooms) expect(await stream.join(room)).toMatchObject({ type: 'caught_up', room })
    for (const room of rooms) {
      const types = stream.framesOf(room).map(frame => frame.type)
      expect(types.indexOf('joined')).toBe(0)
      expect(types.indexOf('caught_up')).toBeGreaterThan(types.lastIndexOf('message'))
      expect(stream.messagesOf(room).map(message => message.message)).toEqual([`${room} one`, `${room} two`])
    }
    expect(stream.frames.some(frame => frame.type === 'system' && frame.event === 'welcome')).toBe(false)
  })

  it('carries messages, edits, reactions, typing and read in two rooms, each answered on the stream', async () => {
    const alice = newUser()
    const bob = newUser()
    const [first, second] = [newRoom(), newRoom()]
    const a = await open({ name: 'alice' }, alice.headers)
    const b = await open({ name: 'bob' }, bob.headers)
    for (const room of [first, second]) {
      await a.join(room)
      await b.join(room)
    }
    for (const room of [first, second]) {
      const sent = await a.send({ type: 'message', room, message: `hello ${room}`, cid: `c-${room}`, ref: `m-${room}` })
      expect(sent.status).toBe(202)
      const ack = await a.waitFor(frame => frame.type === 'ack' && frame.ref === `m-${room}`, 'ack')
      expect(ack.room).toBe(room)
      const seen = await b.waitFor(frame => frame.type === 'message' && frame.room === room, `message in ${room}`)
      expect(seen.message).toBe(`hello ${room}`)
      const id = seen.id as number
      expect((await a.send({ type: 'edit', room, target: id, message: `edited ${room}`, cid: `e-${room}` })).status).toBe(202)
      await b.waitFor(frame => frame.type === 'edit' && frame.room === room && frame.target === id, `edit in ${room}`)
      expect((await b.send({ type: 'reaction', room, target: id, emoji: '👍', cid: `r-${room}` })).status).toBe(202)
      await a.waitFor(frame => frame.type === 'reaction' && frame.room === room && frame.target === id, `reaction in ${room}`)
      expect((await b.send({ type: 'typing', room })).status).toBe(202)
      await a.waitFor(frame => frame.type === 'typing' && frame.room === room, `typing in ${room}`)
      expect((await b.send({ type: 'read', room, id, ref: `read-${room}` })).status).toBe(202)
      await b.waitFor(frame => frame.type === 'read' && frame.room === room, `read in ${room}`)
    }
    // Nothing of one room arrived named as the other.
    expect(b.messagesOf(first).map(message => message.message)).toEqual([`hello ${first}`])
    expect(b.messagesOf(second).map(message => message.message)).toEqual([`hello ${second}`])
  })

  it('answers a POST naming another person\'s stream, or an unknown one, not_found; a bad command 400', async () => {
    const alice = newUser()
    const bob = newUser()
    const a = await open({ name: 'alice' }, alice.headers)
    const b = await open({ name: 'bob' }, bob.headers)
    const room = newRoom()
    const foreign = await b.send({ type: 'join', room }, a.id)
    expect(foreign.status).toBe(404)
    expect(foreign.json).toMatchObject({ type: 'error', code: 'not_found' })
    const unknown = await b.send({ type: 'join', room }, 'x'.repeat(24))
    expect(unknown.status).toBe(404)
    expect(unknown.json).toMatchObject({ code: 'not_found' })
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(a.framesOf(room)).toEqual([])
    const bad = await b.send({ type: 'join', room: 'no spaces', ref: 'bad1' })
    expect(bad.status).toBe(400)
    expect(bad.json).toMatchObject({ type: 'error', code: 'bad_request', ref: 'bad1' })
    const text = await b.send('just text')
    expect(text.status).toBe(400)
  })

  it('answers join_refused on the stream for a private room of others', async () => {
    const owner = newUser()
    const outsider = newUser()
    const room = newRoom('private')
    const created = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'createRoom', input: { id: room, title: 'Team', visibility: 'private', owner: owner.id, members: [] } }) })
    expect(created.status).toBe(200)
    const stream = await open({ name: 'outsider' }, outsider.headers)
    const refused = await stream.join(room)
    expect(refused).toMatchObject({ type: 'join_refused', room, code: 'forbidden' })
    const mine = await open({ name: 'owner' }, owner.headers)
    expect(await mine.join(room)).toMatchObject({ type: 'caught_up', room })
  })

  it('a reconnect gets a new stream and re-joins with per-room cursors: nothing lost, nothing twice', async () => {
    const rooms = [newRoom(), newRoom()]
    const guest = randomUUID().replace(/-/g, '')
    const first = await open({ name: 'Again', guest })
    for (const room of rooms) {
      await first.join(room)
      await postMessage(httpBase(server), { message: `${room} before` }, { room })
      await first.waitFor(frame => frame.type === 'message' && frame.room === room, 'before')
    }
    const cursors = Object.fromEntries(rooms.map(room => [room, first.messagesOf(room).at(-1)!.id]))
    const oldId = first.id
    await first.close()
    for (const room of rooms) await postMessage(httpBase(server), { message: `${room} while away` }, { room })
    const second = await open({ name: 'Again', guest })
    expect(second.id).not.toBe(oldId)
    await eventually(async () => (await second.send({ type: 'ping' }, oldId)).status === 404, 'the old stream ended')
    for (const room of rooms) await second.join(room, cursors[room])
    for (const room of rooms) {
      expect(second.messagesOf(room).map(message => message.message)).toEqual([`${room} while away`])
    }
    for (const room of rooms) await postMessage(httpBase(server), { message: `${room} live` }, { room })
    await until(() => rooms.every(room => second.messagesOf(room).length === 2), 'live messages')
    for (const room of rooms) expect(second.messagesOf(room).map(message => message.message)).toEqual([`${room} while away`, `${room} live`])
  })

  it('keeps version 1 streams unchanged beside version 2 ones', async () => {
    const room = newRoom()
    const v1 = await ChatStream.open(httpBase(server), { room, name: 'Old' })
    opened.push(v1)
    await v1.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'welcome')
  })
})

describe('a version 2 stream and the connection caps', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { ...UNLIMITED, NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '2' } })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('holds one slot until it ends, and its end frees it', async () => {
    const base = httpBase(server)
    const one = await ChatStreamV2.openV2(base, { name: 'One' })
    const two = await ChatStreamV2.openV2(base, { name: 'Two' })
    await expect(ChatStreamV2.openV2(base, { name: 'Three' })).rejects.toMatchObject({ status: 429 })
    await one.close()
    const three = await eventually(() => ChatStreamV2.openV2(base, { name: 'Three' }).catch(() => undefined), 'a freed slot')
    expect(three.frames[0]).toMatchObject({ type: 'hello' })
    await Promise.all([two.close(), three.close()])
  })
})
