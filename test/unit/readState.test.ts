/**
 * Rooms lists (src/runtime/server/utils/readState.ts) on the real memory store, counting the
 * store reads they make: what a list shows is kept live without a read per event, and the reads
 * it does make stay within a per-instance limit.
 */
import { describe, expect, it } from 'vitest'
import { until } from '../utils/clients'
import type { ChatRoomFrame, ChatRoomsFrame } from '../../src/runtime/shared/protocol'
import { messageFrame } from '../../src/runtime/server/utils/roomDelivery'
import type { RoomFrame } from '../../src/runtime/server/transport/frame'
import { createReadState, MAX_LISTED_ROOMS, MAX_REFRESHING, type RoomsWatcher } from '../../src/runtime/server/utils/readState'
import { createRoomListing } from '../../src/runtime/server/utils/roomListing'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { AppendInput, RoomLog } from '../../src/runtime/server/utils/roomLog'

/** The memory store, with a count of its `readState` calls and of how many ran at once. */
function countedStore() {
  const log = createMemoryRoomLog()
  const counts = { reads: 0, running: 0, most: 0 }
  const readState: typeof log.readState = async (...args) => {
    counts.reads++
    counts.most = Math.max(counts.most, ++counts.running)
    // A real store answers later: let others start meanwhile.
    await new Promise(resolve => setTimeout(resolve, 5))
    counts.running--
    return log.readState(...args)
  }
  return { log, counts, store: { ...log, readState } }
}

function listOf(userId: string): RoomsWatcher & { frames: (ChatRoomsFrame | ChatRoomFrame)[] } {
  const frames: (ChatRoomsFrame | ChatRoomFrame)[] = []
  return { user: { id: userId, name: userId }, frames, write: (frame: RoomFrame) => frames.push(JSON.parse(frame.text)) }
}

const input = (room: string, sender: string, message: string, extra: Partial<AppendInput> = {}): AppendInput => ({ room, user: sender, sender, message, ts: Date.now(), ...extra })
/** `uid` joins `room` as the hub makes them: a read position and a plain membership (what lists show). */
async function joinAsMember(log: RoomLog, room: string, uid: string) {
  await log.joinRead(room, uid)
  await log.saveMember({ room, uid, role: 'member', joinedAt: Date.now() })
}

