/**
 * A direct room is its two people's (docs/PROTOCOL.md, "Direct messages"), through the hub on every
 * store (memory, SQLite, PostgreSQL): a third membership (a legacy or hand-written row) admits to
 * nothing; opening the room from either side gives back a membership either lost, a mute-only
 * row's mute kept; and nobody a direct room can be with (`server`, oneself, a guest, an id no
 * membership holds) is refused with nothing stored.
 */
import { randomUUID } from 'node:crypto'
import { createHooks } from 'hookable'
import { consola } from 'consola'
import { describe, expect, it } from 'vitest'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../src/runtime/types'
import type { ChatMessageFrame, ChatRoomFrame, ChatRoomsFrame } from '../../src/runtime/shared/protocol'
import type { ChatBus } from '../../src/runtime/server/utils/bus'
import { createChatHub } from '../../src/runtime/server/utils/hub'
import { directRoomId } from '../../src/runtime/server/utils/roomMembers'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'
import { until } from '../utils/clients'
import { roomLogBackends } from '../utils/roomLogs'

const config = {
  replay: 50, maxReplay: 1000, maxLength: 2000, history: { max: 10_000, maxAge: 0 }, rateLimit: false, presenceInterval: 60_000,
} as ChatRuntimeConfig
const bus: ChatBus = { publish: () => true, onEvent() {}, onRecover() {}, close: async () => {} }

/** A hub on `store`, and the `chat:mention` calls it made. */
function hubOn(store: RoomLog) {
  const hooks = createHooks<ChatRuntimeHooks>()
  const mentioned: string[] = []
  hooks.hook('chat:mention', (context) => {
    mentioned.push(context.uid)
  })
  return { hub: createChatHub({ config, store, bus, hooks, logger: consola }), mentioned }
}

/** A rooms list of `uid` opened on `hub`: the rooms of its first list. */
async function listedRooms(hub: ReturnType<typeof hubOn>['hub'], uid: string): Promise<string[]> {
  const frames: (ChatRoomsFrame | ChatRoomFrame)[] = []
  const watcher = { user: { id: uid, name: uid }, write: (frame: { text: string }) => void frames.push(JSON.parse(frame.text)) }
  await hub.watchRooms(watcher, { person: uid })
  hub.unwatchRooms(watcher)
  return frames.flatMap(frame => frame.type === 'rooms' ? frame.rooms.map(entry => entry.room) : [])
}

/** `uid`'s rooms list once it shows `room` (a new membership's read position is written a moment after it). */
const listedSoon = (hub: ReturnType<typeof hubOn>['hub'], uid: string, room: string) => until(async () => (await listedRooms(hub, uid)).includes(room), `${room} on ${uid}'s list`, 3000)

