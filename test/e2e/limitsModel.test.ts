/**
 * The limits model (docs/PROTOCOL.md, "Limits and how they end a connection"; issues 22 and 28) caused for real against the
 * built fixture: history and `read` floods, new rooms, dripping upgrades and connections per
 * address (the office of issue 28 is in limitsOffice.test.ts). Figures are printed for the
 * issue's closing note.
 */
import { randomUUID } from 'node:crypto'
import { get } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChatConnection } from '../../src/runtime/app/chatConnection'
import { ChatSocket, ChatSocketV2, openOrRefused, postMessage, until, upgradeStatus } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const uniqueRoom = (prefix = 'lm') => `${prefix}-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const wsBase = (server: TestServer) => `ws://127.0.0.1:${server.port}`
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN
const cookieOf = (user: string) => ({ cookie: `session=user-${user}` })

/** Median and worst round trip of `ping` → `pong` on one socket, pinging every 50 ms for `ms`. */
async function pingFor(socket: ChatSocket, ms: number): Promise<number[]> {
  const times: number[] = []
  const end = Date.now() + ms
  while (Date.now() < end) {
    const pongs = socket.frames.filter(frame => frame.type === 'pong').length
    const sent = performance.now()
    socket.send({ type: 'ping' })
    await until(() => socket.frames.filter(frame => frame.type === 'pong').length > pongs, 'a pong', 10_000)
    times.push(performance.now() - sent)
    await sleep(50)
  }
  return times
}

/** Seed a room with `count` long messages over POST (the server runs without a message limit). */
async function seed(server: TestServer, room: string, count: number) {
  for (let start = 0; start < count; start += 20) {
    await Promise.all(Array.from({ length: Math.min(20, count - start) }, (_, index) => postMessage(httpBase(server), `${start + index} ${'x'.repeat(1000)}`, { room })))
  }
}

let server: TestServer
let gated: TestServer

beforeAll(async () => {
  ;[server, gated] = await Promise.all([
    // No message limit, so a test can seed history quickly; every other limit at its default.
    startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } }),
    startServer({ env: { NUXT_CHAT_HEADERS_TIMEOUT: '3000' } }),
  ])
})

afterAll(async () => {
  await Promise.all([server, gated].map(each => each?.stop()))
})

