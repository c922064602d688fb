import { describe, expect, it } from 'vitest'
import { createMessageLog } from '../../src/runtime/app/messageLog'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'

const message = (id: number, text: string, extra: Partial<ChatMessageFrame> = {}): ChatMessageFrame => ({ type: 'message', id, room: 'r', user: 'Ann', uid: 'u-ann', message: text, ts: id, ...extra })

describe('the client log keeps replies\' excerpts current', () => {
  it('exposes replyTo and mentions, follows an edit of the original and marks its delete', () => {
    const log = createMessageLog(100)
    log.add(message(1, 'original'))
    log.add(message(2, 'reply', { user: 'Bob', uid: 'u-bob', replyTo: { id: 1, user: 'Ann', uid: 'u-ann', excerpt: 'original' }, mentions: ['u-ann'], mentionsAll: 'here' }))
    expect(log.get(2)).toMatchObject({ replyTo: { id: 1, excerpt: 'original' }, mentions: ['u-ann'], mentionsAll: 'here' })
    expect(log.apply({ type: 'edit', id: 3, room: 'r', target: 1, user: 'Ann', uid: 'u-ann', message: `new ${'y'.repeat(150)}`, ts: 3 })).toBe(true)
    expect(log.get(2)!.replyTo).toEqual({ id: 1, user: 'Ann', uid: 'u-ann', excerpt: `new ${'y'.repeat(96)}` })
    expect(log.apply({ type: 'delete', id: 4, room: 'r', target: 1, user: 'Ann', uid: 'u-ann', message: 'deleted a message', ts: 4 })).toBe(true)
    expect(log.get(2)!.replyTo).toEqual({ id: 1, user: 'Ann', uid: 'u-ann', excerpt: '', deleted: true })
  })

  it('updates replies to an original the log does not hold, and from a replayed newer state', () => {
    const log = createMessageLog(100)
    log.add(message(5, 'reply', { replyTo: { id: 1, user: 'Ann', excerpt: 'old' } }))
    expect(log.apply({ type: 'edit', id: 6, room: 'r', target: 1, user: 'Ann', message: 'edited', ts: 6 })).toBe(true)
    expect(log.get(5)!.replyTo!.excerpt).toBe('edited')
    log.add(message(7, 'held original'))
    log.add(message(8, 'reply 2', { replyTo: { id: 7, user: 'Ann', excerpt: 'held original' } }))
    expect(log.replaceState(message(7, 'replayed text', { rev: 12, edited: 12 }))).toBe(true)
    expect(log.get(8)!.replyTo!.excerpt).toBe('replayed text')
    expect(log.replaceState(message(7, '', { rev: 13, deleted: true }))).toBe(true)
    expect(log.get(8)!.replyTo).toMatchObject({ excerpt: '', deleted: true })
  })

  it('a reaction to the original changes no reply', () => {
    const log = createMessageLog(100)
    log.add(message(1, 'original'))
    log.add(message(2, 'reply', { replyTo: { id: 1, user: 'Ann', excerpt: 'original' } }))
    log.apply({ type: 'reaction', id: 3, room: 'r', target: 1, user: 'Ann', uid: 'u-ann', emoji: '👍', on: true, message: '👍', ts: 3 })
    expect(log.get(2)!.replyTo!.excerpt).toBe('original')
  })
})
