import { describe, expect, it } from 'vitest'
import { createRoomDelivery, messageFrame, type Member } from '../../src/runtime/server/utils/roomDelivery'
import { RoomFrame } from '../../src/runtime/server/transport/frame'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog, StoredMessage } from '../../src/runtime/server/utils/roomLog'

function testMember(id: string): Member & { frames: RoomFrame[] } {
  const frames: RoomFrame[] = []
  return { user: { id, name: id }, sender: '', frames, write: frame => frames.push(frame) }
}

const ids = (member: { frames: RoomFrame[] }) => member.frames.filter(frame => frame.id).map(frame => frame.id)
const settle = () => new Promise(resolve => setTimeout(resolve, 20))
const silent = { error: () => {} }
const limits = { replay: 50, maxReplay: 1000 }

/** Store `count` messages as another instance would; returns the frame texts the bus would carry, by id. */
async function storeElsewhere(store: RoomLog, count: number) {
  const texts = new Map<number, string>()
  for (let i = 0; i < count; i++) {
    const { message } = await store.append({ room: 'r', user: 'x', sender: '', message: `m${i}`, ts: 1 })
    texts.set(message.id, JSON.stringify({ type: 'message', ...message }))
  }
  return (id: number) => texts.get(id)!
}

/** A room delivery with one live member, `alice`, whose replay ended at the store's newest id. */
async function liveRoom(store: RoomLog, options: { gapRetry?: number } = {}) {
  const delivery = createRoomDelivery({ room: 'r', store, logger: silent, ...options })
  const alice = testMember('alice')
  delivery.add(alice)
  await delivery.replay(alice, await store.lastId('r'), limits)
  return { delivery, alice }
}

describe('ordered delivery of one room', () => {
  it('delivers in id order, each message once; older ids are dropped', async () => {
    const store = createMemoryRoomLog()
    const old = await storeElsewhere(store, 2)
    const { delivery, alice } = await liveRoom(store)
    const next = await storeElsewhere(store, 1)
    delivery.deliver(3, next(3))
    delivery.deliver(3, next(3))
    delivery.deliver(2, old(2))
    expect(ids(alice)).toEqual([3])
    expect(delivery.lastId).toBe(3)
  })

  it('fills a gap from the store when a later message arrives first', async () => {
    const store = createMemoryRoomLog()
    const { delivery, alice } = await liveRoom(store)
    const text = await storeElsewhere(store, 4)
    delivery.deliver(4, text(4))
    delivery.deliver(3, text(3))
    await settle()
    expect(ids(alice)).toEqual([1, 2, 3, 4])
  })

  it('keeps arrivals while the room cursor is read, then delivers them in order', async () => {
    const store = createMemoryRoomLog()
    await storeElsewhere(store, 1)
    const delivery = createRoomDelivery({ room: 'r', store, logger: silent })
    const alice = testMember('alice')
    delivery.add(alice)
    const text = await storeElsewhere(store, 2)
    // The cursor is still being read: both wait with the out-of-order arrivals.
    delivery.deliver(3, text(3))
    delivery.deliver(2, text(2))
    await delivery.replay(alice, 1, limits)
    await settle()
    expect(ids(alice)).toEqual([2, 3])
  })

  it('sends a newcomer its replay, then what arrived meanwhile, without repeats', async () => {
    const store = createMemoryRoomLog()
    await storeElsewhere(store, 5)
    const delivery = createRoomDelivery({ room: 'r', store, logger: silent })
    await delivery.ready
    const bob = testMember('bob')
    delivery.add(bob)
    const text = await storeElsewhere(store, 2)
    const replaying = delivery.replay(bob, 2, limits)
    // Live while the replay is read (which may carry them too).
    delivery.deliver(6, text(6))
    delivery.broadcast(new RoomFrame('{"type":"typing"}'))
    delivery.deliver(7, text(7))
    expect(bob.frames).toEqual([])
    await replaying
    expect(ids(bob)).toEqual([3, 4, 5, 6, 7])
    expect(bob.frames.filter(frame => !frame.id)).toHaveLength(1)
  })

  it('never delivers across a hole the store cannot fill yet: it retries', async () => {
    const store = createMemoryRoomLog()
    let failures = 1
    const flaky: RoomLog = { ...store, between: (...args) => failures-- > 0 ? Promise.reject(new Error('locked')) : store.between(...args) }
    const { delivery, alice } = await liveRoom(flaky, { gapRetry: 50 })
    const text = await storeElsewhere(store, 2)
    delivery.deliver(2, text(2))
    await settle()
    expect(ids(alice)).toEqual([])
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(ids(alice)).toEqual([1, 2])
    expect(failures).toBe(-1)
  })
})

