/**
 * The metrics route (`metrics` option; the fixture turns it on, the playground leaves it off):
 * Prometheus text with connections, rooms, messages, refusals, store latency, bus state and
 * slow-reader drops, counted from real traffic; a token guards it; a Redis outage shows as
 * `nuxt_chat_bus_up 0` and the recovery as 1.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, postMessage, until } from '../utils/clients'
import { ownRedis } from '../utils/faults'
import { scrapeMetrics } from '../utils/metrics'
import { startServer, type TestServer } from '../utils/server'

const TOKEN = `scrape-${randomUUID()}`
let metered: TestServer
let open: TestServer
const uniqueRoom = (prefix = 'mt') => `${prefix}-${randomUUID().slice(0, 8)}`
const wsBase = (server: TestServer) => `ws://127.0.0.1:${server.port}`

/** Scrape a server: the samples by `name{labels}`. */
const scrape = (server: TestServer, token: string | undefined = TOKEN) => scrapeMetrics(server, token)

beforeAll(async () => {
  ;[metered, open] = await Promise.all([
    startServer({ env: { NUXT_CHAT_METRICS_TOKEN: TOKEN } }),
    startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_MAX_BUFFERED_BYTES: String(256 * 1024), NUXT_CHAT_MAX_LENGTH: '60000' } }),
  ])
})

afterAll(async () => {
  await Promise.all([metered?.stop(), open?.stop()])
})

describe('the metrics route', () => {
  it('answers 401 without the token, or with a wrong one', async () => {
    expect((await fetch(metered.url('/_chat/metrics'))).status).toBe(401)
    const wrong = await fetch(metered.url('/_chat/metrics'), { headers: { authorization: `Bearer ${TOKEN}x` } })
    expect(wrong.status).toBe(401)
    expect(await wrong.text()).not.toContain('nuxt_chat_')
  })

  it('counts connections, rooms, stored messages, refusals by code and store latency from real traffic', async () => {
    const before = await scrape(metered)
    const room = uniqueRoom()
    const a = await ChatSocket.open(wsBase(metered), { room, name: 'A' })
    const b = await ChatSocket.open(wsBase(metered), { room, name: 'B' })
    const c = await ChatSocket.open(wsBase(metered), { room: uniqueRoom(), name: 'C' })
    await b.waitFor(frame => frame.type === 'presence')
    await c.waitFor(frame => frame.type === 'presence')
    // A burst of 12 from one person: 10 stored, 2 rate_limited (burst 10). Raw text, so no
    // refusal is held back by the ordering rule (a held refusal is not a rate-limit decision).
    for (let i = 0; i < 12; i++) a.send(`m${i}`)
    await until(() => a.messages.length + a.frames.filter(frame => frame.type === 'error').length >= 12, 'answers to the burst')
    // A payload a poll room's schema refuses.
    const refused = await postMessage(metered.url('').replace(/\/$/, ''), { message: '{"question":""}' }, { room: uniqueRoom('poll') })
    expect(refused.status).toBe(400)

    const after = await scrape(metered)
    const grew = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0)
    expect(grew('nuxt_chat_connections')).toBe(3)
    expect(grew('nuxt_chat_rooms')).toBe(2)
    expect(grew('nuxt_chat_messages_stored_total')).toBe(a.messages.length)
    expect(a.messages.length).toBe(10)
    expect(grew('nuxt_chat_refusals_total{code="rate_limited"}')).toBe(2)
    expect(grew('nuxt_chat_refusals_total{code="bad_request"}')).toBe(1)
    expect(grew('nuxt_chat_store_append_seconds_count')).toBe(10)
    expect(grew('nuxt_chat_store_append_seconds_bucket{le="+Inf"}')).toBe(10)
    expect(after.get('nuxt_chat_store_append_seconds_sum')).toBeGreaterThan(before.get('nuxt_chat_store_append_seconds_sum') ?? 0)
    // Buckets are cumulative.
    expect(after.get('nuxt_chat_store_append_seconds_bucket{le="0.001"}')).toBeLessThanOrEqual(after.get('nuxt_chat_store_append_seconds_bucket{le="5"}')!)
    expect(after.get('nuxt_chat_bus_up{bus="local"}')).toBe(1)
    expect(after.get('nuxt_chat_ws_writes_total{path="fast"}')).toBeGreaterThan(0)

    await Promise.all([a.close(), b.close(), c.close()])
    await until(async () => (await scrape(metered)).get('nuxt_chat_connections') === before.get('nuxt_chat_connections'), 'the connections to be gone')
    expect((await scrape(metered)).get('nuxt_chat_rooms')).toBe(before.get('nuxt_chat_rooms'))
  })

  it('counts a slow reader dropped, and needs no token when none is set', async () => {
    const room = uniqueRoom('slow')
    const stalled = await ChatSocket.open(wsBase(open), { room, name: 'Stalled' })
    await stalled.waitFor(frame => frame.type === 'presence')
    const sender = await ChatSocket.open(wsBase(open), { room, name: 'Sender' })
    await sender.waitFor(frame => frame.type === 'presence' && (frame.users as unknown[]).length === 2)
    ;(stalled.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    const body = 'z'.repeat(50_000)
    // Until the kernel's buffers and then the 256 KiB allowance are full (bounded).
    for (let i = 0; i < 2000 && !sender.frames.some(frame => frame.message === 'Stalled left!'); i++) {
      sender.send(`${i} ${body}`)
      if (i % 20 === 19) await until(() => sender.messages.length >= i - 40, 'echoes', 20_000)
    }
    await sender.waitFor(frame => frame.message === 'Stalled left!', 'the stalled reader dropped')
    expect((await scrape(open, '')).get('nuxt_chat_slow_reader_drops_total')).toBe(1)
    ;(stalled.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
    await sender.close()
  })

  it('shows the Redis bus down while its Redis is stopped, and up again after', async () => {
    const redis = await ownRedis()
    const server = await startServer({ env: { NUXT_CHAT_METRICS_TOKEN: TOKEN, NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_RATE_LIMIT: 'false' } })
    try {
      const room = uniqueRoom('bus')
      const socket = await ChatSocket.open(wsBase(server), { room })
      await until(async () => (await scrape(server)).get('nuxt_chat_bus_up{bus="redis"}') === 1, 'the bus up')
      await redis.stop()
      // The bus notices at its next use: messages keep being stored meanwhile.
      let sent = 0
      await until(async () => {
        socket.send(`while down ${sent++}`)
        return (await scrape(server)).get('nuxt_chat_bus_up{bus="redis"}') === 0
      }, 'the bus down', 15_000)
      await redis.start()
      await until(async () => (await scrape(server)).get('nuxt_chat_bus_up{bus="redis"}') === 1, 'the bus up again', 15_000)
      await socket.close()
    }
    finally {
      await server.stop()
      await redis.stop()
    }
  })
})

describe('off by default', () => {
  it('the playground (no metrics option) serves no metrics', async () => {
    const playground = await startServer({ output: 'playground' })
    try {
      const response = await fetch(playground.url('/_chat/metrics'))
      expect(response.status).toBe(404)
      expect(await response.text()).not.toContain('nuxt_chat_')
    }
    finally {
      await playground.stop()
    }
  })
})
