/** The Nuxt UI adapter: useChat() messages as UChatMessages items, and the prompt wired to send. */
import { computed, shallowRef } from 'vue'
import { describe, expect, it } from 'vitest'
import type { ChatMessage } from '../../src/runtime/app/messageLog'
import { toChatUiMessages, useChatUi } from '../../src/runtime/app/chatUi'
import type { ChatUser } from '../../src/runtime/shared/protocol'

const me: ChatUser = { id: 'u-ann', name: 'Ann' }
const log: ChatMessage<{ n: number }>[] = [
  { id: 1, room: 'r', user: 'Ann', uid: 'u-ann', message: 'hi', ts: 1, cid: 'c1' },
  { id: 2, room: 'r', user: 'Bob', uid: 'guest:b', guest: true, message: 'hey', ts: 2 },
  { id: 3, room: 'r', user: 'Cy', uid: 'u-cy', message: '{"n":3}', ts: 3, data: { n: 3 } },
  { room: 'r', user: 'Ann', message: 'on its way', ts: 4, cid: 'c2', pending: true },
  { room: 'r', user: 'Ann', message: 'refused', ts: 5, cid: 'c3', failed: true },
]

describe('toChatUiMessages', () => {
  it('puts own messages on the right (user), everyone else\'s on the left (assistant), with names and avatars', () => {
    const items = toChatUiMessages(log, { me, avatar: message => message.uid === 'u-cy' ? '/cy.png' : undefined })
    expect(items.map(item => [item.id, item.role, item.parts[0]!.text, item.metadata.user, item.avatar])).toEqual([
      ['c1', 'user', 'hi', 'Ann', { src: undefined, alt: 'Ann' }],
      ['id-2', 'assistant', 'hey', 'Bob', { src: undefined, alt: 'Bob' }],
      ['id-3', 'assistant', '{"n":3}', 'Cy', { src: '/cy.png', alt: 'Cy' }],
      ['c2', 'user', 'on its way', 'Ann', { src: undefined, alt: 'Ann' }],
      ['c3', 'user', 'refused', 'Ann', { src: undefined, alt: 'Ann' }],
    ])
    expect(items[1]!.metadata.guest).toBe(true)
    expect(items[2]!.metadata.data).toEqual({ n: 3 })
  })

  it('marks pending and failed messages', () => {
    const items = toChatUiMessages(log, { me })
    expect(items.map(item => [item.parts[0]!.state, item['data-pending'], item['data-failed']])).toEqual([
      ['done', undefined, undefined], ['done', undefined, undefined], ['done', undefined, undefined], ['streaming', 'true', undefined], ['done', undefined, 'true'],
    ])
  })

  it('before the welcome (me unknown), only pending and failed messages are own; text can be rendered from the payload', () => {
    const items = toChatUiMessages(log, { me: null, text: message => message.data ? `n = ${message.data.n}` : message.message })
    expect(items.map(item => item.role)).toEqual(['assistant', 'assistant', 'assistant', 'user', 'user'])
    expect(items[2]!.parts[0]!.text).toBe('n = 3')
  })
})

describe('useChatUi', () => {
  it('sends the prompt\'s input and empties it when accepted, keeps it when refused; status follows the connection', () => {
    const sent: string[] = []
    let accept = true
    const status = shallowRef<'OPEN' | 'CONNECTING' | 'CLOSED'>('CONNECTING')
    const ui = useChatUi({ messages: computed(() => log), me: computed(() => me), status: computed(() => status.value), send: (text) => {
      sent.push(text as string)
      return accept
    } })
    expect(ui.status.value).toBe('submitted')
    status.value = 'OPEN'
    expect(ui.status.value).toBe('ready')
    ui.input.value = '  hello  '
    ui.submit()
    expect(sent).toEqual(['hello'])
    expect(ui.input.value).toBe('')
    accept = false
    ui.input.value = 'again'
    ui.submit()
    expect(ui.input.value).toBe('again')
    ui.input.value = '   '
    ui.submit()
    expect(sent).toEqual(['hello', 'again'])
    expect(ui.messages.value.map(item => item.role)).toEqual(['user', 'assistant', 'assistant', 'user', 'user'])
  })
})
