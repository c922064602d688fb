/**
 * Joins are metered (docs/PROTOCOL.md, "Limits": `joins`; security finding F7): one person churning
 * `join` / `leave` over five connections is refused past the budget, and a refused join asks no
 * `chat:join` hook, stores nothing and tells the room's members nothing, on every path that joins
 * (version 2 over WebSocket and SSE, `dm`, version 1 upgrades, streams, probes and `?dm=`). A tab
 * rejoining the most rooms a connection may follow is never refused, another person never
 * notices, and the client waits `retryAfter` before it joins a refused room again. Real sockets
 * against the built fixture; figures are printed for the finding's note.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection } from '../../src/runtime/app/chatConnection'
import { forgetSharedSockets } from '../../src/runtime/app/sharedSocket'
import { directRoomId } from '../../src/runtime/server/utils/roomMembers'
import { ChatSocketV2, ChatStreamV2, openOrRefused, until, type FrameV2 } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const uniqueRoom = (prefix = 'lj') => `${prefix}-${randomUUID().slice(0, 8)}`
const uniqueUser = (prefix: string) => `user-count-${prefix}-${randomUUID().slice(0, 8)}`
const cookieOf = (user: string) => ({ cookie: `session=${user}` })
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))] ?? Number.NaN
/** The most rooms one connection may follow (`maxRoomsPerConnection`, its default). */
const MAX_ROOMS = 100
// The new-room limit would answer each first read position of a fresh room with an error frame: not what these tests count.
const NO_NEW_ROOM_LIMIT = { NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' }

/** Send `join` for every room at once, then wait for each one's answer: `caught_up` or `join_refused`. */
async function joinAll(socket: ChatSocketV2, rooms: string[]): Promise<FrameV2[]> {
  const refs = rooms.map((room) => {
    const ref = socket.ref()
    socket.send({ type: 'join', room, ref })
    return ref
  })
  const answerOf = (ref: string) => socket.frames.find(frame => frame.ref === ref && (frame.type === 'caught_up' || frame.type === 'join_refused'))
  await until(() => refs.every(answerOf), `${rooms.length} joins answered`, 30_000)
  return refs.map(ref => answerOf(ref)!)
}

/** How often `chat:join` (and `chat:identify`) ran for a `user-count-…` user. */
async function hookCalls(server: TestServer, user: string): Promise<{ identify: number, join: number }> {
  return (await fetch(server.url(`/_test/hook-calls?user=${user}`))).json()
}

/** A room's record as server code sees it (`null`: none). */
async function recordOf(server: TestServer, room: string): Promise<unknown> {
  const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ call: 'room', room }) })
  return ((await response.json()) as { record: unknown }).record
}

/** The refusal every path answers past the budget. */
const joinsRefusal = { code: 'rate_limited', scope: 'person', limit: 'joins', retryAfter: expect.any(Number) }

let server: TestServer
let tight: TestServer

beforeAll(async () => {
  ;[server, tight] = await Promise.all([
    // Every join limit at its default.
    startServer({ env: NO_NEW_ROOM_LIMIT }),
    // One join every 5 s once the burst (exactly `maxRoomsPerConnection`) is spent: nothing refills while a test looks.
    startServer({ env: { ...NO_NEW_ROOM_LIMIT, NUXT_CHAT_JOIN_RATE_LIMIT_MESSAGES: '1', NUXT_CHAT_JOIN_RATE_LIMIT_INTERVAL: '5000', NUXT_CHAT_JOIN_RATE_LIMIT_BURST: String(MAX_ROOMS) } }),
  ])
})

afterAll(async () => {
  await Promise.all([server, tight].map(each => each?.stop()))
})