describe('acknowledging a change its sender\'s replay covers (revision 5)', () => {
  /**
   * Alice's message 1 and her reaction toggle (cid r1) to it, stored before her new connection's
   * replay is read, with their frames not delivered here yet: the replay carries message 1's
   * state, not the toggle. Bob joins alike.
   */
  async function rejoined() {
    const store = createMemoryRoomLog()
    const delivery = createRoomDelivery({ room: 'r', store, logger: silent })
    await delivery.ready
    const alice = { ...testMember('alice'), sender: 'alice' }
    const bob = { ...testMember('bob'), sender: 'bob' }
    delivery.add(alice)
    delivery.add(bob)
    const stored = [
      (await store.append({ room: 'r', user: 'alice', sender: 'alice', message: 'hello', ts: 1, cid: 'm1' })).message,
      (await store.append({ room: 'r', user: 'alice', sender: 'alice', message: '👍', ts: 2, cid: 'r1', kind: 'reaction', target: 1 })).message,
    ]
    const deliver = (message: StoredMessage) => delivery.deliver(message.id, JSON.stringify(messageFrame(message)))
    return { store, delivery, alice, bob, stored, deliver, change: messageFrame(stored[1]!) }
  }
  const parsed = (member: { frames: RoomFrame[] }) => member.frames.map(frame => JSON.parse(frame.text) as Record<string, unknown>)
  const replayedState = { ...messageFrame({ id: 1, room: 'r', user: 'alice', uid: 'alice', cid: 'm1', message: 'hello', ts: 1, reactions: { '👍': ['alice'] } }), rev: 2 }

  it('answers the sender alone with the change marked duplicate when its frame arrived during the replay', async () => {
    const { delivery, alice, bob, stored, deliver, change } = await rejoined()
    stored.forEach(deliver)
    await Promise.all([delivery.replay(alice, 1, limits), delivery.replay(bob, 1, limits)])
    expect(parsed(alice)).toEqual([replayedState, { ...change, duplicate: true }])
    expect(alice.frames[1]!.id, 'outside the room order').toBe(0)
    expect(parsed(bob), 'others get the state only').toEqual([replayedState])
  })

  it('answers the sender when the change\'s frame arrives after a replay that covered it (another instance, a late fan-out)', async () => {
    const { delivery, alice, bob, stored, deliver, change } = await rejoined()
    await Promise.all([delivery.replay(alice, 1, limits), delivery.replay(bob, 1, limits)])
    stored.forEach(deliver)
    expect(parsed(alice)).toEqual([replayedState, { ...change, duplicate: true }])
    expect(parsed(bob)).toEqual([replayedState])
  })

  it('sends nothing more for a message the replay carried (its frame has its cid), nor for a change without a cid', async () => {
    const { store, delivery, alice, stored, deliver } = await rejoined()
    stored.push((await store.append({ room: 'r', user: 'alice', sender: 'alice', message: 'again', ts: 3, cid: 'm2' })).message)
    stored.push((await store.append({ room: 'r', user: 'alice', sender: 'alice', message: 'edited', ts: 4, kind: 'edit', target: 1 })).message)
    await delivery.replay(alice, 1, limits)
    stored.forEach(deliver)
    expect(parsed(alice).map(frame => [frame.id, frame.cid, frame.duplicate])).toEqual([[3, 'm2', undefined], [1, 'm1', undefined], [2, 'r1', true]])
  })
})

