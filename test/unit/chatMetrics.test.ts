/**
 * The counters behind the metrics route and the DevTools tab: a real hub on a memory store,
 * wrapped as useChatHub wraps it; the Prometheus text; secrets masked for the tab.
 */
import { createHooks } from 'hookable'
import { consola } from 'consola'
import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../src/runtime/types'
import { createLocalBus, type ChatBus } from '../../src/runtime/server/utils/bus'
import { chatMetrics, connectionCount, onChatEvent, renderPrometheus, withBusMetrics, withHubMetrics, withStoreMetrics } from '../../src/runtime/server/utils/chatMetrics'
import { createRedisBus } from '../../src/runtime/server/utils/bus.redis'
import { createChatHub, type Member } from '../../src/runtime/server/utils/hub'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'
import { describeStore, devtoolsSnapshot, maskUrl } from '../../src/runtime/server/devtools/status'
import { REDIS_URL } from '../utils/server'

const config = {
  replay: 50, maxReplay: 1000, maxLength: 2000, history: { max: 10_000, maxAge: 0 }, rateLimit: { messages: 1, interval: 60_000, burst: 2 }, rateLimitPerIp: false, presenceInterval: 60_000, presenceWait: 500,
  storage: 'memory', database: false, redisUrl: '',
} as unknown as ChatRuntimeConfig

const member = (id: string): Member => ({ user: { id, name: id.toUpperCase() }, sender: id, write: () => {} })
const hubs: { close: () => Promise<void> }[] = []

function meteredHub(store: RoomLog = createMemoryRoomLog()) {
  const hub = withHubMetrics(createChatHub({ config, store: withStoreMetrics(store), bus: withBusMetrics(createLocalBus(), 'local'), hooks: createHooks<ChatRuntimeHooks>(), logger: consola }))
  hubs.push(hub)
  return hub
}

/** The value of one sample in the Prometheus text. */
function sample(text: string, key: string): number | undefined {
  const line = text.split('\n').find(line => line.startsWith(`${key} `))
  return line === undefined ? undefined : Number(line.slice(key.length + 1))
}

afterEach(async () => {
  await Promise.all(hubs.splice(0).map(hub => hub.close()))
})

describe('hub metrics', () => {
  it('count connections per room, stored messages and bytes, refusals by code, and store time; events reach listeners', async () => {
    const before = { stored: chatMetrics.messagesStored, bytes: chatMetrics.bytesStored, limited: chatMetrics.refusals.get('rate_limited') ?? 0, appends: chatMetrics.appends.count, connections: connectionCount() }
    const events: string[] = []
    const stop = onChatEvent((room, event) => events.push(`${room} ${event.kind}`))
    const hub = meteredHub()
    const [a, b] = [member('a'), member('b')]
    await hub.join('m1', a, undefined)
    await hub.join('m1', b, undefined)
    expect(connectionCount() - before.connections).toBe(2)
    expect(chatMetrics.members.get('m1')?.size).toBe(2)

    for (const message of ['héllo', 'two', 'three']) await hub.send({ room: 'm1', user: a.user, sender: 'a', message })
    expect(chatMetrics.messagesStored - before.stored).toBe(2)
    expect(chatMetrics.bytesStored - before.bytes).toBe(6 + 3)
    expect((chatMetrics.refusals.get('rate_limited') ?? 0) - before.limited).toBe(1)
    expect(chatMetrics.appends.count - before.appends).toBe(2)

    hub.leave('m1', a)
    hub.leave('m1', a) // twice: counted once
    hub.leave('m1', b)
    expect(chatMetrics.members.has('m1')).toBe(false)
    expect(connectionCount()).toBe(before.connections)
    stop()
    expect(events).toEqual(['m1 join', 'm1 join', 'm1 message', 'm1 message', 'm1 refused', 'm1 leave', 'm1 leave'])
  })

  it('serialise a stored frame for the event listeners only while one listens', async () => {
    const spy = vi.spyOn(JSON, 'stringify')
    const serialised = (text: string) => spy.mock.calls.filter(([value]) => (value as { message?: unknown } | undefined)?.message === text).length
    const hub = meteredHub()
    await hub.send({ room: 'm3', user: { id: 'q', name: 'Q' }, sender: 'q', message: 'nobody listens' })
    const stop = onChatEvent(() => {})
    await hub.send({ room: 'm3', user: { id: 'q', name: 'Q' }, sender: 'q', message: 'a listener' })
    stop()
    const extra = serialised('a listener') - serialised('nobody listens')
    spy.mockRestore()
    expect(extra).toBe(1)
  })

  it('count a failed append and remember the store\'s last error, but not a value the store refused', async () => {
    const failures = chatMetrics.appends.failures
    const broken = { ...createMemoryRoomLog(), append: async () => {
      throw new Error('disk full')
    } } as RoomLog
    const hub = meteredHub(broken)
    const result = await hub.send({ room: 'm2', user: { id: 'c', name: 'C' }, sender: 'c', message: 'x' })
    expect(result.error?.code).toBe('unavailable')
    expect(chatMetrics.appends.failures - failures).toBe(1)
    expect(chatMetrics.store.lastError).toBe('disk full')
    const refused = await meteredHub().send({ room: 'm2', user: { id: 'c2', name: 'C' }, sender: 'c2', message: 'ok', cid: 'bad cid!' })
    expect(refused.error?.code).toBe('bad_request')
    expect(chatMetrics.appends.failures - failures).toBe(1)
  })
})

