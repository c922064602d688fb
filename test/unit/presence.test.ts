import { afterEach, describe, expect, it, vi } from 'vitest'
import type { BusEvent, ChatBus } from '../../src/runtime/server/utils/bus'
import { createRoomPresence } from '../../src/runtime/server/utils/presence'
import { createPresenceQueries, usersOf, type PresenceQuery } from '../../src/runtime/server/utils/presenceQueries'

describe('room presence', () => {
  it('knows the signed-in names online as users come and go and announcements expire', () => {
    const presence = createRoomPresence('r')
    const alice = { id: 'a', name: 'Alice' }
    presence.connect(alice)
    presence.connect({ id: 'guest:x', name: 'Guest', guest: true })
    expect(presence.signedInNames()).toEqual(['Alice'])
    presence.connect({ id: 'b', name: 'Bob' })
    expect(presence.signedInNames()).toEqual(['Alice', 'Bob'])
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() + 50)
    expect(presence.signedInNames()).toEqual(['Alice', 'Bob', 'Carol'])
    presence.connect(alice)
    presence.disconnect(alice)
    expect(presence.signedInNames()).toEqual(['Alice', 'Bob', 'Carol'])
    presence.disconnect(alice)
    expect(presence.signedInNames()).toEqual(['Bob', 'Carol'])
    // Carol's instance went quiet: her announcement expires without any other change here.
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() - 1)
    expect(presence.signedInNames()).toEqual(['Bob'])
  })

  it('counts every connection of a user: only the last to leave takes the user offline', () => {
    const presence = createRoomPresence('r')
    const alice = { id: 'a', name: 'Alice' }
    expect([presence.connect(alice), presence.connect(alice), presence.connect(alice)]).toEqual([true, false, false])
    expect([presence.disconnect(alice), presence.disconnect(alice)]).toEqual([false, false])
    expect(presence.localUsers()).toEqual([alice])
    expect(presence.disconnect(alice)).toBe(true)
    expect(presence.localUsers()).toEqual([])
    expect(presence.disconnect(alice)).toBe(false)
    expect(presence.connect(alice)).toBe(true)
  })

  it('keeps every user, tab count and diff right as a room grows past a small room and empties again', () => {
    const presence = createRoomPresence('r')
    const users = Array.from({ length: 45 }, (_, i) => ({ id: `u${i}`, name: `User ${i}` }))
    const diff = () => JSON.parse(presence.diffFrame() ?? 'null') as { joins: { id: string }[], leaves: { id: string }[], count: number } | null
    for (const user of users.slice(0, 20)) expect(presence.connect(user)).toBe(true)
    expect(diff()).toMatchObject({ count: 20, leaves: [] })
    // A second tab: not a join, and its close is not a leave.
    expect(presence.connect(users[3]!)).toBe(false)
    for (const user of users.slice(20)) expect(presence.connect(user)).toBe(true)
    expect(diff()?.joins.map(user => user.id)).toEqual(users.slice(20).map(user => user.id))
    expect(presence.online().map(user => user.id)).toEqual(users.map(user => user.id))
    expect(presence.disconnect(users[3]!)).toBe(false)
    expect(presence.disconnect(users[3]!)).toBe(true)
    expect(presence.disconnect(users[3]!)).toBe(false)
    expect(diff()).toMatchObject({ joins: [], leaves: [{ id: 'u3' }], count: 44 })
    for (const user of users) presence.disconnect(user)
    expect(presence.localUsers()).toEqual([])
    expect(diff()).toMatchObject({ joins: [], count: 0 })
    // Empty again: a small room once more, that counts as before.
    expect([presence.connect(users[0]!), presence.connect(users[0]!), presence.disconnect(users[0]!)]).toEqual([true, false, false])
    expect(presence.localUsers()).toEqual([users[0]])
    expect(JSON.parse(presence.fullFrame())).toMatchObject({ type: 'presence', room: 'r', users: [] })
    expect(diff()).toMatchObject({ joins: [{ id: 'u0' }], count: 1 })
    expect(JSON.parse(presence.fullFrame())).toMatchObject({ users: [{ id: 'u0', name: 'User 0' }] })
  })

  it('a storm of guests into one room looks at each user a bounded number of times (no list of signed-in names per join)', () => {
    const presence = createRoomPresence('r')
    let looks = 0
    // Guests whose `guest` flag counts its reads: every look at a user in the list goes through it.
    const guest = (i: number) => ({ id: `guest:${i}`, name: `Guest ${i}`, get guest() {
      looks++
      return true as const
    } })
    const count = 3000
    // As a guest's join asks (the names it may not take), after every join.
    for (let i = 0; i < count; i++) {
      presence.connect(guest(i))
      expect(presence.signedInNames()).toEqual([])
    }
    // Before: every join made the list again from all users (~4.5 million looks).
    expect(looks).toBeLessThanOrEqual(2 * count)
    presence.connect({ id: 'a', name: 'Alice' })
    expect(presence.signedInNames()).toEqual(['Alice'])
    presence.disconnect({ id: 'a', name: 'Alice' })
    expect(presence.signedInNames()).toEqual([])
  })

  it('drops an announcement once it expires, with nothing else changing', async () => {
    const presence = createRoomPresence('r')
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() + 20)
    expect(presence.signedInNames()).toEqual(['Carol'])
    await new Promise(resolve => setTimeout(resolve, 40))
    expect(presence.signedInNames()).toEqual([])
  })
})

