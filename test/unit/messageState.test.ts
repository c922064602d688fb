/**
 * The client's side of protocol revision 5: replayed states (`rev`) move the resume cursor over
 * numbers it never sees and replace the state of messages it holds; older changes do not undo them.
 */
import { describe, expect, it } from 'vitest'
import { createMessageLog } from '../../src/runtime/app/messageLog'
import { createResumeCursor } from '../../src/runtime/app/resumeCursor'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'

const message = (id: number, extra: Partial<ChatMessageFrame> = {}): ChatMessageFrame => ({ type: 'message', id, room: 'r', user: 'A', uid: 'u-a', message: `m${id}`, ts: id, ...extra })

describe('resume cursor', () => {
  it('jumps to a replayed frame\'s rev and goes on from there; frames without rev still need contiguous ids', () => {
    const cursor = createResumeCursor()
    cursor.connected()
    cursor.received(5)
    cursor.received(7)
    expect(cursor.value).toBe(5)
    // A replayed state current to 90: the numbers between were changes.
    cursor.received(90, true)
    expect(cursor.value).toBe(90)
    cursor.received(91)
    expect(cursor.value).toBe(91)
    cursor.received(50, true)
    expect(cursor.value).toBe(91)
    cursor.received(93)
    cursor.received(95, true)
    expect(cursor.value).toBe(95)
  })
})

describe('message log', () => {
  it('a replayed state replaces the one held when newer: text, edit, reactions, or the message goes when deleted', () => {
    const log = createMessageLog(100, () => 'u-b')
    log.add(message(1))
    log.add(message(2))
    expect(log.add(message(1, { message: 'edited', edited: 7, rev: 9, reactions: { '👍': ['u-b'] } }))).toBe(true)
    expect(log.get(1)).toMatchObject({ message: 'edited', edited: 7, reactions: [{ emoji: '👍', count: 1, mine: true }] })
    // A change applies whatever its number: one answered out of order (a POST's reply) must not hide an earlier one still on its way.
    expect(log.apply({ type: 'reaction', id: 10, room: 'r', target: 1, emoji: '🎉', on: true, user: 'B', uid: 'u-b', message: '🎉', ts: 10 })).toBe(true)
    expect(log.get(1)!.reactions).toEqual([{ emoji: '👍', count: 1, mine: true }, { emoji: '🎉', count: 1, mine: true }])
    // The same state again, or an older one, is no change.
    expect(log.add(message(1, { message: 'older', rev: 9 }))).toBe(false)
    expect(log.add(message(2, { message: '', deleted: true, rev: 12 }))).toBe(true)
    expect(log.entries().map(entry => entry.id)).toEqual([1])
  })

  it('a change the replayed state already includes is not applied again: a toggle answered after the replay does not flip back', () => {
    const log = createMessageLog(100, () => 'u-b')
    // Replayed current to 3: u-b's 👍 went on at 2 and off at 3; 🎉 on at 4 is not in it yet.
    log.add(message(1, { rev: 3 }))
    const toggle = (id: number, emoji: string, on: boolean) => ({ type: 'reaction' as const, id, room: 'r', target: 1, emoji, on, user: 'B', uid: 'u-b', message: emoji, ts: id, duplicate: true as const })
    expect(log.apply(toggle(2, '👍', true))).toBe(false)
    expect(log.apply({ type: 'edit', id: 3, room: 'r', target: 1, user: 'A', uid: 'u-a', message: 'stale', ts: 3 })).toBe(false)
    expect(log.get(1)).toMatchObject({ message: 'm1' })
    expect(log.get(1)!.reactions).toBeUndefined()
    expect(log.apply(toggle(4, '🎉', true))).toBe(true)
    expect(log.get(1)!.reactions).toEqual([{ emoji: '🎉', count: 1, mine: true }])
  })
})