describe('bus metrics', () => {
  it('follow the bus: down when a publish is dropped, up again on recovery', () => {
    let up = false
    let recover = () => {}
    const redisLike: ChatBus = { publish: () => up, onEvent() {}, onRecover: (listener) => {
      recover = listener
    }, close: async () => {} }
    const bus = withBusMetrics(redisLike, 'redis')
    expect(chatMetrics.bus).toMatchObject({ kind: 'redis', up: false })
    up = true
    recover()
    expect(chatMetrics.bus.up).toBe(true)
    up = false
    expect(bus.publish({ kind: 'typing', room: 'r', frame: '' })).toBe(false)
    expect(chatMetrics.bus.up).toBe(false)
    expect(chatMetrics.bus.lastError).toBe('an event was dropped: the bus is down')
    expect(renderPrometheus()).toContain('nuxt_chat_bus_up{bus="redis"} 0')
    up = true
    recover()
    expect(renderPrometheus()).toContain('nuxt_chat_bus_up{bus="redis"} 1')
    withBusMetrics(createLocalBus(), 'local')
  })

  it('follow the connection: down with its reason and time as soon as it is lost, before any publish', () => {
    let recover = () => {}
    let lose = (_reason: string) => {}
    const redisLike: ChatBus = { publish: () => true, onEvent() {}, onRecover: (listener) => {
      recover = listener
    }, onDown: (listener) => {
      lose = listener
    }, close: async () => {} }
    withBusMetrics(redisLike, 'redis')
    recover()
    expect(chatMetrics.bus.up).toBe(true)
    const before = Date.now()
    lose('connect ECONNREFUSED 127.0.0.1:6390')
    expect(chatMetrics.bus).toMatchObject({ up: false, lastError: 'connect ECONNREFUSED 127.0.0.1:6390' })
    expect(chatMetrics.bus.lastErrorAt).toBeGreaterThanOrEqual(before)
    expect(renderPrometheus()).toContain('nuxt_chat_bus_up{bus="redis"} 0')
    recover()
    expect(chatMetrics.bus.up).toBe(true)
    withBusMetrics(createLocalBus(), 'local')
  })
})

describe('the Prometheus text', () => {
  it('declares every metric once with HELP and TYPE, and the histogram is cumulative up to +Inf = count', async () => {
    const hub = meteredHub()
    await hub.send({ room: 'm3', user: { id: 'd', name: 'D' }, sender: 'd', message: 'x' })
    const text = renderPrometheus()
    const types = text.split('\n').filter(line => line.startsWith('# TYPE')).map(line => line.split(' ')[2])
    expect(new Set(types).size).toBe(types.length)
    expect(types).toContain('nuxt_chat_store_append_seconds')
    const buckets = text.split('\n').filter(line => line.startsWith('nuxt_chat_store_append_seconds_bucket')).map(line => Number(line.split(' ')[1]))
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y))
    expect(buckets.at(-1)).toBe(sample(text, 'nuxt_chat_store_append_seconds_count'))
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{\w+="[^"]*"(,\w+="[^"]*")*\})? \d+(\.\d+)?(e-?\d+)?)$/)
  })
})

