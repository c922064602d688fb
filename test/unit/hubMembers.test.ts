/**
 * The hub's side of rooms with members (docs/PROTOCOL.md, "Admission"): a `member` bus event from
 * another instance closes the removed person's connections here, and connections let in while
 * the store was down since boot are checked again once it answers.
 */
import { createHooks } from 'hookable'
import { consola } from 'consola'
import { describe, expect, it, vi } from 'vitest'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../src/runtime/types'
import type { BusEvent, ChatBus } from '../../src/runtime/server/utils/bus'
import { createChatHub, type Member } from '../../src/runtime/server/utils/hub'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { ChatAdmission } from '../../src/runtime/server/utils/access'

const config = {
  replay: 50, maxReplay: 1000, maxLength: 2000, history: { max: 10_000, maxAge: 0 }, rateLimit: false, presenceInterval: 60_000,
} as ChatRuntimeConfig

function testBus() {
  let onEvent: (event: BusEvent, origin: string) => void = () => {}
  const bus: ChatBus = { publish: () => true, onEvent: listener => void (onEvent = listener), onRecover() {}, close: async () => {} }
  return { bus, inject: (event: BusEvent) => onEvent(event, 'other-instance') }
}

function testMember(id: string) {
  const closed: { code?: number, reason?: string }[] = []
  const written: Record<string, unknown>[] = []
  const member: Member & { closed: typeof closed, written: typeof written } = { user: { id, name: id }, sender: id, closed, written, write: frame => void written.push(JSON.parse(frame.text)), close: (code, reason) => void closed.push({ code, reason }) }
  return member
}

/** Two instances' buses: what one publishes the other hears a moment later, in order. */
function linkedBuses(): [ChatBus, ChatBus] {
  const listeners: ((event: BusEvent, origin: string) => void)[] = [() => {}, () => {}]
  const busOf = (self: number): ChatBus => ({
    publish: (event) => {
      setImmediate(() => listeners[1 - self]!(event, `instance-${self}`))
      return true
    },
    onEvent: listener => void (listeners[self] = listener),
    onRecover() {},
    close: async () => {},
  })
  return [busOf(0), busOf(1)]
}

const admission = (room: string, id: string): ChatAdmission => ({ room, user: { id, name: id }, sender: id, createsReadPosition: false })

