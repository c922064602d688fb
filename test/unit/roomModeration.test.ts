/**
 * A mute lasts until it ends, whatever happens to the membership (docs/PROTOCOL.md, "Moderation
 * commands"), on every store: leaving for good, a removal, a membership that goes with a read
 * position (the `maxReadPositions` cap, retention), server code's `forget`; a new membership
 * (joining again, an invite) keeps it. A mute of someone who is no member keeps a mute-only row
 * that admits nowhere (a private room stays closed to them) and lists nothing.
 */
import { randomUUID } from 'node:crypto'
import { createHooks } from 'hookable'
import { describe, expect, it } from 'vitest'
import type { ChatMemberActionContext, ChatRuntimeHooks } from '../../src/runtime/types'
import type { ChatMemberFrame } from '../../src/runtime/shared/protocol'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'
import { createRoomAccess } from '../../src/runtime/server/utils/roomAccess'
import { createRoomModeration } from '../../src/runtime/server/utils/roomModeration'
import { mayAct, MUTED_FOREVER, type RoomMember } from '../../src/runtime/server/utils/roomMembers'
import { closedAfterAll, roomLogBackends } from '../utils/roomLogs'

const backends = roomLogBackends('nuxt-chat-moderation-')
const opened = closedAfterAll()
const logger = { error: () => {} }
const name = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`

/** Moderation and admission over one store, with what they told. */
function moderated(log: RoomLog) {
  const hooks = createHooks<ChatRuntimeHooks>()
  const actions: ChatMemberActionContext[] = []
  hooks.hook('chat:action', (context) => {
    if ('subject' in context) actions.push({ ...context })
  })
  const frames: ChatMemberFrame[] = []
  const added: string[] = []
  const access = createRoomAccess({ store: log, logger })
  const moderation = createRoomModeration({ store: log, hooks, logger, changed: (frame) => {
    frames.push(frame)
    access.forget(frame.room, frame.uid)
  }, added: (room, uid) => void added.push(`${room} ${uid}`) })
  return { moderation, access, actions, frames, added }
}

const publicRoom = async (log: RoomLog, owner: string, visibility: 'public' | 'private' = 'public') => {
  const room = name(visibility)
  await log.createRoom({ id: room, title: room, topic: '', visibility, kind: 'room', createdBy: owner, createdAt: 1 })
  await log.saveMember({ room, uid: owner, role: 'owner', joinedAt: 1 })
  return room
}

describe.each(backends)('a mute kept past the membership: %s', (_name, create) => {
  const open = () => {
    const log = create()
    opened.push(log)
    return log
  }

  it('a muted member who leaves for good is no member, still muted; joining again makes a membership with the mute', async () => {
    const log = open()
    const { moderation, access, frames, added } = moderated(log)
    const [owner, troll] = [name('u-owner'), name('u-troll')]
    const room = await publicRoom(log, owner)
    expect(await moderation.add({ room, uid: troll, role: 'member', joinedAt: 2 })).toBe(true)
    expect(await moderation.act(room, { type: 'mute', user: troll }, { id: owner, name: owner })).toMatchObject({ frame: { role: 'member', mutedUntil: MUTED_FOREVER } })

    expect(await moderation.act(room, { type: 'remove', user: troll }, { id: troll, name: troll })).toEqual({ frame: { type: 'member', room, uid: troll, mutedUntil: MUTED_FOREVER, removed: true } })
    expect(await log.member(room, troll)).toEqual({ room, uid: troll, role: 'member', joinedAt: 2, mutedUntil: MUTED_FOREVER, muteOnly: true })
    expect(await log.memberRooms(troll, 10)).toEqual([])
    expect(await log.memberNames(room, 10)).toEqual([{ uid: owner, name: '' }])
    // A public room admits them to read; sending as a non-member meets the mute.
    expect(await access.decide(room, { id: troll, name: troll }, 'read')).toMatchObject({ allowed: true })
    expect(await access.decide(room, { id: troll, name: troll }, 'send')).toMatchObject({ allowed: false, code: 'muted', mutedUntil: MUTED_FOREVER })
    // Nothing more to leave.
    expect(await moderation.act(room, { type: 'remove', user: troll }, { id: troll, name: troll })).toMatchObject({ status: 404 })

    // Joining again (a plain membership unless they have one): the mute comes with it.
    added.length = 0
    expect(await moderation.add({ room, uid: troll, role: 'member', joinedAt: 3 })).toBe(true)
    expect(await log.member(room, troll)).toEqual({ room, uid: troll, role: 'member', joinedAt: 3, mutedUntil: MUTED_FOREVER })
    expect(frames.at(-1)).toEqual({ type: 'member', room, uid: troll, role: 'member', mutedUntil: MUTED_FOREVER })
    expect(added).toEqual([`${room} ${troll}`])
    expect(await access.decide(room, { id: troll, name: troll }, 'send')).toMatchObject({ allowed: false, code: 'muted' })
    expect(await log.addMemberIfAbsent({ room, uid: troll, role: 'member', joinedAt: 4 })).toBe(false)
  })

  it('a removal, server code\'s end of a membership and a ban keep what they must; an expired mute goes with the membership', async () => {
    const log = open()
    const { moderation, access } = moderated(log)
    const [owner, muted, expired, forgotten, banned] = ['u-owner', 'u-muted', 'u-expired', 'u-forgotten', 'u-banned'].map(name) as [string, string, string, string, string]
    const room = await publicRoom(log, owner)
    const ownerActor = { id: owner, name: owner }
    const until = Date.now() + 60_000
    await log.saveMember({ room, uid: muted, role: 'moderator', joinedAt: 2, mutedUntil: until })
    await log.saveMember({ room, uid: expired, role: 'member', joinedAt: 2, mutedUntil: Date.now() - 1 })
    await log.saveMember({ room, uid: forgotten, role: 'member', joinedAt: 2, mutedUntil: until })
    await log.saveMember({ room, uid: banned, role: 'member', joinedAt: 2, mutedUntil: until })

    // A muted moderator removed by the owner: no role left, the mute stays.
    expect(await moderation.act(room, { type: 'remove', user: muted }, ownerActor)).toEqual({ frame: { type: 'member', room, uid: muted, mutedUntil: until, removed: true } })
    expect(await log.member(room, muted)).toMatchObject({ role: 'member', mutedUntil: until, muteOnly: true })
    expect(await moderation.act(room, { type: 'remove', user: expired }, { id: expired, name: expired })).toEqual({ frame: { type: 'member', room, uid: expired, removed: true } })
    expect(await log.member(room, expired)).toBeUndefined()

    expect(await moderation.end(room, forgotten)).toBe(true)
    expect(await log.member(room, forgotten)).toMatchObject({ mutedUntil: until, muteOnly: true })
    expect(await moderation.end(room, forgotten)).toBe(false)
    expect(await access.decide(room, { id: forgotten, name: forgotten }, 'send')).toMatchObject({ allowed: false, code: 'muted' })

    // A role is for members; a ban replaces the mute for good.
    expect(await moderation.act(room, { type: 'role', user: muted, role: 'moderator' }, ownerActor)).toMatchObject({ status: 403 })
    expect(await moderation.act(room, { type: 'role', user: muted, role: 'moderator' })).toMatchObject({ status: 404 })
    expect(await moderation.act(room, { type: 'ban', user: muted }, ownerActor)).toEqual({ frame: { type: 'member', room, uid: muted, role: 'member', banned: true, removed: true } })
    expect(await log.member(room, muted)).toEqual({ room, uid: muted, role: 'member', joinedAt: 2, banned: true })
    await moderation.act(room, { type: 'ban', user: banned }, ownerActor)
    expect(await moderation.end(room, banned)).toBe(false)
    expect(await log.member(room, banned)).toMatchObject({ banned: true })
    // A role change keeps the mute.
    await log.saveMember({ room, uid: expired, role: 'member', joinedAt: 3, mutedUntil: until })
    expect(await moderation.act(room, { type: 'role', user: expired, role: 'moderator' }, ownerActor)).toMatchObject({ frame: { role: 'moderator', mutedUntil: until } })
  })

  it('a mute of someone who is no member keeps a mute-only row: no way into a private room, no membership; an invite over it keeps the mute; an unmute deletes it', async () => {
    const log = open()
    const { moderation, access, actions, added } = moderated(log)
    const [owner, outsider, other] = [name('u-owner'), name('u-outsider'), name('u-other')]
    const room = await publicRoom(log, owner, 'private')
    const ownerActor = { id: owner, name: owner }
    const soon = Date.now() + 60_000
    expect(await moderation.act(room, { type: 'mute', user: outsider, until: soon }, ownerActor)).toEqual({ frame: { type: 'member', room, uid: outsider, mutedUntil: soon } })
    expect(actions.at(-1)).toMatchObject({ action: 'mute', subject: outsider, allow: true })
    expect(await log.member(room, outsider)).toMatchObject({ muteOnly: true, mutedUntil: soon })
    expect(added).toEqual([])
    expect(await access.decide(room, { id: outsider, name: outsider }, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })
    expect(await log.memberRooms(outsider, 10)).toEqual([])
    expect(await log.memberReads(room, 10)).toEqual(new Map([[owner, 0]]))
    // Once the mute ends, still no way in: the row never was a membership.
    await log.saveMember({ room, uid: outsider, role: 'member', joinedAt: 2, mutedUntil: Date.now() - 1, muteOnly: true })
    expect(await access.decide(room, { id: outsider, name: outsider }, 'read')).toMatchObject({ allowed: false, code: 'forbidden' })

    // The rules take a mute-only row as no membership: an invite is allowed, and the mute stays with it.
    const row = { room, uid: other, role: 'member', joinedAt: 2, mutedUntil: soon, muteOnly: true } satisfies RoomMember
    expect(mayAct('invite', { room, uid: owner, role: 'moderator', joinedAt: 1 }, row)).toBe(true)
    await log.saveMember(row)
    expect(await moderation.act(room, { type: 'invite', user: other }, ownerActor)).toMatchObject({ frame: { role: 'member', mutedUntil: soon } })
    expect(await log.member(room, other)).toMatchObject({ role: 'member', mutedUntil: soon })
    expect(await log.member(room, other)).not.toHaveProperty('muteOnly')
    expect(added).toEqual([`${room} ${other}`])
    expect(await access.decide(room, { id: other, name: other }, 'read')).toMatchObject({ allowed: true })

    // Unmuting a mute-only row deletes it; unmuting someone with no row at all is not_found.
    await moderation.act(room, { type: 'mute', user: outsider, until: soon }, ownerActor)
    expect(await moderation.act(room, { type: 'mute', user: outsider, until: 0 }, ownerActor)).toEqual({ frame: { type: 'member', room, uid: outsider } })
    expect(await log.member(room, outsider)).toBeUndefined()
    expect(await moderation.act(room, { type: 'mute', user: outsider, until: 0 }, ownerActor)).toMatchObject({ status: 404 })
  })

  it('a muted plain membership that goes with a position evicted by the cap stays as its mute; an unmuted one goes', async () => {
    const log = open()
    const uid = name('u-troll')
    const [muted, plain, next] = ['muted', 'plain', 'next'].map(name) as [string, string, string]
    for (const room of [muted, plain]) {
      await log.joinRead(room, uid, 10)
      await new Promise(resolve => setTimeout(resolve, 3))
    }
    await log.saveMember({ room: muted, uid, role: 'member', joinedAt: 1, mutedUntil: MUTED_FOREVER })
    await log.saveMember({ room: plain, uid, role: 'member', joinedAt: 1 })
    expect((await log.joinRead(next, uid, 1)).evicted.toSorted()).toEqual([muted, plain].toSorted())
    expect(await log.member(plain, uid)).toBeUndefined()
    expect(await log.member(muted, uid)).toEqual({ room: muted, uid, role: 'member', joinedAt: 1, mutedUntil: MUTED_FOREVER, muteOnly: true })
    expect(await log.memberRooms(uid, 10)).toEqual([])
  })
})

// Not on the shared PostgreSQL: pruning by a short age there would take other test runs' positions.
describe.each(backends.filter(([backend]) => backend !== 'postgresql'))('a mute kept past retention: %s', (_name, create) => {
  it('a muted plain membership whose idle position retention prunes stays as its mute', async () => {
    const log = create()
    opened.push(log)
    const uid = name('u-troll')
    const [muted, plain] = ['muted', 'plain'].map(name) as [string, string]
    for (const room of [muted, plain]) await log.joinRead(room, uid)
    await log.saveMember({ room: muted, uid, role: 'member', joinedAt: 1, mutedUntil: MUTED_FOREVER })
    await log.saveMember({ room: plain, uid, role: 'member', joinedAt: 1 })
    await new Promise(resolve => setTimeout(resolve, 120))
    expect((await log.pruneReads(100, 100)).map(position => position.room).toSorted()).toEqual([muted, plain].toSorted())
    expect(await log.member(plain, uid)).toBeUndefined()
    expect(await log.member(muted, uid)).toMatchObject({ mutedUntil: MUTED_FOREVER, muteOnly: true })
  })
})