describe('churning joins (finding F7)', () => {
  it('one person\'s five connections churning join / leave for 3 s: refused past the budget; members hear only of the joins that passed, chat:join ran only for them, another person is unaffected', async () => {
    const churner = uniqueUser('churn')
    const rooms = Array.from({ length: 5 }, () => uniqueRoom('churn'))
    // A member of every churned room, and a bystander in a room of its own who keeps pinging.
    const member = await ChatSocketV2.openV2(`ws://127.0.0.1:${server.port}`, {}, { headers: cookieOf(uniqueUser('member')) })
    expect((await joinAll(member, rooms)).map(answer => answer.type)).toEqual(rooms.map(() => 'caught_up'))
    const bystander = await ChatSocketV2.openV2(`ws://127.0.0.1:${server.port}`, {}, { headers: cookieOf(uniqueUser('bystander')) })
    expect(await bystander.join(uniqueRoom('quiet'))).toMatchObject({ type: 'caught_up' })
    const pingFor = async (ms: number) => {
      const times: number[] = []
      for (const end = Date.now() + ms; Date.now() < end;) {
        const ref = bystander.ref()
        const sent = performance.now()
        bystander.send({ type: 'ping', ref })
        await bystander.waitFor(frame => frame.type === 'pong' && frame.ref === ref, 'a pong')
        times.push(performance.now() - sent)
        await sleep(20)
      }
      return times
    }
    const quiet = await pingFor(500)

    const sockets = await Promise.all(rooms.map(() => ChatSocketV2.openV2(`ws://127.0.0.1:${server.port}`, {}, { headers: cookieOf(churner) })))
    const joinRefs = sockets.map(() => new Set<string>())
    const started = Date.now()
    const end = started + 3000
    // As the probe did: joins and leaves sent back to back, ten pairs at a time, per connection.
    const churn = async (socket: ChatSocketV2, room: string, refs: Set<string>) => {
      while (Date.now() < end) {
        let last = ''
        for (let pair = 0; pair < 10; pair++) {
          const ref = socket.ref()
          refs.add(ref)
          socket.send({ type: 'join', room, ref })
          last = socket.ref()
          socket.send({ type: 'leave', room, ref: last })
        }
        await socket.waitFor(frame => frame.ref === last && (frame.type === 'left' || frame.type === 'error'), 'the batch\'s last leave answered')
      }
    }
    const [busy] = await Promise.all([pingFor(3000), ...sockets.map((socket, index) => churn(socket, rooms[index]!, joinRefs[index]!))])
    const seconds = (Date.now() - started) / 1000
    await sleep(300)

    const sent = joinRefs.reduce((sum, refs) => sum + refs.size, 0)
    const refusals = sockets.flatMap((socket, index) => socket.frames.filter(frame => frame.type === 'join_refused' && joinRefs[index]!.has(frame.ref!)))
    const passed = sent - refusals.length
    const announced = member.frames.filter(frame => frame.type === 'presence_diff' && (frame.joins as { id: string }[]).some(user => user.id === churner)).length
    const calls = await hookCalls(server, churner)
    console.info(`[figures] 5 connections churning join / leave for ${seconds.toFixed(1)} s: ${sent} joins sent (${Math.round(sent / seconds)} / s), ${passed} passed, ${refusals.length} refused; the member heard of ${announced} joins; chat:join ran ${calls.join} times; bystander ping p90 ${percentile(quiet, 0.9).toFixed(1)} ms quiet, ${percentile(busy, 0.9).toFixed(1)} ms during the churn`)

    // (a) Refused past the budget: the burst (200) and the refill (2 a second), nothing more.
    expect(refusals.length).toBeGreaterThan(0)
    expect(passed).toBeLessThanOrEqual(200 + Math.ceil(2 * seconds) + 2)
    for (const refusal of refusals) {
      expect(refusal).toMatchObject({ ...joinsRefusal, message: expect.stringContaining('Too many joins from you') })
      expect(refusal.retryAfter).toBeGreaterThanOrEqual(1)
    }
    // (b) A refused join asks no hook and tells nobody: the hook ran once per join that passed, and the member heard of no more.
    expect(calls.join).toBe(passed)
    expect(announced).toBeLessThanOrEqual(passed)
    // (d) Another person joins at once, with the churner's budget spent.
    const other = await ChatSocketV2.openV2(`ws://127.0.0.1:${server.port}`, {}, { headers: cookieOf(uniqueUser('other')) })
    expect(await other.join(rooms[0]!)).toMatchObject({ type: 'caught_up' })
    // ... and so does the churner once it waited `retryAfter`.
    await sleep(Math.max(...refusals.map(refusal => refusal.retryAfter as number)) * 1000)
    expect(await sockets[0]!.join(uniqueRoom('after'))).toMatchObject({ type: 'caught_up' })
    await Promise.all([...sockets, member, bystander, other].map(socket => socket.close()))
  }, 60_000)
})

describe('a tab rejoining its rooms', () => {
  it('joins the most rooms one connection may follow at once, and again at once when it reconnects, without a refusal', async () => {
    const user = uniqueUser('tab')
    const rooms = Array.from({ length: MAX_ROOMS }, () => uniqueRoom('tab'))
    for (let round = 0; round < 2; round++) {
      const tab = await ChatSocketV2.openV2(`ws://127.0.0.1:${server.port}`, {}, { headers: cookieOf(user) })
      const answers = await joinAll(tab, rooms)
      expect(answers.filter(answer => answer.type !== 'caught_up')).toEqual([])
      await tab.close()
    }
    expect((await hookCalls(server, user)).join).toBe(2 * MAX_ROOMS)
  }, 60_000)
})