describe('history and read floods (issue 22.5)', () => {
  it('eight parallel HTTP history loops from one address for 5 s: refused with 429 + Retry-After, bytes bounded, another client keeps its ping', async () => {
    const room = uniqueRoom('flood')
    await seed(server, room, 300)
    const other = await ChatSocket.open(wsBase(server), { room: uniqueRoom('bystander') })
    await other.waitFor(frame => frame.type === 'presence')
    const quiet = await pingFor(other, 1000)

    let answers = 0
    let bytes = 0
    const refusals: { retryAfter: string | null, body: Record<string, unknown> }[] = []
    const end = Date.now() + 5000
    const loop = async () => {
      while (Date.now() < end) {
        const response = await fetch(`${httpBase(server)}/api/sse?room=${room}&before=${1 + Math.floor(Math.random() * 300)}&limit=100`)
        const text = await response.text()
        if (response.status === 200) {
          answers++
          bytes += Buffer.byteLength(text)
        }
        else if (response.status === 429) {
          refusals.push({ retryAfter: response.headers.get('retry-after'), body: JSON.parse(text) })
        }
      }
    }
    const [during] = await Promise.all([pingFor(other, 4500), ...Array.from({ length: 8 }, loop)])
    console.info(`[figures] history flood, 8 loops × 5 s, one address: ${answers} pages, ${(bytes / 1024 / 1024).toFixed(2)} MiB served, ${refusals.length} refused; another client's ping median ${median(quiet).toFixed(1)} ms before, ${median(during).toFixed(1)} ms (max ${Math.max(...during).toFixed(1)} ms) during`)
    expect(refusals.length).toBeGreaterThan(0)
    expect(refusals[0]!.body).toMatchObject({ type: 'error', code: 'rate_limited', scope: 'address', limit: 'history' })
    expect(Number(refusals[0]!.retryAfter)).toBeGreaterThanOrEqual(1)
    expect(refusals[0]!.body.retryAfter).toBe(Number(refusals[0]!.retryAfter))
    // 2 MiB budget + 5 s of refill (0.2 MiB/s) + at most eight pages in flight.
    expect(bytes).toBeLessThan(5 * 1024 * 1024)
    await other.close()
  })

  it('eight parallel SSE join loops replaying after `since=1` from one address for 5 s: the replays count against the history byte budget, refused with 429 naming history; a WebSocket join refused or made to wait', async () => {
    const room = uniqueRoom('replayflood')
    await seed(server, room, 300)
    // An address of its own: the page flood above spent 127.0.0.1's budget.
    const localAddress = '127.0.0.6'
    let joins = 0
    let bytes = 0
    const refusals: { retryAfter: string | undefined, body: Record<string, unknown> }[] = []
    const end = Date.now() + 5000
    // One join: read its stream until the replay's last message arrived (or 2 s), then leave.
    const join = () => new Promise<void>((resolve, reject) => {
      const request = get({ host: '127.0.0.1', port: server.port, path: `/api/sse?room=${room}&since=1`, localAddress }, (response) => {
        let text = ''
        response.setEncoding('utf8')
        const timer = setTimeout(() => request.destroy(), 2000)
        response.on('data', (chunk: string) => {
          text += chunk
          if (response.statusCode === 200) bytes += Buffer.byteLength(chunk)
          if (response.statusCode === 200 && text.includes('id: 300\n')) request.destroy()
        })
        const done = () => {
          clearTimeout(timer)
          if (response.statusCode === 200) joins++
          else refusals.push({ retryAfter: response.headers['retry-after'], body: JSON.parse(text) })
          resolve()
        }
        response.on('end', done)
        response.on('close', done)
      })
      request.on('error', (error: NodeJS.ErrnoException) => error.code === 'ECONNRESET' ? resolve() : reject(error))
    })
    const loop = async () => {
      while (Date.now() < end) await join()
    }
    // A WebSocket join while the loops still run (after them, a loaded machine's slow last joins leave time to refill the budget).
    const duringFlood = sleep(4000).then(() => openOrRefused(`${wsBase(server)}/_ws?room=${room}&since=1`, {}, localAddress))
    await Promise.all(Array.from({ length: 8 }, loop))
    const ws = await duringFlood
    console.info(`[figures] replay flood (SSE joins with since=1, 300 messages of 1 KB), 8 loops × 5 s, one address: ${joins} joins, ${(bytes / 1024 / 1024).toFixed(2)} MiB served, ${refusals.length} refused; a WebSocket join during it: ${'status' in ws ? ws.status : 101}`)
    expect(refusals.length).toBeGreaterThan(0)
    expect(refusals[0]!.body).toMatchObject({ type: 'error', code: 'rate_limited', scope: 'address', limit: 'history' })
    expect(Number(refusals[0]!.retryAfter)).toBeGreaterThanOrEqual(1)
    // 2 MiB budget + 5 s of refill (0.2 MiB/s) + the replays in flight (0.33 MiB each; they take turns per address now).
    expect(bytes).toBeLessThan(6 * 1024 * 1024)
    // The WebSocket join is refused while the budget is spent; in the moment it has room again, admitted, its replay
    // then waits its turn behind the flood's (the joins already under way are served at the budget's pace).
    if ('status' in ws) expect(ws).toMatchObject({ status: 429, body: { code: 'rate_limited', scope: 'address', limit: 'history' } })
    else ws.socket.ws.terminate()
  })

  it('joins sent at once by one person get their replays from the store at the byte budget\'s pace, not all at once', async () => {
    const room = uniqueRoom('parallel')
    // 250 messages of ~1 KB: a replay after cursor 0 is ~0.3 MiB read from the store (memory holds only the newest 100).
    await seed(server, room, 250)
    const user = `parallel-${randomUUID().slice(0, 8)}`
    const sockets = await Promise.all(Array.from({ length: 12 }, () => ChatSocketV2.openV2(wsBase(server), {}, { headers: cookieOf(user) })))
    const served = () => sockets.reduce((sum, socket) => sum + socket.messages.reduce((bytes, frame) => bytes + JSON.stringify(frame).length, 0), 0)
    const started = Date.now()
    // Sent at once: the joins the server reads before any replay was charged all pass the budget's check.
    const joins = sockets.map(socket => socket.join(room, 0, 60_000))
    await sleep(1500)
    const early = served()
    const answered = await Promise.all(joins)
    const seconds = (Date.now() - started) / 1000
    const servedJoins = answered.filter(answer => answer.type === 'caught_up').length
    console.info(`[figures] 12 joins at once after cursor 0 (0.3 MiB replays each, 2 MiB / 10 s budget): ${(early / 2 ** 20).toFixed(2)} MiB in the first 1.5 s, ${(served() / 2 ** 20).toFixed(2)} MiB in all after ${seconds.toFixed(1)} s; ${servedJoins} served, ${answered.length - servedJoins} refused as they started (read once the budget was spent)`)
    // Each join is served its whole replay (the later ones once the budget had room), or refused as it started.
    answered.forEach((answer, index) => {
      if (answer.type === 'caught_up') expect(sockets[index]!.messages.filter(frame => frame.room === room)).toHaveLength(250)
      else expect(answer).toMatchObject({ type: 'join_refused', code: 'rate_limited', room })
    })
    // The budget (2 MiB) and one replay of debt: twelve replays at once (3.5 MiB) would be far past it.
    expect(early).toBeLessThan(2.8 * 2 ** 20)
    await Promise.all(sockets.map(socket => socket.close()))
  }, 90_000)

  it('a signed-in user reopening a rooms list of 18 rooms with long last messages, 8 loops for 5 s: the lists count against the history byte budget, refused with 429 naming the person', async () => {
    const user = `lister-${randomUUID().slice(0, 8)}`
    const rooms = Array.from({ length: 18 }, () => uniqueRoom('listed'))
    for (const room of rooms) {
      // A read position in each (a WebSocket join makes one), and a last message of ~4 KB of JSON.
      const socket = await ChatSocket.open(wsBase(server), { room }, { headers: cookieOf(user) })
      await socket.waitFor(frame => frame.type === 'read', 'the read state')
      await socket.close()
      await postMessage(httpBase(server), '"'.repeat(2000), { room })
    }
    let lists = 0
    let bytes = 0
    const refusals: { retryAfter: string | undefined, body: Record<string, unknown> }[] = []
    const end = Date.now() + 5000
    const open = () => new Promise<void>((resolve, reject) => {
      const request = get({ host: '127.0.0.1', port: server.port, path: '/api/sse?rooms', headers: cookieOf(user) }, (response) => {
        let text = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          text += chunk
          if (response.statusCode === 200 && text.includes('"type":"rooms"') && text.endsWith('\n\n')) {
            lists++
            bytes += Buffer.byteLength(text)
            request.destroy()
          }
        })
        const done = () => {
          if (response.statusCode !== 200) refusals.push({ retryAfter: response.headers['retry-after'], body: JSON.parse(text) })
          resolve()
        }
        response.on('end', done)
        response.on('close', done)
      })
      request.on('error', (error: NodeJS.ErrnoException) => error.code === 'ECONNRESET' ? resolve() : reject(error))
    })
    const loop = async () => {
      while (Date.now() < end) await open()
    }
    await Promise.all(Array.from({ length: 8 }, loop))
    console.info(`[figures] rooms list flood (18 rooms, ~4 KB last messages), 8 loops × 5 s, one signed-in user: ${lists} lists, ${(bytes / 1024 / 1024).toFixed(2)} MiB served, ${refusals.length} refused`)
    expect(refusals.length).toBeGreaterThan(0)
    expect(refusals[0]!.body).toMatchObject({ type: 'error', code: 'rate_limited', scope: 'person', limit: 'history' })
    expect(Number(refusals[0]!.retryAfter)).toBeGreaterThanOrEqual(1)
    // 2 MiB budget + 5 s of refill + at most eight lists in flight.
    expect(bytes).toBeLessThan(4 * 1024 * 1024)
  })

  it('history pages over WebSocket are limited per person, answered with the limit, scope and wait; the connection stays', async () => {
    const room = uniqueRoom('wshist')
    await seed(server, room, 20)
    // Signed in: counted per person (this address's guests may have used up their own budget above).
    const socket = await ChatSocket.open(wsBase(server), { room }, { headers: cookieOf(`pager-${randomUUID().slice(0, 8)}`) })
    await socket.waitFor(frame => frame.type === 'presence')
    let pages = 0
    let refused: Record<string, unknown> | undefined
    for (let request = 0; request < 30 && !refused; request++) {
      const seen = socket.frames.length
      socket.send({ type: 'history', before: 10, limit: 5 })
      const answer = await until(() => socket.frames.slice(seen).find(frame => frame.type === 'history' || frame.type === 'error'), 'a history answer')
      if (answer.type === 'history') pages++
      else refused = answer
    }
    // A burst of 10, and what refilled meanwhile (2 a second).
    expect(pages).toBeGreaterThanOrEqual(10)
    expect(pages).toBeLessThanOrEqual(11)
    expect(refused).toMatchObject({ code: 'rate_limited', scope: 'person', limit: 'history' })
    expect(refused!.retryAfter).toBeGreaterThanOrEqual(1)
    // Still open: pings answered.
    socket.send({ type: 'ping' })
    await socket.waitFor(frame => frame.type === 'pong')
    await socket.close()
  })

  it('useChat over WebSocket: a page refused by the history limit ends loadOlder at once with the rate_limited error', async () => {
    const room = uniqueRoom('olders')
    await seed(server, room, 60)
    const client = createChatConnection({
      room, name: 'pager', transport: 'ws', route: '/_ws', sseRoute: '/api/sse', maxMessages: 20, maxQueue: 10, maxLength: 2000,
      autoReconnect: { delay: 50, maxDelay: 500 }, heartbeat: false, typingTimeout: 3000, baseURL: server.url('/'),
    })
    client.open()
    try {
      await until(() => client.messages.value.length > 0, 'the replay')
      let refusedAfter: number | undefined
      for (let page = 0; page < 30 && refusedAfter === undefined; page++) {
        const started = performance.now()
        await client.loadOlder(1)
        client.dropOlder()
        if (client.error.value?.code === 'rate_limited') refusedAfter = performance.now() - started
      }
      expect(refusedAfter).toBeDefined()
      expect(refusedAfter!).toBeLessThan(2000)
    }
    finally {
      client.close()
    }
  })

  it('a read flood is refused per person (POST 429, WebSocket error frames); reads within the limit still move the position', async () => {
    const room = uniqueRoom('reads')
    const user = `reader-${randomUUID().slice(0, 8)}`
    const socket = await ChatSocket.open(wsBase(server), { room }, { headers: cookieOf(user) })
    await socket.waitFor(frame => frame.type === 'read')
    await postMessage(httpBase(server), 'something to read', { room })
    // In tens: each open POST holds one of the person's 20 connection slots.
    const answers = []
    for (let batch = 0; batch < 6; batch++) answers.push(...await Promise.all(Array.from({ length: 10 }, () => postMessage(httpBase(server), { type: 'read' }, { room }, cookieOf(user)))))
    const statuses = answers.map(answer => answer.status)
    console.info(`[figures] read flood, 60 POSTs of one person: ${statuses.filter(status => status === 200).length} answered, ${statuses.filter(status => status === 429).length} refused`)
    expect(statuses.filter(status => status === 200).length).toBeGreaterThan(0)
    expect(statuses.filter(status => status === 200).length).toBeLessThanOrEqual(16)
    expect(answers.find(answer => answer.status === 429)!.json).toMatchObject({ code: 'rate_limited', scope: 'person', limit: 'reads' })
    // Reads that each reach the store (a burst would be folded into a few, costing nothing).
    for (let read = 0; read < 30 && !socket.frames.some(frame => frame.limit === 'reads'); read++) {
      socket.send({ type: 'read' })
      await sleep(20)
    }
    await socket.waitFor(frame => frame.type === 'error' && frame.limit === 'reads', 'a refused WebSocket read')
    await socket.close()
  })
})

