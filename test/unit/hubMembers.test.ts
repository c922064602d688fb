/**
 * The hub's side of rooms with members (docs/PROTOCOL.md, "Admission"): a `member` bus event from
 * another instance closes the removed person's connections here, and connections let in while
 * the store was down since boot are checked again once it answers.
 */
import { createHooks } from 'hookable'
import { consola } from 'consola'
import { describe, expect, it, vi } from 'vitest'
import type { ChatJoinContext, ChatRuntimeConfig, ChatRuntimeHooks } from '../../src/runtime/types'
import type { ChatMemberCommand } from '../../src/runtime/shared/protocol'
import { directRoomId } from '../../src/runtime/server/utils/roomMembers'
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

/** A store whose named method's next call waits until released: `reached` settles once it is called. */
function heldStore(store: ReturnType<typeof createMemoryRoomLog>) {
  const holds = new Map<string, { arrive: () => void, released: Promise<void> }>()
  const held = new Proxy(store, {
    get(target, key: string) {
      const value = Reflect.get(target, key) as unknown
      if (typeof value !== 'function') return value
      return async (...args: unknown[]) => {
        const hold = holds.get(key)
        if (hold) {
          holds.delete(key)
          hold.arrive()
          await hold.released
        }
        return (value as (...args: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return {
    store: held,
    /** Hold the next call of `method`: wait for `reached`, act, then `release()`. */
    hold(method: keyof typeof store) {
      let arrive!: () => void
      let release!: () => void
      const reached = new Promise<void>(resolve => arrive = resolve)
      holds.set(method, { arrive, released: new Promise<void>(resolve => release = resolve) })
      return { reached, release }
    },
  }
}

/** Two instances' buses whose events wait until the test delivers them (in order). */
function queuedBuses() {
  const listeners: ((event: BusEvent, origin: string) => void)[] = [() => {}, () => {}]
  const queue: (() => void)[] = []
  const busOf = (self: number): ChatBus => ({
    publish: (event) => {
      queue.push(() => listeners[1 - self]!(event, `instance-${self}`))
      return true
    },
    onEvent: listener => void (listeners[self] = listener),
    onRecover() {},
    close: async () => {},
  })
  return { buses: [busOf(0), busOf(1)] as const, deliver: () => queue.splice(0).forEach(tell => tell()) }
}

/** A connection that leaves the room when it is closed, as every transport's does. */
function leavingMember(hub: ReturnType<typeof createChatHub>, id: string, room = 'lobby') {
  const member = testMember(id)
  member.close = (code, reason) => {
    member.closed.push({ code, reason })
    hub.leave(room, member)
  }
  return member
}

const alice = { id: 'u-alice', name: 'u-alice' }
const settle = () => new Promise(resolve => setTimeout(resolve, 20))

/** A public room with a record: Alice owns it; Bob joined it once (a member, with a read position). */
async function publicRoom(store: ReturnType<typeof createMemoryRoomLog>) {
  await store.createRoom({ id: 'lobby', title: 'Lobby', topic: '', visibility: 'public', kind: 'room', createdBy: 'u-alice', createdAt: 1 })
  await store.saveMember({ room: 'lobby', uid: 'u-alice', role: 'owner', joinedAt: 1 })
  await store.saveMember({ room: 'lobby', uid: 'u-bob', role: 'member', joinedAt: 1 })
  await store.joinRead('lobby', 'u-bob')
}

/** What a join admitted before its person's membership ended must leave: no membership (or the ban), no read position, the join ended as their connections were. */
async function expectRemoved(store: ReturnType<typeof createMemoryRoomLog>, bob: ReturnType<typeof testMember>, reason = 'Removed from the room') {
  await settle()
  expect(bob.closed).toEqual([{ code: 4003, reason }])
  const member = await store.member('lobby', 'u-bob')
  if (reason === 'Banned from the room') expect(member).toMatchObject({ banned: true })
  else expect(member).toBeUndefined()
  expect(await store.readState('lobby', 'u-bob')).toBeUndefined()
}

describe('hub: a membership that ends while a join is under way', () => {
  const quiet = { ...consola, error() {} } as unknown as typeof consola
  const remove = (hub: ReturnType<typeof createChatHub>, type: 'remove' | 'ban' = 'remove') => hub.moderate('lobby', { type, user: 'u-bob' }, alice)

  it('a removal from a public room between the admission and the join: the join ends as removed and makes no membership or position again', async () => {
    const store = createMemoryRoomLog()
    await publicRoom(store)
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    const asked = admission('lobby', 'u-bob')
    await hub.admitToRoom(asked)
    expect(await remove(hub)).toHaveProperty('frame')
    const bob = leavingMember(hub, 'u-bob')
    await hub.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
    await expectRemoved(store, bob)
    // A join admitted after the removal is a new one: a public room lets him in again, and makes him a member.
    const again = admission('lobby', 'u-bob')
    await hub.admitToRoom(again)
    const back = leavingMember(hub, 'u-bob')
    await hub.join('lobby', back, undefined, undefined, true, again.admittedAt)
    await settle()
    expect(back.closed).toEqual([])
    expect(await store.member('lobby', 'u-bob')).toMatchObject({ role: 'member' })
    await hub.close()
  })

  it('a removal while the app\'s chat:join hook runs ends the join the same way', async () => {
    const store = createMemoryRoomLog()
    await publicRoom(store)
    const hooks = createHooks<ChatRuntimeHooks>()
    let hookReached!: () => void
    let releaseHook!: () => void
    const reached = new Promise<void>(resolve => hookReached = resolve)
    const released = new Promise<void>(resolve => releaseHook = resolve)
    hooks.hook('chat:join', async () => {
      hookReached()
      await released
    })
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks, logger: quiet })
    const asked = admission('lobby', 'u-bob')
    const admitted = hub.admitToRoom(asked)
    await reached
    await remove(hub)
    releaseHook()
    await admitted
    const bob = leavingMember(hub, 'u-bob')
    await hub.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
    await expectRemoved(store, bob)
    await hub.close()
  })

  it('a removal while the join waits for its batch: its leave makes no position or membership', async () => {
    const store = createMemoryRoomLog()
    await publicRoom(store)
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    const asked = admission('lobby', 'u-bob')
    await hub.admitToRoom(asked)
    const bob = leavingMember(hub, 'u-bob')
    // The join's first turn: in the room, its batch not told yet; the removal lands before the end of the turn.
    const joined = hub.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
    await remove(hub)
    await joined
    await expectRemoved(store, bob)
    await hub.close()
  })

  for (const step of ['readState', 'joinRead', 'addMemberIfAbsent'] as const) {
    it(`a removal while the join's read state is made (at store.${step}) leaves no position or membership`, async () => {
      const memory = createMemoryRoomLog()
      await publicRoom(memory)
      // Bob's position went with an earlier removal: this join makes his first position again (and with it a membership).
      await memory.forgetRead('lobby', 'u-bob')
      await memory.deleteMember('lobby', 'u-bob')
      const { store, hold } = heldStore(memory)
      const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
      const asked = admission('lobby', 'u-bob')
      await hub.admitToRoom(asked)
      await memory.saveMember({ room: 'lobby', uid: 'u-bob', role: 'member', joinedAt: 2 })
      const held = hold(step)
      const bob = leavingMember(hub, 'u-bob')
      const joined = hub.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
      await held.reached
      await remove(hub)
      held.release()
      await joined
      await expectRemoved(memory, bob)
      await hub.close()
    })
  }

  it('a ban while the join\'s position is made: he stays banned, with no position', async () => {
    const memory = createMemoryRoomLog()
    await publicRoom(memory)
    await memory.forgetRead('lobby', 'u-bob')
    const { store, hold } = heldStore(memory)
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    const asked = admission('lobby', 'u-bob')
    await hub.admitToRoom(asked)
    const held = hold('joinRead')
    const bob = leavingMember(hub, 'u-bob')
    const joined = hub.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
    await held.reached
    await remove(hub, 'ban')
    held.release()
    await joined
    await expectRemoved(memory, bob, 'Banned from the room')
    await hub.close()
  })

  it('the room made private between a non-member\'s admission and join: the join ends (Not allowed), no position or membership', async () => {
    const store = createMemoryRoomLog()
    await publicRoom(store)
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    const asked = admission('lobby', 'u-carol')
    await hub.admitToRoom(asked)
    await hub.updateRoom('lobby', { visibility: 'private' })
    const carol = leavingMember(hub, 'u-carol')
    await hub.join('lobby', carol, undefined, undefined, true, asked.admittedAt)
    await settle()
    expect(carol.closed).toEqual([{ code: 4003, reason: 'Not allowed in this room' }])
    expect(await store.member('lobby', 'u-carol')).toBeUndefined()
    expect(await store.readState('lobby', 'u-carol')).toBeUndefined()
    await hub.close()
  })

  it('the app\'s disconnect between the admission and the join ends the join, which makes no position', async () => {
    const store = createMemoryRoomLog()
    await publicRoom(store)
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    const asked = admission('lobby', 'u-carol')
    await hub.admitToRoom(asked)
    hub.disconnect('lobby', 'u-carol')
    const carol = leavingMember(hub, 'u-carol')
    await hub.join('lobby', carol, undefined, undefined, true, asked.admittedAt)
    await settle()
    expect(carol.closed).toEqual([{ code: undefined, reason: undefined }])
    expect(await store.readState('lobby', 'u-carol')).toBeUndefined()
    await hub.close()
  })

  it('a role change between the admission and the join: the person learns the new role', async () => {
    const store = createMemoryRoomLog()
    await publicRoom(store)
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
    const asked = admission('lobby', 'u-bob')
    await hub.admitToRoom(asked)
    await hub.moderate('lobby', { type: 'role', user: 'u-bob', role: 'moderator' }, alice)
    const bob = leavingMember(hub, 'u-bob')
    await hub.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
    await settle()
    expect(bob.closed).toEqual([])
    const told = bob.written.filter(frame => frame.event === 'welcome' || frame.type === 'member').map(frame => frame.role).filter(Boolean)
    expect(told.at(-1)).toBe('moderator')
    await hub.close()
  })

  it('on two instances: a removal on one while a join on the other makes its membership, heard before or after that write, leaves none', async () => {
    for (const heard of ['before', 'after'] as const) {
      const memory = createMemoryRoomLog()
      await publicRoom(memory)
      await memory.forgetRead('lobby', 'u-bob')
      await memory.deleteMember('lobby', 'u-bob')
      const { store, hold } = heldStore(memory)
      const { buses, deliver } = queuedBuses()
      const a = createChatHub({ config, store: memory, bus: buses[0], hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
      const b = createChatHub({ config, store, bus: buses[1], hooks: createHooks<ChatRuntimeHooks>(), logger: quiet })
      const asked = admission('lobby', 'u-bob')
      await b.admitToRoom(asked)
      await memory.saveMember({ room: 'lobby', uid: 'u-bob', role: 'member', joinedAt: 2 })
      const held = hold('addMemberIfAbsent')
      const bob = leavingMember(b, 'u-bob')
      const joined = b.join('lobby', bob, undefined, undefined, true, asked.admittedAt)
      await held.reached
      // Removed on instance A: its store writes are done, its bus event not yet heard on B.
      await remove(a)
      if (heard === 'before') deliver()
      held.release()
      await joined
      await settle()
      deliver()
      await settle()
      expect(bob.closed, heard).toEqual([{ code: 4003, reason: 'Removed from the room' }])
      expect(await memory.member('lobby', 'u-bob'), heard).toBeUndefined()
      expect(await memory.readState('lobby', 'u-bob'), heard).toBeUndefined()
      await Promise.all([a.close(), b.close()])
    }
  })
})

describe('hub: a direct room\'s id holds the two people\'s private room, nothing else', () => {
  const recordingLogger = () => {
    const errors: string[] = []
    return { errors, logger: { ...consola, error: (message: string) => void errors.push(String(message)) } as unknown as typeof consola }
  }

  it('server code\'s moderation of a `dm:` id is refused, before the room is made and after: no public record, no third member', async () => {
    const store = createMemoryRoomLog()
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    const room = directRoomId('u-alice', 'u-bob')
    const commands: ChatMemberCommand[] = [{ type: 'mute', user: 'u-eve', until: Date.now() + 60_000 }, { type: 'invite', user: 'u-eve' }, { type: 'ban', user: 'u-eve' }, { type: 'role', user: 'u-eve', role: 'owner' }]
    for (const command of commands) expect(await hub.moderate(room, command), command.type).toMatchObject({ status: 403, error: { code: 'forbidden' } })
    expect(await store.roomRecord(room)).toBeUndefined()
    expect(await store.members(room, undefined, 10)).toEqual([])
    // Nobody is let in while it has no record; once the pair made it, it is theirs alone.
    expect(await hub.access(room, { id: 'u-eve', name: 'Eve' }, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    expect(await hub.directRoom('u-alice', 'u-bob')).toMatchObject({ id: room, kind: 'dm', visibility: 'private' })
    for (const command of [...commands, { type: 'remove', user: 'u-bob' } as ChatMemberCommand]) expect(await hub.moderate(room, command), command.type).toMatchObject({ status: 403 })
    expect((await store.members(room, undefined, 10)).map(member => member.uid)).toEqual(['u-alice', 'u-bob'])
    await hub.close()
  })

  it('refuses to open a `dm:` id held by a record of another kind, and such a record admits nobody; a third member stops nobody and gets nothing', async () => {
    const store = createMemoryRoomLog()
    const { errors, logger } = recordingLogger()
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger })
    // As a server from before these rules could leave it: a public room under the pair's id, with Eve in it.
    const room = directRoomId('u-alice', 'u-bob')
    await store.createRoom({ id: room, title: room, topic: '', visibility: 'public', kind: 'room', createdBy: null, createdAt: 1 })
    await store.saveMember({ room, uid: 'u-eve', role: 'member', joinedAt: 1 })
    await expect(hub.directRoom('u-alice', 'u-bob')).rejects.toMatchObject({ status: 409 })
    expect(await hub.access(room, { id: 'u-eve', name: 'Eve' }, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    expect(errors.join('\n')).toContain(`room "${room}" holds the id of a direct room`)
    // A direct room with a third member (a row from before the rules): the two open it, she is let in nowhere.
    const other = directRoomId('u-carol', 'u-dan')
    await hub.directRoom('u-carol', 'u-dan')
    await store.saveMember({ room: other, uid: 'u-eve', role: 'member', joinedAt: 1 })
    expect(await hub.directRoom('u-dan', 'u-carol')).toMatchObject({ id: other, kind: 'dm' })
    expect(await hub.access(other, { id: 'u-eve', name: 'Eve' }, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    await hub.close()
  })

  it('asks the app\'s chat:join hook before a direct room is made, with the other person\'s id: refused, nothing is stored', async () => {
    const store = createMemoryRoomLog()
    const hooks = createHooks<ChatRuntimeHooks>()
    const asked: ChatJoinContext[] = []
    hooks.hook('chat:join', (ctx) => {
      asked.push({ ...ctx })
      if (ctx.dm === 'u-nobody') ctx.reject = 'no such person'
    })
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks, logger: consola })
    const room = directRoomId('u-spammer', 'u-nobody')
    await expect(hub.admitToRoom({ ...admission(room, 'u-spammer'), directWith: 'u-nobody' })).rejects.toMatchObject({ status: 403, message: 'no such person' })
    expect(asked).toEqual([{ room, user: { id: 'u-spammer', name: 'u-spammer' }, dm: 'u-nobody', allow: true }])
    expect(await store.roomRecord(room)).toBeUndefined()
    expect(await store.members(room, undefined, 10)).toEqual([])
    // Let in, the room is made; a join by its id asks without `dm`.
    const made = directRoomId('u-alice', 'u-bob')
    await hub.admitToRoom({ ...admission(made, 'u-alice'), directWith: 'u-bob' })
    expect(await store.roomRecord(made)).toMatchObject({ kind: 'dm' })
    await hub.admitToRoom(admission(made, 'u-bob'))
    expect(asked.at(-1)).toEqual({ room: made, user: { id: 'u-bob', name: 'u-bob' }, allow: true })
    await hub.close()
  })

  it('server code\'s messages into a `dm:` room without its record are refused (its admission is skipped): nothing stored', async () => {
    const store = createMemoryRoomLog()
    const hub = createChatHub({ config, store, bus: testBus().bus, hooks: createHooks<ChatRuntimeHooks>(), logger: consola })
    const room = directRoomId('u-alice', 'u-bob')
    expect(await hub.send({ room, user: { id: 'server', name: 'server' }, sender: 'server', message: 'planted', fromServer: true })).toMatchObject({ status: 404, error: { code: 'not_found' } })
    expect(await store.lastId(room)).toBe(0)
    await hub.directRoom('u-alice', 'u-bob')
    expect(await hub.send({ room, user: { id: 'server', name: 'server' }, sender: 'server', message: 'hello', fromServer: true })).toMatchObject({ status: 200, frame: { id: 1 } })
    await hub.close()
  })
})