describe('replay from the recent frames kept in memory', () => {
  /** The memory store, counting the replay queries that reach it. */
  function countingStore() {
    const store = createMemoryRoomLog()
    const counted = { queries: 0, store, lastId: store.lastId, between: store.between, replaySince: (...args: Parameters<RoomLog['replaySince']>) => {
      counted.queries++
      return store.replaySince(...args)
    } }
    return counted
  }
  const texts = (member: { frames: RoomFrame[] }) => member.frames.filter(frame => frame.id).map(frame => [frame.id, frame.text])

  /** A newcomer's replay from `delivery` after `since`. */
  async function replayOf(delivery: ReturnType<typeof createRoomDelivery>, since: number | undefined) {
    const member = testMember('newcomer')
    delivery.add(member)
    await delivery.replay(member, since, limits)
    delivery.remove(member)
    return texts(member)
  }

  it('equals the replay from the store, and needs no query when it covers it (gaps filled in between)', async () => {
    const counted = countingStore()
    const delivery = createRoomDelivery({ room: 'r', store: counted, logger: silent, recent: 50 })
    const alice = testMember('alice')
    delivery.add(alice)
    await delivery.replay(alice, undefined, limits)
    const live = new Map<number, string>()
    for (let i = 0; i < 120; i++) {
      const { message } = await counted.store.append({ room: 'r', user: 'x', sender: 'u', message: `m${i}`, ts: i })
      live.set(message.id, JSON.stringify(messageFrame(message)))
    }
    // Delivered with two holes the store fills (59 and 101-102 arrive late, as from another instance).
    for (const [id, text] of live) if (id !== 59 && id !== 101 && id !== 102) delivery.deliver(id, text)
    await settle()
    expect(ids(alice)).toEqual([...live.keys()])

    const fromStore = createRoomDelivery({ room: 'r', store: counted.store, logger: silent })
    const cursors = [undefined, 0, 49, 50, 69, 100, 119, 120]
    counted.queries = 0
    for (const since of cursors) expect(await replayOf(delivery, since)).toEqual(await replayOf(fromStore, since))
    // Kept: ids 51-120. Only cursors 0 and 49 reach further back.
    expect(counted.queries).toBe(2)
  })

  it('serves a room younger than the window from memory', async () => {
    const counted = countingStore()
    const delivery = createRoomDelivery({ room: 'r', store: counted, logger: silent, recent: 50 })
    await delivery.ready
    for (let i = 0; i < 5; i++) {
      const { message } = await counted.store.append({ room: 'r', user: 'x', sender: 'u', message: `m${i}`, ts: i })
      delivery.deliver(message.id, JSON.stringify(messageFrame(message)))
    }
    const fromStore = createRoomDelivery({ room: 'r', store: counted.store, logger: silent })
    counted.queries = 0
    const replayed = await replayOf(delivery, undefined)
    expect(counted.queries).toBe(0)
    expect(replayed).toHaveLength(5)
    expect(replayed).toEqual(await replayOf(fromStore, undefined))
  })

  it('asks the store when it keeps nothing (recent: 0) or the room existed before it', async () => {
    const counted = countingStore()
    for (let i = 0; i < 3; i++) await counted.store.append({ room: 'r', user: 'x', sender: 'u', message: `m${i}`, ts: i })
    const delivery = createRoomDelivery({ room: 'r', store: counted, logger: silent, recent: 50 })
    await delivery.ready
    const { message } = await counted.store.append({ room: 'r', user: 'x', sender: 'u', message: 'm3', ts: 3 })
    delivery.deliver(message.id, JSON.stringify(messageFrame(message)))
    counted.queries = 0
    expect((await replayOf(delivery, undefined)).map(([id]) => id)).toEqual([1, 2, 3, 4])
    expect(counted.queries).toBe(1)
  })
})
