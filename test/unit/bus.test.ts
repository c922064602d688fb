import { randomUUID } from 'node:crypto'
import { consola } from 'consola'
import { describe, expect, it } from 'vitest'
import { decodeBusEvent, deploymentChannel, encodeBusEvent, type BusEvent } from '../../src/runtime/server/utils/bus'
import { createRedisBus } from '../../src/runtime/server/utils/bus.redis'
import { until } from '../utils/clients'
import { ownRedis } from '../utils/faults'

describe('bus channel per deployment', () => {
  const sqlite = (path: string) => ({ storage: 'database', connector: 'node-sqlite', options: { path } })

  it('is the same for instances of one database, different for different databases', () => {
    expect(deploymentChannel(sqlite('.data/chat.sqlite'), '/srv/a')).toBe(deploymentChannel(sqlite('/srv/a/.data/chat.sqlite'), '/srv/b'))
    expect(deploymentChannel(sqlite('.data/chat.sqlite'), '/srv/a')).not.toBe(deploymentChannel(sqlite('.data/chat.sqlite'), '/srv/b'))
    const pg = (url: string) => ({ storage: 'database', connector: 'postgresql', options: { url } })
    expect(deploymentChannel(pg('postgresql://db/one'), '/a')).toBe(deploymentChannel(pg('postgresql://db/one'), '/b'))
    // The module's default SQLite `path` merged into PostgreSQL options must not split instances by working directory.
    const pgWithPath = { storage: 'database', connector: 'postgresql', options: { url: 'postgresql://db/one', path: '.data/chat.sqlite' } }
    expect(deploymentChannel(pgWithPath, '/a')).toBe(deploymentChannel(pgWithPath, '/b'))
    expect(deploymentChannel(pg('postgresql://db/one'), '/a')).not.toBe(deploymentChannel(pg('postgresql://db/two'), '/a'))
    expect(deploymentChannel({ storage: 'memory' }, '/a')).not.toBe(deploymentChannel({ storage: 'memory' }, '/b'))
    expect(deploymentChannel(sqlite('x.sqlite'), '/a')).toMatch(/^nuxt-chat:[\w-]{16}$/)
  })
})

describe('bus events', () => {
  it('every kind round-trips with its own fields, on the wire format of earlier versions (an id, 0 where none; a frame, a user id or nothing)', () => {
    const events: [BusEvent, string][] = [
      [{ kind: 'message', room: 'r', id: 7, frame: '{"id":7}' }, 'message o r 7\n{"id":7}'],
      [{ kind: 'sync', room: 'r', id: 9 }, 'sync o r 9\n'],
      [{ kind: 'system', room: 'r', frame: '{}' }, 'system o r 0\n{}'],
      [{ kind: 'typing', room: 'r', frame: '{}' }, 'typing o r 0\n{}'],
      [{ kind: 'presence', room: 'r', frame: '[]' }, 'presence o r 0\n[]'],
      [{ kind: 'presence?', room: 'r' }, 'presence? o r 0\n'],
      [{ kind: 'read', room: 'r', frame: '{}' }, 'read o r 0\n{}'],
      [{ kind: 'member', room: 'r', frame: '{}' }, 'member o r 0\n{}'],
      [{ kind: 'disconnect', room: 'r', uid: 'u-1' }, 'disconnect o r 0\nu-1'],
      [{ kind: 'forget', room: 'r', uid: 'u-1' }, 'forget o r 0\nu-1'],
    ]
    for (const [event, wire] of events) {
      expect(encodeBusEvent(event, 'o'), event.kind).toBe(wire)
      expect(decodeBusEvent(wire), event.kind).toEqual({ event, origin: 'o' })
    }
  })

  it('round-trip, and anything that does not belong is ignored', () => {
    const event = { kind: 'message' as const, room: 'r', id: 7, frame: '{"a":"b\\nc"}' }
    expect(decodeBusEvent(encodeBusEvent(event, 'origin'))).toEqual({ event, origin: 'origin' })
    for (const data of ['message o r abc\n{}', 'message o r 0\n{}', 'sync o r -1\n', 'message o r 1 extra\n{}', 'unknown o r 1\n{}', 'no newline', 'message o r 1e3\n{}']) {
      expect(decodeBusEvent(data), data).toBeUndefined()
    }
  })
})

describe('Redis bus', () => {
  it('counts its first connect as a recovery, so what it could not publish while connecting is caught up', async () => {
    const channel = `nuxt-chat-test:${randomUUID()}`
    const a = createRedisBus('redis://127.0.0.1:6379', { channel, instanceId: 'a', logger: consola })
    const b = createRedisBus('redis://127.0.0.1:6379', { channel, instanceId: 'b', logger: consola })
    const bUp = new Promise(resolve => b.onRecover(() => resolve(undefined)))
    try {
      const event: BusEvent = { kind: 'message', room: 'r', id: 1, frame: '{}' }
      // Still connecting: refused (the hub remembers the room), never silently dropped.
      expect(a.publish(event)).toBe(false)
      const recovered = await new Promise<boolean>((resolve) => {
        a.onRecover(() => resolve(true))
        setTimeout(resolve, 3000, false)
      })
      expect(recovered).toBe(true)
      const received: BusEvent[] = []
      b.onEvent(event => received.push(event))
      await bUp
      expect(a.publish(event)).toBe(true)
      const deadline = Date.now() + 2000
      while (!received.length && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
      expect(received).toEqual([event])
    }
    finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  it('tells, with the reason, when its connection is lost, before anything is published', async () => {
    const redis = await ownRedis()
    const bus = createRedisBus(redis.url, { channel: `nuxt-chat-test:${randomUUID()}`, instanceId: 'a', logger: consola })
    const reasons: string[] = []
    bus.onDown?.(reason => reasons.push(reason))
    try {
      await new Promise(resolve => bus.onRecover(() => resolve(undefined)))
      expect(reasons).toEqual([])
      await redis.stop()
      await until(() => reasons.length > 0, 'the bus to tell it is down')
      expect(reasons[0]).toMatch(/\S/)
    }
    finally {
      await bus.close()
      await redis.stop()
    }
  })
})
