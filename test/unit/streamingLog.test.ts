/** A client's message log and Nuxt UI mapping of streaming messages (docs/PROTOCOL.md, "Streaming messages"). */
import { describe, expect, it } from 'vitest'
import { computed } from 'vue'
import { createMessageLog } from '../../src/runtime/app/messageLog'
import { toChatUiMessages, useChatUi } from '../../src/runtime/app/chatUi'
import type { ChatDeltaFrame, ChatEventFrame, ChatMessageFrame } from '../../src/runtime/shared/protocol'

const message = (fields: Partial<ChatMessageFrame> = {}): ChatMessageFrame => ({ type: 'message', id: 7, room: 'r', user: 'Assistant', uid: 'bot', message: '', ts: 1, streaming: true, ...fields })
const delta = (offset: number, text: string, id = 7): ChatDeltaFrame => ({ type: 'delta', room: 'r', id, offset, text, user: 'Assistant', uid: 'bot', message: '' })
const end = (text: string, fields: Partial<ChatEventFrame> = {}): ChatEventFrame => ({ type: 'edit', id: 9, room: 'r', user: 'Assistant', uid: 'bot', message: text, ts: 2, target: 7, ended: true, ...fields })

describe('the message log of a streaming message', () => {
  it('grows by deltas at their offset, drops repeats, ignores gaps and unknown messages, and ends on the edit', () => {
    const log = createMessageLog(100)
    expect(log.applyDelta(delta(0, 'early'))).toBe(false)
    log.add(message())
    expect(log.applyDelta(delta(0, 'Hel'))).toBe(true)
    expect(log.applyDelta(delta(3, 'lo'))).toBe(true)
    // A repeat (held during a replay) and a catch-up behind what is held change nothing.
    expect(log.applyDelta(delta(3, 'lo'))).toBe(false)
    expect(log.applyDelta(delta(0, 'Hel'))).toBe(false)
    // A gap: nothing applied; the catch-up (offset 0, the whole text so far) fills it.
    expect(log.applyDelta(delta(9, 'xyz'))).toBe(false)
    expect(log.get(7)!.message).toBe('Hello')
    expect(log.applyDelta(delta(0, 'Hello, wor'))).toBe(true)
    expect(log.applyDelta(delta(8, 'orld'))).toBe(true)
    expect(log.get(7)).toMatchObject({ message: 'Hello, world', streaming: true })
    expect(log.apply(end('Hello, world!', { incomplete: 'stopped' }))).toBe(true)
    expect(log.get(7)).toMatchObject({ message: 'Hello, world!', incomplete: 'stopped' })
    expect(log.get(7)!.streaming).toBeUndefined()
    expect(log.get(7)!.edited).toBeUndefined()
    // A late delta of an ended stream changes nothing.
    expect(log.applyDelta(delta(13, '?'))).toBe(false)
  })

  it('a replayed state of a stream keeps the longer text grown by deltas; the final state ends it', () => {
    const log = createMessageLog(100)
    log.add(message())
    log.applyDelta(delta(0, 'Hello there'))
    expect(log.add(message({ message: 'Hello', rev: 8 }))).toBe(true)
    expect(log.get(7)!.message).toBe('Hello there')
    log.add(message({ message: 'Hello there!', rev: 9, streaming: undefined, incomplete: 'interrupted' }))
    expect(log.get(7)).toMatchObject({ message: 'Hello there!', incomplete: 'interrupted' })
    expect(log.get(7)!.streaming).toBeUndefined()
  })
})

describe('useChatUi and streaming messages', () => {
  it('shows a streaming message as Nuxt UI\'s streaming state, and the room as streaming while the newest one is', () => {
    const log = createMessageLog(100)
    log.add(message({ message: 'Thinking' }))
    const [item] = toChatUiMessages(log.entries(), { me: null })
    expect(item!.parts[0]!.state).toBe('streaming')
    expect(item!.metadata.streaming).toBe(true)
    const messages = computed(() => log.entries())
    const ui = useChatUi({ messages, me: computed(() => null), status: computed(() => 'OPEN' as const), send: () => true })
    expect(ui.status.value).toBe('streaming')
    log.apply(end('Thinking done'))
    const ended = toChatUiMessages(log.entries(), { me: null })
    expect(ended[0]!.parts[0]!.state).toBe('done')
    expect(ended[0]!.metadata.streaming).toBe(false)
  })
})