describe('hub: memberships on every instance', () => {
  it('a member event from another instance closes the person\'s connections to that room here (4003), and only theirs', async () => {
    const store = createMemoryRoomLog()
    const { bus, inject } = testBus()
    const hub = createChatHub({ config, store, bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    const banned = testMember('u-bob')
    const other = testMember('u-carol')
    await hub.join('team', banned, undefined)
    await hub.join('team', other, undefined)
    inject({ kind: 'member', room: 'team', frame: JSON.stringify({ type: 'member', room: 'team', uid: 'u-bob', role: 'member', banned: true, removed: true }) })
    expect(banned.closed).toEqual([{ code: 4003, reason: 'Banned from the room' }])
    expect(other.closed).toEqual([])
    // A malformed event changes nothing.
    inject({ kind: 'member', room: 'team', frame: '{"type":"member","room":"elsewhere","uid":"u-carol","removed":true}' })
    expect(other.closed).toEqual([])
    await hub.close()
  })

  it('a welcome carries the newcomer\'s role and mute; a membership change from another instance reaches that person\'s connections here, and nobody else\'s', async () => {
    const store = createMemoryRoomLog()
    const { bus, inject } = testBus()
    const hub = createChatHub({ config, store, bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    const mutedUntil = Date.now() + 60_000
    await store.createRoom({ id: 'team', title: 'Team', topic: '', visibility: 'public', kind: 'room', createdBy: 'u-alice', createdAt: 1 })
    await store.saveMember({ room: 'team', uid: 'u-alice', role: 'owner', joinedAt: 1 })
    await store.saveMember({ room: 'team', uid: 'u-bob', role: 'member', joinedAt: 1, mutedUntil })
    const [alice, bob, carol, bobElsewhere] = [testMember('u-alice'), testMember('u-bob'), testMember('u-carol'), testMember('u-bob')]
    for (const [room, member] of [['team', alice], ['team', bob], ['team', carol], ['other', bobElsewhere]] as const) {
      await hub.admitToRoom(admission(room, member.user.id))
      await hub.join(room, member, undefined)
    }
    expect(alice.written[0]).toMatchObject({ event: 'welcome', role: 'owner' })
    expect(alice.written[0]).not.toHaveProperty('mutedUntil')
    expect(bob.written[0]).toMatchObject({ event: 'welcome', role: 'member', mutedUntil })
    // No membership (a public room), and a room without a record: neither field.
    for (const member of [carol, bobElsewhere]) expect(Object.keys(member.written[0]!)).toEqual(['type', 'event', 'room', 'user', 'message', 'peer'])

    const promoted = { type: 'member', room: 'team', uid: 'u-bob', role: 'moderator' }
    const seen = [alice, bob, carol, bobElsewhere].map(member => member.written.length)
    inject({ kind: 'member', room: 'team', frame: JSON.stringify(promoted) })
    expect(bob.written.slice(seen[1])).toEqual([promoted])
    for (const [index, member] of [[0, alice], [2, carol], [3, bobElsewhere]] as const) expect(member.written.slice(seen[index])).toEqual([])
    await hub.close()
  })

  it('a join admitted before its person was removed from a private room makes no membership again as it completes', async () => {
    const store = createMemoryRoomLog()
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    await store.createRoom({ id: 'staff', title: 'Staff', topic: '', visibility: 'private', kind: 'room', createdBy: 'u-alice', createdAt: 1 })
    await store.saveMember({ room: 'staff', uid: 'u-alice', role: 'owner', joinedAt: 1 })
    await store.saveMember({ room: 'staff', uid: 'u-bob', role: 'member', joinedAt: 1 })
    await hub.admitToRoom(admission('staff', 'u-bob'))
    // The removal lands between the admission and the end of the join (a `remove` sent with the `join`).
    expect(await hub.moderate('staff', { type: 'remove', user: 'u-bob' }, { id: 'u-alice', name: 'u-alice' })).toHaveProperty('frame')
    const bob = testMember('u-bob')
    await hub.join('staff', bob, undefined, undefined, true)
    await new Promise(resolve => setTimeout(resolve, 20))
    // Before, the join's first read position made him a member again: his next join was let in, with what was said after.
    expect(await store.member('staff', 'u-bob')).toBeUndefined()
    await expect(hub.admitToRoom(admission('staff', 'u-bob'))).rejects.toMatchObject({ status: 403 })
    await hub.close()
  })

  it('a join the admission did not just decide (nothing cached) is welcomed at once, its membership following as a member frame', async () => {
    const store = createMemoryRoomLog()
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    await store.createRoom({ id: 'team', title: 'Team', topic: '', visibility: 'public', kind: 'room', createdBy: 'u-alice', createdAt: 1 })
    await store.saveMember({ room: 'team', uid: 'u-alice', role: 'owner', joinedAt: 1 })
    const alice = testMember('u-alice')
    await hub.join('team', alice, undefined)
    expect(alice.written[0]).toMatchObject({ event: 'welcome' })
    expect(alice.written).toContainEqual({ type: 'member', room: 'team', uid: 'u-alice', role: 'owner' })
    await hub.close()
  })

  it('a direct room made on another instance reaches a rooms list here even when its members are heard before its record', async () => {
    const store = createMemoryRoomLog()
    const [busA, busB] = linkedBuses()
    // Instance A's record lands after its members' events (and their read positions') reach B: the order a slow database gives.
    const slowRecords = { ...store, createRoom: async (record: Parameters<typeof store.createRoom>[0]) => (await new Promise(resolve => setTimeout(resolve, 100)), store.createRoom(record)) }
    const a = createChatHub({ config, store: slowRecords, bus: busA, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    const b = createChatHub({ config, store, bus: busB, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    const listed: Record<string, unknown>[] = []
    await b.watchRooms({ user: { id: 'u-bob', name: 'u-bob' }, write: frame => void listed.push(JSON.parse(frame.text)) }, { person: 'u-bob' })
    const { id } = await a.directRoom('u-alice', 'u-bob')
    await vi.waitFor(() => expect(listed).toContainEqual(expect.objectContaining({ type: 'room', room: id, kind: 'dm' })), { timeout: 2000 })
    expect(listed.filter(frame => frame.room === id && frame.removed)).toEqual([])
    await Promise.all([a.close(), b.close()])
  })

  it('a store down since boot lets a join in; once it answers, a non-member of a private room is closed', async () => {
    const store = createMemoryRoomLog()
    let down = true
    const flaky = { ...store, roomRecord: (room: string) => down ? Promise.reject(new Error('down at boot')) : store.roomRecord(room), member: (room: string, uid: string) => down ? Promise.reject(new Error('down at boot')) : store.member(room, uid) }
    const quiet = { ...consola, error() {} } as unknown as typeof consola
    const hub = createChatHub({ config, store: flaky, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    await hub.admitToRoom(admission('secret', 'u-eve'))
    await hub.admitToRoom(admission('secret', 'u-alice'))
    const eve = testMember('u-eve')
    const alice = testMember('u-alice')
    await hub.join('secret', eve, undefined)
    await hub.join('secret', alice, undefined)
    await store.createRoom({ id: 'secret', title: 'Secret', topic: '', visibility: 'private', kind: 'room', createdBy: 'u-alice', createdAt: 1 })
    await store.saveMember({ room: 'secret', uid: 'u-alice', role: 'owner', joinedAt: 1 })
    down = false
    await new Promise(resolve => setTimeout(resolve, 1500))
    expect(eve.closed).toEqual([{ code: 4003, reason: 'Not allowed in this room' }])
    expect(alice.closed).toEqual([])
    // Answered once: a store failing now refuses.
    down = true
    await expect(hub.admitToRoom(admission('other', 'u-eve'))).rejects.toMatchObject({ status: 503 })
    await hub.close()
  })
})