describe('rooms lists', () => {
  it('a reaction on the last message reads nothing and sends nothing; an edit of it is applied in place', async () => {
    const { log, counts, store } = countedStore()
    const readState = createReadState({ store, bus: { publish: () => true }, logger: { error: () => {} }, membersOf: () => undefined })
    await joinAsMember(log, 'r', 'u1')
    const first = await log.append(input('r', 'u2', 'hello'))
    const list = listOf('u1')
    await readState.watch(list)
    readState.stored('r', messageFrame(first.message))
    const before = counts.reads
    const sent = list.frames.length
    for (let n = 0; n < 20; n++) {
      const reaction = await log.append(input('r', `u${n + 3}`, '+👍', { kind: 'reaction', target: first.message.id }))
      readState.stored('r', messageFrame(reaction.message))
    }
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(list.frames).toHaveLength(sent)
    const edit = await log.append(input('r', 'u2', 'hello, edited', { kind: 'edit', target: first.message.id }))
    readState.stored('r', messageFrame(edit.message))
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(counts.reads).toBe(before)
    const shown = list.frames.filter(frame => frame.type === 'room')
    expect(shown.at(-1)).toMatchObject({ room: 'r', upTo: edit.message.id, unread: 1, last: { id: first.message.id, message: 'hello, edited', edited: edit.message.id } })
    // The next message is counted in order, the reactions having moved upTo along.
    const next = await log.append(input('r', 'u2', 'next'))
    readState.stored('r', messageFrame(next.message))
    expect(list.frames.at(-1)).toMatchObject({ upTo: next.message.id, unread: 2, last: { message: 'next' } })
    expect(counts.reads).toBe(before)
  })

  it(`a resync after a bus outage reads every listed room again, at most ${MAX_REFRESHING} at once`, async () => {
    const { log, counts, store } = countedStore()
    const readState = createReadState({ store, bus: { publish: () => true }, logger: { error: () => {} }, membersOf: () => undefined })
    const rooms = Array.from({ length: 40 }, (_, n) => `room-${n}`)
    for (const room of rooms) await joinAsMember(log, room, 'u1')
    const lists = [listOf('u1'), listOf('u1')]
    for (const list of lists) await readState.watch(list)
    for (const room of rooms) await log.append(input(room, 'u2', `news in ${room}`))
    counts.most = 0
    const before = counts.reads
    readState.resync()
    await new Promise(resolve => setTimeout(resolve, 1000))
    expect(counts.reads - before).toBe(80)
    expect(counts.most).toBeLessThanOrEqual(MAX_REFRESHING)
    for (const list of lists) expect(list.frames.filter(frame => frame.type === 'room' && frame.unread === 1)).toHaveLength(40)
  })

  it(`a full list (${MAX_LISTED_ROOMS} rooms) drops its least recently read room for one joined or read later`, async () => {
    const { log, store } = countedStore()
    // Joining a room from a page makes its member (the hub's `joinedFirst`); the join stands.
    const joinedFirst = (room: string, uid: string) => log.saveMember({ room, uid, role: 'member', joinedAt: Date.now() }).then(() => true)
    const readState = createReadState({ store, bus: { publish: () => true }, logger: { error: () => {} }, membersOf: () => undefined, joinedFirst })
    const rooms = Array.from({ length: MAX_LISTED_ROOMS }, (_, n) => `full-${n}`)
    for (const room of rooms) {
      await joinAsMember(log, room, 'u1')
      // Distinct read times: full-0 is the least recently read.
      await new Promise(resolve => setTimeout(resolve, 2))
    }
    const list = listOf('u1')
    await readState.watch(list)
    expect((list.frames[0] as ChatRoomsFrame).rooms.map(entry => entry.room)).toEqual(rooms.toReversed())
    // full-0 is read (on some device): now the most recently read; full-1 is the least.
    await readState.markRead('full-0', list.user)
    const member = { user: list.user, sender: '', write: () => {} }
    await readState.joined('new-a', member, true)
    await until(() => list.frames.some(frame => frame.type === 'room' && frame.room === 'new-a'), 'new-a listed')
    expect(list.frames.flatMap(frame => frame.type === 'room' && frame.removed ? [frame.room] : [])).toEqual(['full-1'])
    await readState.joined('new-b', member, true)
    await until(() => list.frames.some(frame => frame.type === 'room' && frame.room === 'new-b'), 'new-b listed')
    expect(list.frames.flatMap(frame => frame.type === 'room' && frame.removed ? [frame.room] : [])).toEqual(['full-1', 'full-2'])
    expect(list.entries?.size).toBe(MAX_LISTED_ROOMS)
    expect(list.entries?.has('full-0')).toBe(true)
  })

  it('lists memberships, not read positions: a position alone (joined without becoming a member, read) shows nothing; a membership made later adds the room, a forgotten one drops it', async () => {
    const { log, store } = countedStore()
    const readState = createReadState({ store, bus: { publish: () => true }, logger: { error: () => {} }, membersOf: () => undefined })
    await joinAsMember(log, 'member-room', 'u1')
    await log.joinRead('position-only', 'u1')
    await log.append(input('position-only', 'u2', 'hello'))
    const list = listOf('u1')
    await readState.watch(list)
    expect((list.frames[0] as ChatRoomsFrame).rooms.map(entry => entry.room)).toEqual(['member-room'])
    // A join that makes no membership (no `joinedFirst`), and a read there: still not listed.
    await readState.joined('position-only', { user: list.user, sender: '', write: () => {} }, true)
    expect(await readState.markRead('position-only', list.user)).toMatchObject({ read: 1 })
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(list.frames.filter(frame => frame.type === 'room')).toEqual([])
    // Made a member (an invite, a message): the list adds it at once, with its unread state.
    await log.saveMember({ room: 'position-only', uid: 'u1', role: 'member', joinedAt: Date.now() })
    readState.memberChanged('position-only', 'u1')
    await until(() => list.frames.some(frame => frame.type === 'room' && frame.room === 'position-only'), 'the new membership listed')
    expect(list.frames.at(-1)).toMatchObject({ room: 'position-only', read: 1, unread: 0, last: { message: 'hello' } })
    // Forgotten (its membership gone with its position): dropped, and a new list does not show it.
    await log.deleteMember('position-only', 'u1')
    await readState.forget('position-only', 'u1')
    expect(list.frames.at(-1)).toMatchObject({ room: 'position-only', removed: true })
    const again = listOf('u1')
    await readState.watch(again)
    expect((again.frames[0] as ChatRoomsFrame).rooms.map(entry => entry.room)).toEqual(['member-room'])
  })
})

describe('a direct room in a rooms list', () => {
  it('takes the other person\'s name from their message when the store did not have it yet (their name is stored as they join, maybe later)', async () => {
    const { log, store } = countedStore()
    const room = 'dm:test-pair'
    const record = { id: room, title: '', topic: '', visibility: 'private' as const, kind: 'dm' as const, createdBy: 'alice', createdAt: Date.now() }
    await log.createRoom(record)
    await joinAsMember(log, room, 'bob')
    await joinAsMember(log, room, 'alice')
    const listing = createRoomListing({ store: log, recordOf: async () => record, pairOf: async () => ['alice', 'bob'], logger: { error: () => {} } })
    const readState = createReadState({ store, bus: { publish: () => true }, logger: { error: () => {} }, membersOf: () => undefined, describe: listing.describe, nameHeard: listing.heard })
    const list = listOf('bob')
    await readState.watch(list)
    const entry = () => list.frames.flatMap(frame => frame.type === 'rooms' ? frame.rooms : [frame]).findLast(shown => shown.room === room)
    // Alice's name is not stored yet: the room is titled with her id.
    expect(entry()).toMatchObject({ kind: 'dm', with: 'alice', title: 'alice' })
    const hi = await log.append({ ...input(room, 'Alice', 'hi Bob'), sender: 'alice' })
    readState.stored(room, messageFrame(hi.message))
    await until(() => entry()?.upTo === hi.message.id && entry(), 'the list read after the message')
    expect(entry()).toMatchObject({ kind: 'dm', with: 'alice', title: 'Alice', unread: 1 })
  })
})