describe.each(roomLogBackends('nuxt-chat-dm-'))('a direct room is its two people\'s: %s', (_name, open) => {
  const ids = () => {
    const tag = randomUUID().slice(0, 8)
    return { alice: `u-alice-${tag}`, bob: `u-bob-${tag}`, eve: `u-eve-${tag}` }
  }

  it('a third membership admits to nothing (read, send, rooms list, members, @name, "Seen by"), and does not stop the two', async () => {
    const store = open()
    const { hub, mentioned } = hubOn(store)
    const { alice, bob, eve } = ids()
    const room = (await hub.directRoom(alice, bob)).id
    // As a server from before the rules (or a row written by hand) could leave it: Eve a member, with a read position and a name.
    await store.saveMember({ room, uid: eve, role: 'member', joinedAt: 1 })
    await store.joinRead(room, eve)
    await store.saveUserName(eve, 'Eve', 1)
    await store.saveUserName(bob, 'Bob', 1)
    const asEve = { id: eve, name: 'Eve' }
    expect(await hub.access(room, asEve, 'read'), 'read').toMatchObject({ allowed: false, code: 'forbidden' })
    expect(await hub.access(room, asEve, 'send'), 'send').toMatchObject({ allowed: false, code: 'forbidden' })
    expect(await hub.send({ room, user: asEve, sender: eve, message: 'let me in' }), 'a message').toMatchObject({ status: 403, error: { code: 'forbidden' } })
    expect(await listedRooms(hub, eve), 'Eve\'s rooms list').not.toContain(room)
    // The two are not stopped by her: opening it again is no refusal, and they read and send.
    expect(await hub.directRoom(bob, alice)).toMatchObject({ id: room, kind: 'dm' })
    expect(await hub.access(room, { id: alice, name: 'Alice' }, 'send')).toMatchObject({ allowed: true })
    await listedSoon(hub, bob, room)
    expect(await hub.directPair(room)).toEqual(expect.arrayContaining([alice, bob]))
    expect(await hub.directPair(room)).toHaveLength(2)
    // Nobody reaches her by name, nor by `@room`; the members listed and "Seen by" are the two.
    const sent = await hub.send({ room, user: { id: alice, name: 'Alice' }, sender: alice, message: '@Eve @Bob look', fromServer: true })
    expect((sent.frame as ChatMessageFrame).mentions).toEqual([bob])
    await hub.send({ room, user: { id: alice, name: 'Alice' }, sender: alice, message: '@room hi', fromServer: true })
    await until(() => mentioned.filter(uid => uid === bob).length === 2, 'Bob told of both mentions')
    expect(mentioned).not.toContain(eve)
    const listed = await hub.limitedMemberNames({ person: alice }, room)
    expect('members' in listed && listed.members.map(member => member.uid).sort()).toEqual([alice, bob].sort())
    const seen = JSON.parse((await hub.seenFrame(room))!.text) as { seen: Record<string, number> }
    expect(Object.keys(seen.seen).sort()).toEqual([alice, bob].sort())
    await hub.close()
  })

  it('opening it from either side gives back a membership either lost; a mute-only row becomes it and keeps its mute', async () => {
    const store = open()
    const { hub } = hubOn(store)
    const { alice, bob } = ids()
    const room = (await hub.directRoom(alice, bob)).id
    const asBob = { id: bob, name: 'Bob' }
    // Server code's `forget` takes Bob's membership and position: he is out, and the room is off his list.
    await hub.forget(room, bob)
    expect(await store.member(room, bob)).toBeUndefined()
    expect(await hub.access(room, asBob, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    expect(await listedRooms(hub, bob)).not.toContain(room)
    // Alice opens it: Bob is back, with a position, on his list.
    expect(await hub.directRoom(alice, bob)).toMatchObject({ id: room })
    expect(await store.member(room, bob)).toMatchObject({ role: 'member' })
    expect(await hub.access(room, asBob, 'send')).toMatchObject({ allowed: true })
    await listedSoon(hub, bob, room)
    // From his own side too.
    await hub.forget(room, bob)
    await hub.admitToRoom({ room, user: asBob, sender: bob, createsReadPosition: true, directWith: alice })
    expect(await store.member(room, bob)).toMatchObject({ role: 'member' })
    await listedSoon(hub, bob, room)

    // A mute-only row (a muted membership that ended): opening gives the membership back, the mute stays.
    const mutedUntil = Date.now() + 60_000
    await store.saveMember({ room, uid: alice, role: 'member', joinedAt: 1, mutedUntil, muteOnly: true })
    await hub.forget(room, alice)
    expect(await hub.access(room, { id: alice, name: 'Alice' }, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    await hub.directRoom(bob, alice)
    const restored = await store.member(room, alice)
    expect(restored).toMatchObject({ role: 'member', mutedUntil })
    expect(restored?.muteOnly).toBeUndefined()
    expect(await hub.access(room, { id: alice, name: 'Alice' }, 'read')).toMatchObject({ allowed: true })
    expect(await hub.access(room, { id: alice, name: 'Alice' }, 'send')).toMatchObject({ allowed: false, code: 'muted', mutedUntil })
    await hub.close()
  })

  it('refuses `server`, oneself, a guest and ids no membership holds (400), storing nothing', async () => {
    const store = open()
    const { hub } = hubOn(store)
    const { alice } = ids()
    for (const other of ['server', alice, 'guest:abcdefghijklmnopqrstuv', '', 'x'.repeat(257), 'line\nbreak']) {
      await expect(hub.directRoom(alice, other), JSON.stringify(other)).rejects.toMatchObject({ status: 400 })
      await expect(hub.directRoom(other, alice), JSON.stringify(other)).rejects.toMatchObject({ status: 400 })
      expect(await store.roomRecord(directRoomId(alice, other)), JSON.stringify(other)).toBeUndefined()
      expect(await store.members(directRoomId(alice, other), undefined, 10), JSON.stringify(other)).toEqual([])
    }
    // ?dm= and the version 2 `dm` come here too: the admission of a `?dm=server` refuses it before anything is made.
    await expect(hub.admitToRoom({ room: directRoomId(alice, 'server'), user: { id: alice, name: 'Alice' }, sender: alice, createsReadPosition: true, directWith: 'server' })).rejects.toMatchObject({ status: 400 })
    expect(await store.roomRecord(directRoomId(alice, 'server'))).toBeUndefined()
    expect(await listedRooms(hub, alice)).toEqual([])
    await hub.close()
  })
})