describe('every path that joins a room', () => {
  it('past the budget, version 1 upgrades, streams, probes and ?dm=, version 2 over SSE and dm are refused rate_limited (joins) before chat:join, making no direct room; a join passes again after retryAfter', async () => {
    const user = uniqueUser('paths')
    const friend = uniqueUser('friend')
    const http = tight.url('').replace(/\/$/, '')
    const ws = `ws://127.0.0.1:${tight.port}`
    // The burst is exactly `maxRoomsPerConnection`: a connection joining that many at once is not refused.
    const tab = await ChatSocketV2.openV2(ws, {}, { headers: cookieOf(user) })
    const answers = await joinAll(tab, Array.from({ length: MAX_ROOMS }, () => uniqueRoom('spend')))
    expect(answers.filter(answer => answer.type !== 'caught_up')).toEqual([])
    const room = uniqueRoom('after')

    // Version 1: an upgrade, the probe of one, a stream, an upgrade to a direct room.
    const upgrade = await openOrRefused(`${ws}/_ws?room=${room}`, cookieOf(user))
    expect(upgrade).toMatchObject({ status: 429, body: joinsRefusal })
    const probe = await fetch(`${http}/_ws?room=${room}`, { headers: cookieOf(user) })
    expect(probe.status).toBe(429)
    expect(await probe.json()).toMatchObject(joinsRefusal)
    const stream = await fetch(`${http}/api/sse?room=${room}`, { headers: { ...cookieOf(user), 'sec-fetch-site': 'same-origin' } })
    expect(stream.status).toBe(429)
    expect(Number(stream.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(await stream.json()).toMatchObject(joinsRefusal)
    const direct = await openOrRefused(`${ws}/_ws?dm=${friend}`, cookieOf(user))
    expect(direct).toMatchObject({ status: 429, body: joinsRefusal })

    // Version 2: a `dm` on another socket (the tab follows all it may), a `join` POSTed to a stream.
    const second = await ChatSocketV2.openV2(ws, {}, { headers: cookieOf(user) })
    const dm = second.ref()
    second.send({ type: 'dm', user: friend, ref: dm })
    expect(await second.waitFor(frame => frame.ref === dm && frame.type !== 'joined', 'the dm answered')).toMatchObject({ type: 'join_refused', ...joinsRefusal })
    const sse = await ChatStreamV2.openV2(http, {}, cookieOf(user))
    const ref = sse.ref()
    expect((await sse.send({ type: 'join', room, ref })).status).toBe(202)
    expect(await sse.waitFor(frame => frame.ref === ref, 'the POSTed join answered')).toMatchObject({ type: 'join_refused', room, ...joinsRefusal })

    // None of them asked the app, made the direct room, or reached the room.
    expect((await hookCalls(tight, user)).join).toBe(MAX_ROOMS)
    expect(await recordOf(tight, directRoomId(user, friend))).toBeNull()
    // Then one join passes again (and the one after it is refused again: 1 per 5 s).
    const retryAfter = 'body' in upgrade ? upgrade.body.retryAfter as number : Number.NaN
    expect(retryAfter).toBeLessThanOrEqual(5)
    await sleep(retryAfter * 1000)
    const again = await openOrRefused(`${ws}/_ws?room=${room}`, cookieOf(user))
    expect(again).toHaveProperty('socket')
    expect(await second.join(uniqueRoom('next'))).toMatchObject({ type: 'join_refused', ...joinsRefusal })
    if ('socket' in again) await again.socket.close()
    await Promise.all([tab.close(), second.close(), sse.close()])
  }, 60_000)
})

describe('the client (useChat) after a refused join', () => {
  const PlainWebSocket = globalThis.WebSocket
  const PlainFetch = globalThis.fetch
  afterAll(() => {
    forgetSharedSockets()
    globalThis.WebSocket = PlainWebSocket
    globalThis.fetch = PlainFetch
  })

  it('waits retryAfter, joins that room again without asking the route, and opens', async () => {
    const key = randomUUID().replaceAll('-', '')
    // The guest's budget spent by another connection of theirs.
    const other = await ChatSocketV2.openV2(`ws://127.0.0.1:${tight.port}`, { guest: key })
    expect((await joinAll(other, Array.from({ length: MAX_ROOMS }, () => uniqueRoom('spent')))).filter(answer => answer.type !== 'caught_up')).toEqual([])
    const room = uniqueRoom('later')
    // When the tab sent each join of the room, the refusals it got, and every request it made besides.
    const joins: number[] = []
    const refusals: FrameV2[] = []
    const requests: string[] = []
    globalThis.WebSocket = class extends PlainWebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols)
        this.addEventListener('message', (event) => {
          const frame = JSON.parse(String(event.data)) as FrameV2
          if (frame.type === 'join_refused') refusals.push(frame)
        })
      }

      override send(data: string) {
        if (data.includes('"join"') && data.includes(room)) joins.push(Date.now())
        super.send(data)
      }
    } as typeof WebSocket
    globalThis.fetch = (input, init) => {
      requests.push(String(input instanceof Request ? input.url : input))
      return PlainFetch(input, init)
    }
    const tab = createChatConnection({
      room, name: 'Tab', transport: 'ws', route: '/_ws', sseRoute: '/api/sse', maxMessages: 100, maxQueue: 10, maxLength: 2000,
      autoReconnect: { delay: 200, maxDelay: 400 }, heartbeat: false, typingTimeout: 3000, baseURL: tight.url('/'), guestKey: key, shareSocket: true,
    })
    tab.open()
    await until(() => tab.status.value === 'OPEN', 'the room open after its retry', 20_000)
    // Refused once, then joined after the wait the server named, and nothing asked in between.
    expect(refusals).toEqual([expect.objectContaining({ room, ...joinsRefusal })])
    expect(joins).toHaveLength(2)
    expect(joins[1]! - joins[0]!).toBeGreaterThanOrEqual((refusals[0]!.retryAfter as number) * 1000)
    expect(requests).toEqual([])
    expect(tab.error.value).toBeNull()
    tab.close()
    await other.close()
  }, 30_000)
})