describe('the DevTools status', () => {
  it('masks passwords and secret-looking options', () => {
    expect(maskUrl('redis://user:hunter2@cache:6379/0')).toBe('redis://user:***@cache:6379/0')
    expect(maskUrl('postgresql://app:s3cret@db/chat?sslmode=require&password=x')).toBe('postgresql://app:***@db/chat?sslmode=require&password=***')
    expect(describeStore({ storage: 'database', database: { connector: 'postgresql', options: { url: 'postgresql://app:s3cret@db/chat', password: 'p' } } }))
      .toEqual({ backend: 'postgresql', where: 'url=postgresql://app:***@db/chat, password=***' })
    expect(describeStore({ storage: 'database', database: { connector: 'node-sqlite', options: { path: '.data/chat.sqlite' } } })).toEqual({ backend: 'node-sqlite', where: 'path=".data/chat.sqlite"' })
    expect(describeStore({ storage: 'memory', database: false })).toEqual({ backend: 'memory', where: 'process memory' })
    // A libpq connection string and secrets nested in an option object.
    expect(describeStore({ storage: 'database', database: { connector: 'postgresql', options: { connectionString: 'host=db user=app password=s3cret dbname=chat', ssl: { rejectUnauthorized: true, key: 'PRIVATE' } } } }))
      .toEqual({ backend: 'postgresql', where: 'connectionString="host=db user=app password=*** dbname=chat", ssl={"rejectUnauthorized":true,"key":"***"}' })
    // `auth` anywhere in a key (but rejectUnauthorized), spaces around `=` (libpq allows them), and every secret-looking key in both places.
    const options = {
      basicAuth: 'user:pw',
      connectionString: `host=db password = hunter2 sslpassword= 'p w' token =t1 dsn=x authtoken=y sslmode=require`,
      ssl: { rejectUnauthorized: false, pfx: 'PFX', passphrase: 'pp', credentials: { id: 'c' } },
      dsn: 'd',
      apiToken: 't',
      clientSecret: 's',
    }
    expect(describeStore({ storage: 'database', database: { connector: 'postgresql', options } }).where).toBe([
      'basicAuth=***',
      `connectionString="host=db password = *** sslpassword= *** token =*** dsn=*** authtoken=*** sslmode=require"`,
      'ssl={"rejectUnauthorized":false,"pfx":"***","passphrase":"***","credentials":"***"}',
      'dsn=***', 'apiToken=***', 'clientSecret=***',
    ].join(', '))
    expect(maskUrl('postgresql://db/chat?authToken=a&dsn=b&sslmode=require')).toBe('postgresql://db/chat?authToken=***&dsn=***&sslmode=require')
  })

  it('lists rooms with who is online, one entry per user however many connections', async () => {
    const hub = meteredHub()
    const [a1, a2, g] = [member('a'), member('a'), { ...member('guest:x'), user: { id: 'guest:x', name: 'Gus', guest: true as const } }]
    for (const m of [a1, a2, g]) await hub.join('snap', m, undefined)
    const room = (await devtoolsSnapshot({ ...config, redisUrl: 'redis://:pw@r:6379' }, hub.presence)).rooms.find(entry => entry.name === 'snap')
    expect(room).toEqual({ name: 'snap', connections: 3, online: [{ id: 'a', name: 'A', guest: false, connections: 2 }, { id: 'guest:x', name: 'Gus', guest: true, connections: 1 }], elsewhere: [] })
    expect((await devtoolsSnapshot({ ...config, redisUrl: 'redis://:pw@r:6379' })).bus.where).toBe('redis://:***@r:6379')
    for (const m of [a1, a2, g]) hub.leave('snap', m)
  })

  it('lists who is online only on another instance (over a real Redis bus)', async () => {
    const channel = `nuxt-chat-test:${randomUUID()}`
    const [busHere, busThere] = ['here', 'there'].map(instanceId => createRedisBus(REDIS_URL, { channel, instanceId, logger: consola }))
    // Both connected first: presence announced before would be dropped.
    await Promise.all([busHere, busThere].map(bus => new Promise(resolve => bus!.onRecover(() => resolve(undefined)))))
    const there = createChatHub({ config, store: createMemoryRoomLog(), bus: busThere!, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    // Only this instance's hub is metered, as useChatHub meters the one hub of its process.
    const here = withHubMetrics(createChatHub({ config, store: createMemoryRoomLog(), bus: busHere!, hooks: createHooks<ChatRuntimeHooks>(), logger: consola }))
    hubs.push(there, here)
    const room = `elsewhere-${randomUUID().slice(0, 8)}`
    await there.join(room, member('bob'), undefined)
    await here.join(room, member('ann'), undefined)
    // Bob is announced over Redis when Ann's room asks who is there.
    await expect.poll(async () => (await devtoolsSnapshot(config, here.presence)).rooms.find(entry => entry.name === room), { timeout: 10_000 })
      .toEqual({ name: room, connections: 1, online: [{ id: 'ann', name: 'ANN', guest: false, connections: 1 }], elsewhere: [{ id: 'bob', name: 'BOB', guest: false }] })
  })
})
