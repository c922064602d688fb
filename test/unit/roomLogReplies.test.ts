import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { RoomLogInputError } from '../../src/runtime/server/utils/roomLog'
import { messageFrame } from '../../src/runtime/server/utils/roomDelivery'
import { closedAfterAll, roomLogBackends } from '../utils/roomLogs'

const backends = roomLogBackends('nuxt-chat-replies-')
const opened = closedAfterAll()

describe.each(backends)('replies and mentions in the room log: %s', (_name, create) => {
  const setup = () => {
    const log = create()
    opened.push(log)
    const room = `replies-${randomUUID().slice(0, 8)}`
    const send = (message: string, extra: object = {}, sender = 'u-ann', user = 'Ann') => log.append({ room, user, sender, message, ts: Date.now(), ...extra })
    return { log, room, send }
  }

  it('a reply carries its original\'s author and excerpt, current after an edit, marked after a delete, everywhere it is served', async () => {
    const { log, room, send } = setup()
    const original = (await send(`first ${'x'.repeat(200)}`)).message
    const reply = await send('agreed', { replyTo: original.id, cid: 'c-reply' }, 'u-bob', 'Bob')
    expect(reply.message.replyTo).toEqual({ id: original.id, user: 'Ann', uid: 'u-ann', excerpt: `first ${'x'.repeat(94)}` })
    await log.append({ room, user: 'Ann', sender: 'u-ann', message: 'edited 🌸'.repeat(30), ts: Date.now(), kind: 'edit', target: original.id })
    const excerpt = [...'edited 🌸'.repeat(30)].slice(0, 100).join('')
    const served = [
      (await log.replaySince(room, undefined, 10)).find(m => m.id === reply.message.id),
      (await log.replaySince(room, 0, 10)).find(m => m.id === reply.message.id),
      (await log.before(room, 100, 10)).find(m => m.id === reply.message.id),
      (await log.between(room, 0, 100)).find(m => m.id === reply.message.id),
      await log.message(room, reply.message.id),
      await log.byCid(room, 'u-bob', 'c-reply'),
    ]
    for (const message of served) expect(message?.replyTo).toEqual({ id: original.id, user: 'Ann', uid: 'u-ann', excerpt })
    // A repeated cid answers with the current excerpt too.
    expect((await send('agreed', { replyTo: original.id, cid: 'c-reply' }, 'u-bob', 'Bob')).message.replyTo?.excerpt).toBe(excerpt)
    await log.append({ room, user: 'Ann', sender: 'u-ann', message: '', ts: Date.now(), kind: 'delete', target: original.id })
    const deleted = await log.message(room, reply.message.id)
    expect(deleted?.replyTo).toEqual({ id: original.id, user: 'Ann', uid: 'u-ann', excerpt: '', deleted: true })
    expect((messageFrame(deleted!) as { replyTo?: unknown }).replyTo).toEqual(deleted?.replyTo)
  })

  it('mentions are stored with the message and counted as unread mentions above the read position', async () => {
    const { log, room, send } = setup()
    await log.joinRead(room, 'u-bob')
    await log.joinRead(room, 'u-cat')
    const named = await send('@Bob look', { mentions: ['u-bob'] })
    await send('@room hello', { mentionsAll: 'room' })
    await send('no mention')
    expect(named.message.mentions).toEqual(['u-bob'])
    const replayed = await log.replaySince(room, undefined, 10)
    expect(replayed.map(m => [m.mentions, m.mentionsAll])).toEqual([[['u-bob'], undefined], [undefined, 'room'], [undefined, undefined]])
    expect((await log.readState(room, 'u-bob'))?.mentions).toBe(2)
    expect((await log.readState(room, 'u-cat'))?.mentions).toBe(1)
    // The sender's own @room is no mention of them.
    await log.joinRead(room, 'u-ann')
    await send('@room again', { mentionsAll: 'room' })
    expect((await log.readState(room, 'u-ann'))?.mentions).toBe(0)
    expect((await log.readState(room, 'u-bob'))?.mentions).toBe(3)
    // A deleted message mentions no one any more; a read moves the count down.
    await log.append({ room, user: 'Ann', sender: 'u-ann', message: '', ts: Date.now(), kind: 'delete', target: named.message.id })
    expect((await log.readState(room, 'u-bob'))?.mentions).toBe(2)
    // Its tombstone tells nothing of whom it named.
    expect(messageFrame((await log.message(room, named.message.id))!)).not.toHaveProperty('mentions')
    await log.markRead(room, 'u-bob', named.message.id + 1)
    expect((await log.readState(room, 'u-bob'))?.mentions).toBe(1)
    await log.markRead(room, 'u-bob')
    expect((await log.readState(room, 'u-bob'))?.mentions).toBe(0)
  })

  it('refuses replyTo on a change and mentions it cannot store', async () => {
    const { log, room, send } = setup()
    const original = (await send('hi')).message
    await expect(log.append({ room, user: 'Ann', sender: 'u-ann', message: 'x', ts: Date.now(), kind: 'edit', target: original.id, replyTo: original.id })).rejects.toBeInstanceOf(RoomLogInputError)
    await expect(send('x', { mentions: ['bad\0id'] })).rejects.toBeInstanceOf(RoomLogInputError)
    await expect(send('x', { mentionsAll: 'everyone' })).rejects.toBeInstanceOf(RoomLogInputError)
  })

  it('memberNames gives the members not banned, with their kept names', async () => {
    const { log, room } = setup()
    await log.saveMember({ room, uid: 'u-ann', role: 'owner', joinedAt: 1 })
    await log.saveMember({ room, uid: 'u-new', role: 'member', joinedAt: 1 })
    await log.saveMember({ room, uid: 'u-ban', role: 'member', joinedAt: 1, banned: true })
    await log.saveUserName('u-ann', 'Ann', 1)
    await log.saveUserName('u-ban', 'Banned', 1)
    expect((await log.memberNames(room, 100)).toSorted((a, b) => a.uid < b.uid ? -1 : 1)).toEqual([{ uid: 'u-ann', name: 'Ann' }, { uid: 'u-new', name: '' }])
  })
})
