import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { seededRandom } from '../utils/chaos'
import { ChatSocket, ChatSocketV2, ChatStreamV2, until } from '../utils/clients'
import { callServer, ownPostgresDatabase, startServer, type TestServer } from '../utils/server'

/**
 * Commands that are almost right: every command of both protocol versions, built valid, then one
 * field (sometimes two) swapped for a hostile value, from a fixed seed. Whatever arrives, the
 * server answers, stays up, logs no error of its own, and what was stored before stays stored.
 */
const SEED = Number(process.env.CHAT_FUZZ_SEED ?? 20261207)
const ROUNDS = Number(process.env.CHAT_FUZZ_ROUNDS ?? 1500)

const HOSTILE: unknown[] = [
  undefined, null, true, false, 0, -1, 1.5, -0.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 8.64e15, 8.64e15 + 1, 1e308, Number.MIN_VALUE,
  '', ' ', '0', '-1', '1e3', 'NaN', 'Infinity', 'null', 'true', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
  'x'.repeat(65), 'x'.repeat(257), 'x'.repeat(5000), 'é'.repeat(300), '\u0000', 'a\u0000b', '\uD800', '\uDFFF', '\u202E\u2066', '😀'.repeat(40),
  'guest:AAAAAAAAAAAAAAAAAAAAAA', 'server', 'dm:AAAAAAAAAAAAAAAAAAAAAA', 'dm:', ':', '..', '../etc', 'a b', 'room\n', '<script>', '%00', '{"a":1}',
  [], [1], ['a'], [null], Array.from({ length: 200 }, (_, i) => `user-${i}`), {}, { __proto__: { polluted: 1 } }, { length: 3 }, { toString: 'x' },
  [[[[[[[[[[[]]]]]]]]]]],
]

const COMMANDS = ['join', 'leave', 'typing', 'members', 'history', 'read', 'stop', 'update', 'message', 'edit', 'delete', 'reaction',
  'mute', 'role', 'invite', 'remove', 'ban', 'unban', 'create', 'dm', 'search', 'rooms', 'ping', 'unknown', '', 'constructor', '__proto__']
const FIELDS = ['type', 'room', 'ref', 'cid', 'since', 'before', 'limit', 'thread', 'id', 'target', 'message', 'emoji', 'remove', 'user', 'uid',
  'role', 'until', 'title', 'topic', 'visibility', 'members', 'query', 'rooms', 'files', 'reply', 'replyTo', 'name', '__proto__', 'constructor']