describe('new rooms (issue 22.6 / 22.3, rate half)', () => {
  let postgres: TestServer
  beforeAll(async () => {
    // No message limit: what refuses is the new-room limit alone.
    postgres = await startServer({ output: 'postgresql', env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
  })
  afterAll(async () => {
    await postgres?.stop()
  })

  it('65 new rooms from one guest address on PostgreSQL: refused past the address\'s limit, with scope; what was stored stays', async () => {
    const prefix = uniqueRoom('pgroom')
    const answers = []
    for (let index = 0; index < 65; index++) answers.push(await postMessage(httpBase(postgres), `room ${index}`, { room: `${prefix}-${index}` }))
    const stored = answers.filter(answer => answer.status === 200).length
    console.info(`[figures] 65 new rooms from one guest address (PostgreSQL): ${stored} created, ${65 - stored} refused`)
    // The address's burst of 30 (and what refilled meanwhile: 20 a minute).
    expect(stored).toBeGreaterThanOrEqual(30)
    expect(stored).toBeLessThanOrEqual(31)
    expect(answers.at(-1)).toMatchObject({ status: 429, json: { code: 'rate_limited', scope: 'address', limit: 'rooms' } })
    const reader = await ChatSocket.open(wsBase(postgres), { room: `${prefix}-29` })
    await reader.waitFor(frame => frame.type === 'message' && frame.message === 'room 29', 'the stored message')
    await reader.close()
  })

  it('65 new rooms from one guest address in a burst: refused past the address\'s limit, with scope; what was stored stays', async () => {
    const prefix = uniqueRoom('newroom')
    const answers = []
    for (let index = 0; index < 65; index++) answers.push(await postMessage(httpBase(server), `room ${index}`, { room: `${prefix}-${index}` }))
    const stored = answers.filter(answer => answer.status === 200).length
    const refused = answers.filter(answer => answer.status === 429)
    console.info(`[figures] 65 new rooms from one guest address: ${stored} created, ${refused.length} refused`)
    // The address's burst of 30 (seeding above made a few rooms already).
    expect(stored).toBeLessThanOrEqual(31)
    expect(refused.length).toBeGreaterThanOrEqual(34)
    expect(refused[0]!.json).toMatchObject({ code: 'rate_limited', scope: 'address', limit: 'rooms' })
    // A room that exists takes messages as before; the rooms created stay.
    expect((await postMessage(httpBase(server), 'again', { room: `${prefix}-0` })).status).toBe(200)
    const reader = await ChatSocket.open(wsBase(server), { room: `${prefix}-1` })
    await reader.waitFor(frame => frame.type === 'message' && frame.message === 'room 1', 'the stored message')
    await reader.close()
  })

  it('a signed-in user\'s first read positions in 40 rooms: limited per person, the joins go on without one', async () => {
    const user = `roamer-${randomUUID().slice(0, 8)}`
    const prefix = uniqueRoom('roam')
    let positions = 0
    let refusal: Record<string, unknown> | undefined
    for (let index = 0; index < 40; index++) {
      const socket = await ChatSocket.open(wsBase(server), { room: `${prefix}-${index}` }, { headers: cookieOf(user) })
      const answer = await socket.waitFor(frame => frame.type === 'read' || frame.type === 'error', 'a read frame or a refusal')
      if (answer.type === 'read') positions++
      else refusal ??= answer
      await socket.close()
    }
    console.info(`[figures] one signed-in user joining 40 new rooms: ${positions} read positions created`)
    // A burst of 20 (and what refilled meanwhile: 10 a minute).
    expect(positions).toBeGreaterThanOrEqual(20)
    expect(positions).toBeLessThanOrEqual(22)
    expect(refusal).toMatchObject({ code: 'rate_limited', scope: 'person', limit: 'rooms' })
  })

  it('members named by a create are invites against the messages limit: a room of 30 is made at once, the next creates of 30 are refused until it refills', async () => {
    const founder = `founder-${randomUUID().slice(0, 8)}`
    const team = Array.from({ length: 30 }, (_, index) => `user-${founder}-m${index}`)
    const open = async (user: string) => {
      const socket = await ChatSocketV2.openV2(wsBase(gated), {}, { headers: cookieOf(user) })
      await socket.waitFor(frame => frame.type === 'hello', 'hello')
      return socket
    }
    const owner = await open(founder)
    const create = async (title: string) => {
      const ref = owner.ref()
      owner.send({ type: 'create', ref, title, visibility: 'private', members: team })
      return owner.waitFor(frame => frame.ref === ref && frame.type !== 'joined', `the answer to create ${title}`)
    }
    const made = await create('Team')
    expect(made).toMatchObject({ type: 'caught_up' })
    const answers = []
    for (let index = 0; index < 5; index++) answers.push(await create(`Team ${index}`))
    console.info(`[figures] a signed-in user's 6 creates of 30 members each: ${answers.filter(answer => answer.type === 'caught_up').length + 1} made, ${answers.filter(answer => answer.type === 'error').length} refused`)
    // Before, each took one token of the rooms limit only (a burst of 20): 2,000 memberships in under a second.
    expect(answers).toEqual(answers.map(() => expect.objectContaining({ type: 'error', code: 'rate_limited', scope: 'person', limit: 'messages' })))
    // What was made stays: a member named at creation joins.
    const member = await ChatSocketV2.openV2(wsBase(gated), {}, { headers: { cookie: `session=${team[7]}` } })
    expect(await member.join(made.room as string)).toMatchObject({ type: 'caught_up' })
    await Promise.all([owner.close(), member.close()])
  })
})

describe('slow upgrades (issue 22.9)', () => {
  it('300 sockets dripping a header line every 2 s: closed within headersTimeout, counted against the address', async () => {
    const sockets: { socket: Socket, closedAt?: number, answer: string }[] = []
    const started = Date.now()
    for (let index = 0; index < 300; index++) {
      const socket = connect(gated.port, '127.0.0.1')
      const entry: { socket: Socket, closedAt?: number, answer: string } = { socket, answer: '' }
      socket.on('data', (chunk) => {
        entry.answer += chunk
      })
      socket.on('close', () => {
        entry.closedAt = Date.now()
      })
      socket.on('error', () => {})
      socket.write(`GET /_ws?room=drip HTTP/1.1\r\nHost: 127.0.0.1:${gated.port}\r\n`)
      sockets.push(entry)
    }
    const drip = setInterval(() => {
      for (const { socket } of sockets) if (!socket.destroyed) socket.write(`X-Drip: ${Date.now()}\r\n`)
    }, 2000)
    try {
      await sleep(1000)
      // Meanwhile the dripping sockets count against their address: a guest from it is refused; another address is not.
      const sameAddress = await upgradeStatus(`${wsBase(gated)}/_ws?room=drip`)
      const otherAddress = await upgradeStatus(`${wsBase(gated)}/_ws?room=drip`, { localAddress: '127.0.0.2' })
      await sleep(3000)
      const open = sockets.filter(entry => entry.closedAt === undefined).length
      const answered429 = sockets.filter(entry => entry.answer.startsWith('HTTP/1.1 429')).length
      const slowestClose = Math.max(...sockets.map(entry => (entry.closedAt ?? Date.now()) - started))
      console.info(`[figures] 300 dripping upgrades, headersTimeout 3 s: ${open} open after 4 s, ${answered429} answered 429 at once, last closed after ${slowestClose} ms; a guest upgrade from that address meanwhile: ${sameAddress}, from another: ${otherAddress}`)
      expect(open).toBe(0)
      expect(sameAddress).toBe(429)
      expect(otherAddress).toBe(101)
      expect(answered429).toBeGreaterThanOrEqual(199)
      // Once they are gone, the address connects again.
      expect(await upgradeStatus(`${wsBase(gated)}/_ws?room=drip`)).toBe(101)
    }
    finally {
      clearInterval(drip)
      for (const { socket } of sockets) socket.destroy()
    }
  })

  it('a kept-alive socket dripping its next request: closed within keepAliveTimeout + headersTimeout (Node checks only every 30 s); an idle kept-alive client is still answered', async () => {
    // A server of its own, started now: Node's own 30 s check has not run yet when the bound is checked.
    const fresh = await startServer({ env: { NUXT_CHAT_HEADERS_TIMEOUT: '3000' } })
    const sockets: { socket: Socket, answered?: number, closedAt?: number }[] = []
    const drip = setInterval(() => {
      for (const { socket, answered } of sockets) if (answered && !socket.destroyed) socket.write(`X-Drip: ${Date.now()}\r\n`)
    }, 1000)
    try {
      for (let index = 0; index < 60; index++) {
        const socket = connect(fresh.port, '127.0.0.1')
        const entry: { socket: Socket, answered?: number, closedAt?: number } = { socket }
        socket.on('data', () => {
          if (entry.answered) return
          entry.answered = Date.now()
          // The first request was answered on a kept-alive socket: the next one starts, and never ends.
          socket.write(`GET /_ws?room=drip HTTP/1.1\r\nHost: 127.0.0.1:${fresh.port}\r\n`)
        })
        socket.on('close', () => {
          entry.closedAt = Date.now()
        })
        socket.on('error', () => {})
        socket.write(`HEAD /api/sse?room=keepalive HTTP/1.1\r\nHost: 127.0.0.1:${fresh.port}\r\n\r\n`)
        sockets.push(entry)
      }
      await until(() => sockets.every(entry => entry.answered), 'every first request answered', 10_000)
      // A client that idles 2 s on its kept-alive socket, then asks again, is answered.
      const idle = connect(fresh.port, '127.0.0.1')
      let idleAnswers = ''
      idle.on('data', (chunk) => {
        idleAnswers += chunk
      })
      idle.on('error', () => {})
      idle.write(`HEAD /api/sse?room=keepalive HTTP/1.1\r\nHost: 127.0.0.1:${fresh.port}\r\n\r\n`)
      await sleep(2000)
      idle.write(`HEAD /api/sse?room=keepalive HTTP/1.1\r\nHost: 127.0.0.1:${fresh.port}\r\n\r\n`)
      // keepAliveTimeout (Node's 5 s) + headersTimeout (3 s) + slack.
      await sleep(10_000 - (Date.now() - Math.min(...sockets.map(entry => entry.answered!))))
      const open = sockets.filter(entry => entry.closedAt === undefined).length
      const slowest = Math.max(...sockets.map(entry => (entry.closedAt ?? Date.now()) - entry.answered!))
      console.info(`[figures] 60 kept-alive sockets dripping a second request, headersTimeout 3 s: ${open} open 10 s after their first answer, last closed ${slowest} ms after it`)
      expect(idleAnswers.match(/HTTP\/1\.1 200/g)).toHaveLength(2)
      idle.destroy()
      expect(open).toBe(0)
    }
    finally {
      clearInterval(drip)
      for (const { socket } of sockets) socket.destroy()
      await fresh.stop()
    }
  })
})

describe('connections per address', () => {
  it('an address with its 100 guests connected: the 101st guest is refused naming the address; a page from it still loads', async () => {
    const room = uniqueRoom('full')
    // An address of its own: nothing earlier tests left closing counts against it.
    const address = '127.0.0.3'
    const guests = await Promise.all(Array.from({ length: 100 }, () => ChatSocket.open(wsBase(gated), { room }, { localAddress: address })))
    try {
      const refused = await openOrRefused(`${wsBase(gated)}/_ws?room=${room}`, {}, address)
      expect(refused).toMatchObject({ status: 429, body: { code: 'rate_limited', scope: 'address', limit: 'connections', retryAfter: 5 } })
      // Sockets still sending headers are counted apart: the app's pages are not refused.
      const page = await new Promise<number>((resolve, reject) => get({ host: '127.0.0.1', port: gated.port, path: '/', localAddress: address }, (response) => {
        response.resume()
        resolve(response.statusCode ?? 0)
      }).on('error', reject))
      expect(page).toBe(200)
    }
    finally {
      await Promise.all(guests.map(guest => guest.close()))
    }
  })

  it('an address with its 100 guests connected: signed-in people from it still connect (not yet identified is not a guest), the 101st guest is still refused', async () => {
    const room = uniqueRoom('fullsigned')
    const address = '127.0.0.4'
    const guests = await Promise.all(Array.from({ length: 100 }, () => ChatSocket.open(wsBase(gated), { room }, { localAddress: address })))
    const signedIn: ChatSocket[] = []
    try {
      // Over WebSocket and over SSE: both are identified only after their request counted as pending.
      const results = await Promise.all(Array.from({ length: 5 }, (_, index) => openOrRefused(`${wsBase(gated)}/_ws?room=${room}`, cookieOf(`full-${randomUUID().slice(0, 6)}-${index}`), address)))
      for (const result of results) if ('socket' in result) signedIn.push(result.socket)
      const history = await new Promise<number>((resolve, reject) => get({ host: '127.0.0.1', port: gated.port, path: `/api/sse?room=${room}&before=10`, localAddress: address, headers: cookieOf('full-history') }, (response) => {
        response.resume()
        resolve(response.statusCode ?? 0)
      }).on('error', reject))
      console.info(`[figures] 100 guests on one address, then 5 signed-in upgrades from it: ${signedIn.length} connected; ${results.filter(result => 'status' in result).map(result => JSON.stringify(result)).join(' ')}`)
      expect(results.filter(result => 'status' in result)).toEqual([])
      expect(history).toBe(200)
      expect(await openOrRefused(`${wsBase(gated)}/_ws?room=${room}`, {}, address)).toMatchObject({ status: 429, body: { scope: 'address', limit: 'connections' } })
    }
    finally {
      await Promise.all([...guests, ...signedIn].map(socket => socket.close()))
    }
  })
})
