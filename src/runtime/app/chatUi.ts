import { computed, shallowRef, type ComputedRef, type MaybeRefOrGetter, type ShallowRef, toValue } from 'vue'
import type { ChatUser } from '../shared/protocol'
import type { ChatMessage } from './messageLog'

/**
 * Nuxt UI's chat components (`UChatMessages`, `UChatMessage`, `UChatPrompt`) fed from `useChat()`.
 * The shapes below are the public ones those components take (AI SDK `UIMessage`: `id`, `role`,
 * `parts`; `ChatMessageProps`: `avatar`, `side`, `variant`), written out so this module does not
 * depend on @nuxt/ui or ai.
 */

/** A text part of a `UIMessage`. */
export interface ChatUiTextPart {
  type: 'text'
  text: string
  /** `'streaming'` while the message is pending (sent, not yet stored) or still being written (an AI member's streaming reply). */
  state?: 'streaming' | 'done'
}

/** What the adapter knows about a message besides its text, for slots and styling. */
export interface ChatUiMetadata<T = unknown> {
  /** The sender's display name. */
  user: string
  /** The sender's id (`guest:…` for guests). */
  uid?: string
  guest: boolean
  /** Sent by this client and not yet stored. */
  pending: boolean
  /** Sent by this client and refused or undelivered. */
  failed: boolean
  /** Stored at (ms since epoch); for a pending message, when it was sent. */
  ts: number
  /** The message parsed as JSON, as `useChat<T>()` has it. */
  data?: T
  /** Still being written by a stream (docs/PROTOCOL.md, "Streaming messages"). */
  streaming: boolean
  /** A streamed message that was cut: why. */
  incomplete?: ChatMessage<T>['incomplete']
}

/** One `UChatMessages` item: a `UIMessage` plus `UChatMessage` props for this sender. */
export interface ChatUiMessage<T = unknown> {
  'id': string
  /** `'user'` (shown on the right) for this client's own messages, `'assistant'` (left) for everyone else's. */
  'role': 'user' | 'assistant'
  'parts': ChatUiTextPart[]
  'metadata': ChatUiMetadata<T>
  /** `UAvatar` props: the sender's picture, or their initials from `alt`. */
  'avatar'?: { src?: string, alt?: string }
  /** Falls through to the message's root element: `data-pending="true"` / `data-failed="true"` for styling and tests. */
  'data-pending'?: 'true'
  'data-failed'?: 'true'
}

export interface ChatUiOptions<T = unknown> {
  /** Who this client is (`useChat().me`): their messages get `role: 'user'`. */
  me: MaybeRefOrGetter<ChatUser | null>
  /** A picture per sender; without one, `UAvatar` shows the initials of `alt` (the name). */
  avatar?: (message: ChatMessage<T>) => string | undefined
  /** The text shown for a message (e.g. render a JSON payload). @default the message text */
  text?: (message: ChatMessage<T>) => string
}

/** Whether this client sent `message` (pending and failed ones are always its own). */
function isOwn(message: ChatMessage, me: ChatUser | null): boolean {
  return message.pending === true || message.failed === true || (me !== null && message.uid !== undefined && message.uid === me.id)
}

/** Map `useChat()` messages to `UChatMessages` items: several people, own messages on the right, pending ones marked. */
export function toChatUiMessages<T>(messages: readonly ChatMessage<T>[], options: ChatUiOptions<T>): ChatUiMessage<T>[] {
  const me = toValue(options.me)
  return messages.map((message) => {
    const pending = message.pending === true
    const failed = message.failed === true
    const streaming = message.streaming === true
    const item: ChatUiMessage<T> = {
      // A pending message has no id yet: its cid keeps it the same element once stored.
      id: message.cid ?? (message.id === undefined ? `at-${message.ts}` : `id-${message.id}`),
      role: isOwn(message, me) ? 'user' : 'assistant',
      parts: [{ type: 'text', text: options.text ? options.text(message) : message.message, state: pending || streaming ? 'streaming' : 'done' }],
      metadata: { user: message.user, uid: message.uid, guest: message.guest === true, pending, failed, ts: message.ts, data: message.data, streaming, ...(message.incomplete ? { incomplete: message.incomplete } : {}) },
      avatar: { src: options.avatar?.(message), alt: message.user },
    }
    if (pending) item['data-pending'] = 'true'
    if (failed) item['data-failed'] = 'true'
    return item
  })
}

/** The subset of `useChat()` the adapter uses. */
interface ChatSource<T> {
  messages: ComputedRef<ChatMessage<T>[]>
  me: ComputedRef<ChatUser | null>
  status: ComputedRef<'OPEN' | 'CONNECTING' | 'CLOSED'>
  send: (data: string | T) => boolean
}

export interface UseChatUiReturn<T = unknown> {
  /** For `<UChatMessages :messages>`. */
  messages: ComputedRef<ChatUiMessage<T>[]>
  /** For `<UChatPrompt v-model>`. */
  input: ShallowRef<string>
  /** For `<UChatPrompt @submit>`: sends the input and empties it when accepted. */
  submit: () => void
  /** For `<UChatMessages :status>` / `<UChatPromptSubmit :status>`: `'streaming'` while the newest message is being written, `'ready'` while connected, else `'submitted'` (Nuxt UI shows it as busy). */
  status: ComputedRef<'ready' | 'submitted' | 'streaming'>
}

/**
 * Wire a `useChat()` room to Nuxt UI's chat components:
 * `<UChatMessages :messages="ui.messages.value" :status="ui.status.value" />` and
 * `<UChatPrompt v-model="ui.input.value" @submit="ui.submit" />`.
 */
export function useChatUi<T = unknown>(chat: ChatSource<T>, options: Omit<ChatUiOptions<T>, 'me'> = {}): UseChatUiReturn<T> {
  const input = shallowRef('')
  return {
    messages: computed(() => toChatUiMessages(chat.messages.value, { ...options, me: chat.me })),
    input,
    submit() {
      const text = input.value.trim()
      if (text && chat.send(text)) input.value = ''
    },
    status: computed(() => chat.status.value !== 'OPEN' ? 'submitted' : chat.messages.value.at(-1)?.streaming ? 'streaming' : 'ready'),
  }
}
