/**
 * Web Push's part of the store (docs/PROTOCOL.md, "Notifications"): subscriptions per person (an
 * endpoint belongs to whoever subscribed it last, at most `max` each, the oldest going first) and
 * muted rooms (at most `max`), alike in memory, SQLite and PostgreSQL.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { closedAfterAll, roomLogBackends } from '../utils/roomLogs'

const opened = closedAfterAll()

describe.each(roomLogBackends('nuxt-chat-push-'))('push subscriptions and mutes in the room log: %s', (_name, create) => {
  const setup = () => {
    const log = create()
    opened.push(log)
    const tag = randomUUID().slice(0, 8)
    const sub = (uid: string, name: string, createdAt: number) => ({ uid, endpoint: `https://push.example.test/${tag}/${name}`, p256dh: `key-${name}`, auth: `auth-${name}`, createdAt })
    return { log, tag, sub }
  }

  it('keeps the newest `max` per person, moves an endpoint to whoever subscribed it last, forgets dead ones', async () => {
    const { log, tag, sub } = setup()
    const [ann, bob] = [`u-ann-${tag}`, `u-bob-${tag}`]
    await log.pushSubscribe(sub(ann, 'one', 1000), 2)
    await log.pushSubscribe(sub(ann, 'two', 2000), 2)
    await log.pushSubscribe(sub(ann, 'three', 3000), 2)
    expect((await log.pushSubscriptions(ann)).map(record => record.endpoint.split('/').pop())).toEqual(['two', 'three'])
    expect((await log.pushSubscriptions(ann))[1]).toEqual(sub(ann, 'three', 3000))
    // The same browser, now Bob's: Ann no longer has it.
    await log.pushSubscribe({ ...sub(bob, 'three', 4000), p256dh: 'new-key' }, 2)
    expect((await log.pushSubscriptions(ann)).map(record => record.endpoint.split('/').pop())).toEqual(['two'])
    expect(await log.pushSubscriptions(bob)).toEqual([{ ...sub(bob, 'three', 4000), p256dh: 'new-key' }])
    // Only its holder can end a subscription; a push service's 410 ends it for anyone.
    expect(await log.pushUnsubscribe(ann, sub(bob, 'three', 0).endpoint)).toBe(false)
    expect(await log.pushUnsubscribe(ann, sub(ann, 'two', 0).endpoint)).toBe(true)
    expect(await log.pushUnsubscribe(ann, sub(ann, 'two', 0).endpoint)).toBe(false)
    await log.pushForget(sub(bob, 'three', 0).endpoint)
    expect(await log.pushSubscriptions(bob)).toEqual([])
  })

  it('mutes rooms per person up to `max`, unmutes, lists them in order', async () => {
    const { log, tag } = setup()
    const [ann, bob] = [`u-ann-${tag}`, `u-bob-${tag}`]
    expect(await log.pushMute(ann, 'b-room', true, 2)).toBe(true)
    expect(await log.pushMute(ann, 'a-room', true, 2)).toBe(true)
    // Muting again is no new mute; a third one is past the bound.
    expect(await log.pushMute(ann, 'a-room', true, 2)).toBe(true)
    expect(await log.pushMute(ann, 'c-room', true, 2)).toBe(false)
    expect(await log.pushMutedRooms(ann, 10)).toEqual(['a-room', 'b-room'])
    expect(await log.pushMutedRooms(bob, 10)).toEqual([])
    expect(await log.pushMute(ann, 'b-room', false, 2)).toBe(true)
    expect(await log.pushMutedRooms(ann, 10)).toEqual(['a-room'])
    expect(await log.pushMutedRooms(ann, 0)).toEqual([])
  })
})