describe('createPresenceQueries (issue 22, finding 7)', () => {
  /** A bus that records what it published; `peers` answers with `count` (or fails). */
  function fakeBus(count: number | Error, up = true) {
    const published: BusEvent[] = []
    const bus: ChatBus = {
      publish: (event) => {
        published.push(event)
        return up
      },
      onEvent() {},
      onRecover() {},
      close: async () => {},
      peers: async () => {
        if (count instanceof Error) throw count
        return count
      },
    }
    return { bus, published }
  }
  const settledAfter = async (query: PresenceQuery) => {
    for (let i = 0; i < 5; i++) await Promise.resolve()
    return query.settled
  }

  afterEach(() => {
    vi.useRealTimers()
  })

  it('asks once per room and settles as soon as every other instance answered, empty answers included', async () => {
    vi.useFakeTimers()
    const { bus, published } = fakeBus(2)
    const queries = createPresenceQueries({ bus, wait: 500 })
    const query = queries.ask('r')!
    expect(queries.ask('r')).toBe(query)
    expect(published).toEqual([{ kind: 'presence?', room: 'r' }])
    queries.heard('r', 'a', [{ id: 'u1', name: 'Alice' }])
    expect(await settledAfter(query)).toBe(false)
    queries.heard('r', 'b', [])
    expect(await settledAfter(query)).toBe(true)
    expect(usersOf(query)).toEqual([{ id: 'u1', name: 'Alice' }])
    // Still fresh for a join right after (a name check asked first): no second question.
    expect(queries.ask('r')).toBe(query)
    vi.advanceTimersByTime(500)
    expect(queries.ask('r')).not.toBe(query)
  })

  it('settles after the bound when an instance never answers, at once when the bus cannot count, and never asks a bus that is down', async () => {
    vi.useFakeTimers()
    const silent = createPresenceQueries({ bus: fakeBus(3).bus, wait: 500 })
    const waiting = silent.ask('r')!
    silent.heard('r', 'a', [])
    vi.advanceTimersByTime(499)
    expect(await settledAfter(waiting)).toBe(false)
    vi.advanceTimersByTime(1)
    expect(await settledAfter(waiting)).toBe(true)

    const failing = createPresenceQueries({ bus: fakeBus(new Error('BUSY')).bus, wait: 500 })
    expect(await settledAfter(failing.ask('r')!)).toBe(true)

    const down = fakeBus(1, false)
    expect(createPresenceQueries({ bus: down.bus, wait: 500 }).ask('r')).toBeUndefined()
    expect(createPresenceQueries({ bus: { ...fakeBus(1).bus, alone: true }, wait: 500 }).ask('r')).toBeUndefined()
  })
})