describe.each(['sqlite', 'postgresql'] as const)('almost-right commands from a fixed seed (%s)', (output) => {
  let server: TestServer
  const closers: (() => unknown)[] = []
  // PostgreSQL on a database of its own: its rooms' names are the same in every run.
  const database = output === 'postgresql' ? ownPostgresDatabase('nuxt_chat_fuzz') : undefined
  beforeAll(async () => {
    server = await startServer({ output, env: { NUXT_CHAT_RATE_LIMIT: 'false', ...database?.env } })
  })
  afterAll(async () => {
    for (const close of closers) await close()
    await server?.stop()
    database?.drop()
  })

  it(`answers ${ROUNDS} hostile commands on each transport, stays up, and keeps what was stored`, async () => {
    const random = seededRandom(SEED)
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
    const owner = await ChatSocketV2.openV2(server.wsUrl(''), { name: 'Owner' }, { headers: { cookie: 'session=user-fuzz-owner' } })
    closers.push(() => owner.close())
    const guest = await ChatSocketV2.openV2(server.wsUrl(''), { name: 'Guest' })
    closers.push(() => guest.close())
    // Rooms it may act in: a public and a private one it owns, and one anyone joins.
    owner.send({ type: 'create', title: 'Fuzz public', visibility: 'public', ref: 'c1' })
    owner.send({ type: 'create', title: 'Fuzz private', visibility: 'private', members: ['user-fuzz-other', 'user-fuzz-keeper'], ref: 'c2' })
    const created = await Promise.all(['c1', 'c2'].map(ref => owner.waitFor(frame => frame.ref === ref && typeof frame.room === 'string', `room ${ref}`)))
    const rooms = [...created.map(frame => frame.room as string), 'fuzz-open']
    for (const room of rooms) await owner.join(room)
    await guest.join('fuzz-open')
    // What must survive: a bystander's first message in each room (no command below names id 1), read back at the end.
    const keeper = await ChatSocketV2.openV2(server.wsUrl(''), { name: 'Keeper' }, { headers: { cookie: 'session=user-fuzz-keeper' } })
    closers.push(() => keeper.close())
    for (const room of rooms) await keeper.join(room)
    for (const [i, room] of rooms.entries()) keeper.send({ type: 'message', room, message: `kept ${i}`, cid: `kept-${i}` })
    const kept = await Promise.all(rooms.map((_, i) => keeper.waitFor(frame => frame.cid === `kept-${i}` && typeof frame.id === 'number', `kept ${i}`)))
    expect(kept.map(frame => frame.id)).toEqual(rooms.map(() => 1))

    const command = () => {
      const type = pick(COMMANDS)
      const valid: Record<string, unknown> = { type, room: pick(rooms), ref: `f${Math.floor(random() * 1e6)}`, cid: `z${Math.floor(random() * 1e6)}`,
        message: 'hello', target: 2 + Math.floor(random() * 40), id: 2 + Math.floor(random() * 40), emoji: '👍', uid: 'user-fuzz-other', user: 'user-fuzz-other', role: 'moderator',
        until: Date.now() + 60_000, title: 'T', visibility: 'public', query: 'kept', limit: 5, since: 0 }
      for (let n = random() < 0.3 ? 2 : 1; n > 0; n--) {
        const field = pick(FIELDS)
        const value = pick(HOSTILE)
        if (value === undefined) Reflect.deleteProperty(valid, field)
        else valid[field] = value
      }
      return JSON.stringify(valid)
    }

    const v1 = await ChatSocket.open(server.wsUrl(''), { room: 'fuzz-open', name: 'Old' })
    closers.push(() => v1.close())
    const stream = await ChatStreamV2.openV2(server.url('').replace(/\/$/, ''), { name: 'Streamer' }, { cookie: 'session=user-fuzz-stream' })
    closers.push(() => stream.reader.close())
    const statuses = new Map<number, number>()
    for (let round = 0; round < ROUNDS; round++) {
      owner.send(command())
      guest.send(command())
      v1.send(random() < 0.2 ? pick(HOSTILE.filter(value => typeof value === 'string') as string[]) || 'x' : command())
      if (round % 5 === 0) {
        const answer = await stream.send(command())
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      }
      if (round % 100 === 99) {
        owner.send({ type: 'ping', ref: `q${round}` })
        await owner.waitFor(frame => frame.type === 'pong' && frame.ref === `q${round}`, `pong ${round}`, 10_000)
      }
    }
    // The server answered throughout, never with an internal error, and is still whole.
    expect(statuses.get(500) ?? 0).toBe(0)
    for (const socket of [owner, guest]) expect(socket.closed).toBeUndefined()
    expect(owner.frames.filter(frame => frame.type === 'error' && frame.code === 'internal')).toEqual([])
    const logs = server.logs()
    expect(logs).not.toMatch(/TypeError|RangeError|ReferenceError|SyntaxError: (?!Unexpected token|Unexpected end|Bad control|Bad escaped|Expected)|Unhandled|uncaught/i)
    expect(logs.split('\n').filter(line => /\[nuxt-chat\].*(?:failed|could not)/i.test(line))).toEqual([])
    for (const [i, room] of rooms.entries()) {
      const { body } = await callServer<{ id: number, message: string }[]>(server, { call: 'history', room, before: 2, limit: 1 })
      expect(body.find(frame => frame.id === kept[i]!.id)?.message, `room ${room}`).toBeDefined()
    }
    await until(async () => (await fetch(server.url('/api/sse?room=fuzz-open'), { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status === 200, 'the SSE route still serves')
  }, 240_000)

  it(`answers ${ROUNDS / 5} hostile HTTP requests to every route, never 500, and stays up`, async () => {
    const random = seededRandom(SEED + 1)
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
    const texts = HOSTILE.filter(value => typeof value === 'string' && value.length < 300) as string[]
    const keys = ['room', 'since', 'before', 'limit', 'thread', 'v', 'stream', 'name', 'guest', 'rooms', 'deltas', 'history', 'q', 'query', 'dm', 'id', 'token', 'endpoint', 'cursor', 'mute']
    const paths = ['/_ws', '/api/sse', '/api/sse/search', '/_chat/files', '/_chat/files/{segment}', '/_chat/files/AAAAAAAAAAAAAAAAAAAAAA', '/_chat/push', '/_chat/push/mute', '/_chat/push/key', '/_chat/push/sw.js', '/_chat/metrics']
    const statuses = new Map<string, number>()
    for (let round = 0; round < ROUNDS / 5; round++) {
      const search = new URLSearchParams()
      // Repeated keys come out as arrays from getQuery: a classic crash.
      for (let n = Math.floor(random() * 4); n > 0; n--) search.append(pick(keys), pick(texts))
      // A lone surrogate cannot be put in a URL at all: the client refuses it.
      const segment = encodeURIComponent(pick(texts.filter(text => !/[\uD800-\uDFFF]/.test(text) || text.includes('😀'))) || 'x')
      const path = pick(paths).replace('{segment}', segment)
      const method = pick(['GET', 'GET', 'POST', 'POST', 'DELETE', 'OPTIONS', 'HEAD'])
      const body = method === 'POST' || method === 'DELETE' ? pick([JSON.stringify(pick(HOSTILE) ?? null), pick(texts), '{"type":"message","message":"x","room":[1]}', '']) : undefined
      const headers: Record<string, string> = { 'content-type': pick(['application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded']) }
      if (random() < 0.5) headers.cookie = 'session=user-fuzz-http'
      if (random() < 0.3) headers.origin = pick(['http://evil.example', 'null', server.url('').replace(/\/$/, '')])
      if (random() < 0.2) headers['last-event-id'] = pick(texts.filter(text => /^[\x20-\x7E]*$/.test(text)))
      const response = await fetch(server.url(`${path}?${search}`), { method, headers, body, signal: AbortSignal.timeout(5000) }).catch((error: Error) => ({ status: `${error.name}: ${error.message} (${method} ${path}?${search})`, body: undefined }))
      // A stream that opened: close it (its status is what counts).
      if (response instanceof Response) void response.body?.cancel().catch(() => {})
      const status = String(response.status)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      if (status.startsWith('5') && status !== '503') throw new Error(`${method} ${path}?${search} answered ${status}`)
    }
    expect([...statuses.keys()].filter(status => !/^\d+$/.test(status))).toEqual([])
    const logs = server.logs()
    expect(logs).not.toMatch(/TypeError|RangeError|ReferenceError|Unhandled|uncaught/i)
    expect(logs.split('\n').filter(line => /\[nuxt-chat\].*(?:failed|could not)/i.test(line))).toEqual([])
    expect((await fetch(server.url('/_ws'))).status).toBeLessThan(500)
  }, 120_000)

  it(`answers ${ROUNDS / 5} hostile useChatServer() calls with 4xx or a result, never 500`, async () => {
    const random = seededRandom(SEED + 2)
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
    const calls = ['send', 'edit', 'delete', 'history', 'presence', 'rooms', 'unread', 'markRead', 'forget', 'disconnect', 'createRoom', 'updateRoom', 'room',
      'members', 'addMember', 'removeMember', 'setRole', 'mute', 'ban', 'unban', 'directRoom', 'search', 'addAiMember', 'aiMessages']
    const fields = ['room', 'message', 'user', 'cid', 'replyTo', 'target', 'before', 'limit', 'thread', 'userId', 'otherId', 'id', 'role', 'until', 'input', 'fields', 'search']
    const statuses = new Map<number, number>()
    for (let round = 0; round < ROUNDS / 5; round++) {
      const body: Record<string, unknown> = { call: pick(calls), room: pick(['fuzz-api', 'fuzz-open', 'dm:AAAAAAAAAAAAAAAAAAAAAA']), message: 'hi', user: { id: 'user-fuzz-api', name: 'Api' },
        target: 1 + Math.floor(random() * 5), userId: 'user-fuzz-api', otherId: 'user-fuzz-other', role: 'member', until: Date.now() + 60_000, limit: 5,
        input: { title: 'T', visibility: 'public' }, fields: { title: 'U' }, search: { rooms: ['fuzz-api'] } }
      for (let n = random() < 0.3 ? 2 : 1; n > 0; n--) {
        const field = pick(fields)
        const value = pick(HOSTILE)
        // Nested: a hostile value inside an object argument too.
        if (random() < 0.3 && typeof body[field] === 'object' && body[field] !== null) (body[field] as Record<string, unknown>)[pick(['id', 'name', 'title', 'visibility', 'topic', 'rooms', 'limit', 'members'])] = value
        else if (value === undefined) Reflect.deleteProperty(body, field)
        else body[field] = value
      }
      const { status } = await callServer(server, body).catch(() => ({ status: 0 }))
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      if (status >= 500 || status === 0) throw new Error(`${JSON.stringify(body).slice(0, 300)} answered ${status}\n${server.logs().slice(-1500)}`)
    }
    expect(statuses.get(200)).toBeGreaterThan(0)
    const logs = server.logs()
    expect(logs).not.toMatch(/TypeError|RangeError|ReferenceError|Unhandled|uncaught/i)
  }, 120_000)
})
