import { computed, getCurrentInstance, getCurrentScope, onMounted, onScopeDispose, shallowRef, toValue, watch, type ComputedRef, type MaybeRefOrGetter } from 'vue'
import { tryUseNuxtApp, useRuntimeConfig } from '#app'
import { DEFAULT_ROOM, type ChatMemberRole, type ChatUser } from '../../shared/protocol'
import { createChatConnection, type ChatClientError, type ChatConnection, type ChatReconnectOptions, type ChatSendOptions, type ChatStatus, type ChatTransport } from '../chatConnection'
import { guestKey } from '../identity'
import type { ChatMessage } from '../messageLog'
import type { ChatMessageFile } from '../uploads'

export type { ChatMessage, ChatStatus, ChatTransport, ChatClientError, ChatReconnectOptions, ChatSendOptions, ChatMessageFile }

export interface UseChatOptions {
  /**
   * Room to join (reactive: changing it switches rooms). Components on the same room, name and
   * transport share one connection, made with the options of the first of them.
   * @default 'chat'
   */
  room?: MaybeRefOrGetter<string>
  /**
   * Open the direct room with this user id instead of `room` (signed-in users only; a guest is
   * refused `unauthorized`). Both people get the same room; reactive like `room`.
   */
  dm?: MaybeRefOrGetter<string | undefined>
  /** Display name wish; the server's identify hook may override it. @default the peer id */
  name?: MaybeRefOrGetter<string | undefined>
  /** `'ws'`: WebSocket. `'sse'`: EventSource to receive, POST to send. @default 'ws' */
  transport?: MaybeRefOrGetter<ChatTransport>
  /** Connect when created. @default true */
  immediate?: boolean
  /** Reconnect with exponential backoff and jitter; the attempt count resets after each successful connect. @default true */
  autoReconnect?: boolean | ChatReconnectOptions
  /** Keep at most this many messages. @default 500 */
  maxMessages?: number
  /** Messages that may wait for a connection; beyond it `send()` returns false. @default 100 */
  maxQueue?: number
  /** App-level heartbeat (WebSocket only: SSE relies on EventSource's own error); `false` turns it off. @default the module's `heartbeat` option */
  heartbeat?: boolean | { interval?: number, timeout?: number }
  /** A typing notice expires after this many ms without a new one. @default 4000 */
  typingTimeout?: number
  /**
   * After a room switch (or unmount), the old room's connection stays up at most this many ms
   * to deliver messages still waiting; what is left then is marked `failed` and reported as
   * `error.code === 'undelivered'`.
   * @default 10000
   */
  drainTimeout?: number
}

export interface UseChatReturn<T = unknown> {
  /** The room's messages, sorted by id, each once; pending ones last. */
  messages: ComputedRef<ChatMessage<T>[]>
  /** `'CONNECTING'`, `'OPEN'` or `'CLOSED'`. */
  status: ComputedRef<ChatStatus>
  /** Who is online (one entry per user, however many tabs). */
  users: ComputedRef<ChatUser[]>
  /** Who else is typing. */
  typing: ComputedRef<ChatUser[]>
  /** The last error (refused message, full queue, dead connection, refused connect, undelivered after a room switch). */
  error: ComputedRef<ChatClientError | null>
  /** This client as the server named it. */
  me: ComputedRef<ChatUser | null>
  /** This user's role in the room (`'owner'`, `'moderator'`, `'member'`); undefined without a membership (a guest, a public room never joined as a member). Kept current live. */
  role: ComputedRef<ChatMemberRole | undefined>
  /** Muted in the room until then (epoch ms: sends are refused `muted`); undefined when not muted. */
  mutedUntil: ComputedRef<number | undefined>
  /** Send text, or a value as JSON. False when refused locally (too long, empty, queue full) or while the server refuses this client (`unauthorized` / `forbidden`). */
  send: (data: string | T, options?: ChatSendOptions) => boolean
  /** Ping the server (WebSocket); the answer is a `pong` frame. */
  ping: () => void
  /** Call on input; throttled. WebSocket only. */
  notifyTyping: () => void
  /** Connect, or reconnect now (also after a refusal, e.g. once signed in). */
  open: () => void
  /** Disconnect and stay disconnected. */
  close: () => void
  /** Empty the shown messages (old ones do not come back on reconnect). */
  clear: () => void
  /** Older messages may exist in the store: `loadOlder()` would find some. */
  hasMore: ComputedRef<boolean>
  /**
   * Load up to `limit` (default 50) older messages from the store and merge them into `messages`
   * in order; resolves to how many were added. Loaded pages are not evicted by `maxMessages`
   * until `dropOlder()`.
   */
  loadOlder: (limit?: number) => Promise<number>
  /** Let `maxMessages` apply again to pages `loadOlder` added (call when the user is back at the newest messages). */
  dropOlder: () => void
  /** Edit a stored message (by default only your own; see `editWindow` and the `chat:action` hook); false when refused locally. */
  edit: (id: number, data: string | T) => boolean
  /** Delete a stored message (by default only your own); it leaves `messages` on every client. */
  remove: (id: number) => boolean
  /** Toggle a reaction on a stored message: `messages[i].reactions` holds `{ emoji, count, mine }`. */
  react: (id: number, emoji: string) => boolean
  /** Stop a streaming message (`messages[i].streaming`): an AI member's reply you asked for, or any as a moderator. */
  stop: (id: number) => boolean
  /**
   * Messages from others this signed-in user has not read in the room, kept by the server per
   * user (so every device agrees) and updated live. Always 0 for a guest.
   */
  unread: ComputedRef<number>
  /**
   * Mark the room read up to message `id` (default: the newest this client holds), on every
   * device of this user. Only moves forward. False for a guest (guests have no read state).
   */
  markRead: (id?: number) => boolean
  /**
   * In a direct room or a room of at most 50 members (on the tab's shared connection): each
   * member's read position by id, kept current live. Empty elsewhere.
   */
  readBy: ComputedRef<Readonly<Record<string, number>>>
  /** The ids of the other members who have read message `id` ("Seen by"; see `readBy`). */
  seenBy: (id: number) => string[]
  /** Where an attachment of a message is shown or downloaded from: the local preview while it uploads, else the files route. */
  fileUrl: (file: ChatMessageFile) => string
  /**
   * The thread of stored message `parent`, on the same connection: its replies (kept out of
   * `messages`; the parent's `replies` summarizes them), older pages, and send into it.
   */
  thread: (parent: MaybeRefOrGetter<number>) => ChatThreadView<T>
}

/** One thread of a room (`useChat().thread(id)`). */
export interface ChatThreadView<T = unknown> {
  /** The thread's replies this client holds, oldest first, pending ones last. */
  messages: ComputedRef<ChatMessage<T>[]>
  /** Answer in the thread; `alsoInRoom` shows the reply in the room's timeline too. False when refused locally. */
  send: (data: string | T, options?: { alsoInRoom?: boolean }) => boolean
  /** Load up to `limit` (default 50) older replies from the store; resolves to how many were added. */
  loadOlder: (limit?: number) => Promise<number>
  /** For a signed-in person who started the thread or answered in it: replies from others above their read position in the room (`markRead` marks them read). */
  unread: ComputedRef<number>
}

interface SharedConnection {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one registry holds connections of every message type
  connection: ChatConnection<any>
  holders: number
  /** Released, still delivering its queue: taking it back cancels that. */
  keep?: () => void
}

// Components on the same room, transport and name share one connection.
const connections = new Map<string, SharedConnection>()
let resumeListening = false

/** Reconnect at once when the browser is back online or the tab is shown again. */
function listenForResume() {
  if (resumeListening) return
  resumeListening = true
  const resume = () => {
    if (document.visibilityState === 'hidden') return
    for (const { connection } of connections.values()) connection.resume()
  }
  window.addEventListener('online', resume)
  document.addEventListener('visibilitychange', resume)
}

/**
 * Real-time chat in a room: messages, presence, typing, sending with an offline queue,
 * reconnection that resumes without gaps or duplicates. Does nothing during SSR.
 */
export function useChat<T = unknown>(options: UseChatOptions = {}): UseChatReturn<T> {
  const current = shallowRef<ChatConnection<T>>()
  /** What a room left behind could not deliver (the new room's connection knows nothing of it). */
  const leftBehind = shallowRef<ChatClientError | null>(null)
  // Hydration: the first client render must match the server's (nothing connected), so live values show after mount.
  const live = shallowRef(!(getCurrentInstance() && tryUseNuxtApp()?.isHydrating))
  if (!live.value) onMounted(() => live.value = true)
  const pick = <K extends 'messages' | 'status' | 'users' | 'typing' | 'me' | 'role' | 'mutedUntil' | 'hasMore' | 'unread' | 'readBy'>(key: K, fallback: ChatConnection<T>[K]['value']) =>
    computed(() => live.value && current.value ? current.value[key].value : fallback) as ComputedRef<ChatConnection<T>[K]['value']>
  const filesConfig = useRuntimeConfig().public.chat.files
  const result: UseChatReturn<T> = {
    messages: pick('messages', []),
    status: pick('status', 'CLOSED'),
    users: pick('users', []),
    typing: pick('typing', []),
    error: computed(() => live.value ? current.value?.error.value ?? leftBehind.value : null),
    me: pick('me', null),
    role: pick('role', undefined),
    mutedUntil: pick('mutedUntil', undefined),
    send: (data, options) => current.value?.send(data, options) ?? false,
    ping: () => current.value?.ping(),
    notifyTyping: () => current.value?.notifyTyping(),
    open: () => current.value?.open(),
    close: () => current.value?.close(),
    clear: () => current.value?.clear(),
    hasMore: pick('hasMore', false),
    loadOlder: limit => current.value?.loadOlder(limit) ?? Promise.resolve(0),
    dropOlder: () => current.value?.dropOlder(),
    edit: (id, data) => current.value?.edit(id, data) ?? false,
    remove: id => current.value?.remove(id) ?? false,
    react: (id, emoji) => current.value?.react(id, emoji) ?? false,
    stop: id => current.value?.stop(id) ?? false,
    unread: pick('unread', 0),
    markRead: id => current.value?.markRead(id) ?? false,
    readBy: pick('readBy', {}),
    seenBy: id => live.value ? current.value?.seenBy(id) ?? [] : [],
    fileUrl: file => file.url ?? (filesConfig ? `${filesConfig.route}/${file.id}` : ''),
    thread: parent => ({
      messages: computed(() => live.value && current.value ? current.value.threadMessages(toValue(parent)) : []),
      send: (data, options = {}) => current.value?.send(data, { thread: toValue(parent), alsoInRoom: options.alsoInRoom }) ?? false,
      loadOlder: limit => current.value?.loadThread(toValue(parent), limit) ?? Promise.resolve(0),
      unread: computed(() => live.value && current.value ? current.value.threadUnread(toValue(parent)) : 0),
    }),
  }
  if (typeof window === 'undefined') return result

  const config = useRuntimeConfig().public.chat
  const heartbeat = options.heartbeat === false ? false : { ...config.heartbeat, ...(options.heartbeat === true ? {} : options.heartbeat) }
  const drainTimeout = options.drainTimeout ?? 10_000
  const guest = guestKey()
  let heldKey: string | undefined

  const release = () => {
    if (!heldKey) return
    const key = heldKey
    heldKey = undefined
    const shared = connections.get(key)
    if (!shared || --shared.holders > 0) return
    // Nothing send() accepted may vanish: the old room stays connected until its queue is delivered (bounded).
    shared.keep = shared.connection.release(drainTimeout, () => {
      const reported = shared.connection.error.value
      if (reported?.code === 'undelivered') leftBehind.value = reported
      if (connections.get(key) === shared && !shared.holders) connections.delete(key)
    })
  }

  watch(
    () => [toValue(options.room) ?? DEFAULT_ROOM, toValue(options.name) || undefined, toValue(options.transport) ?? 'ws', toValue(options.dm) || undefined] as const,
    ([room, name, transport, dm]) => {
      // A direct room is known by the other person's id until the server names it (`|` is in no room name).
      const key = `${transport}|${dm === undefined ? room : `dm|${dm}`}|${name ?? ''}`
      if (key === heldKey) return
      release()
      let shared = connections.get(key)
      if (!shared) {
        shared = {
          holders: 0,
          connection: createChatConnection<T>({
            room,
            ...(dm === undefined ? {} : { dm }),
            name,
            transport,
            route: config.route,
            sseRoute: config.sseRoute,
            maxLength: config.maxLength,
            maxMessages: options.maxMessages ?? 500,
            maxQueue: options.maxQueue ?? 100,
            autoReconnect: options.autoReconnect ?? true,
            heartbeat,
            typingTimeout: options.typingTimeout ?? 4000,
            guestKey: guest,
            // Every room of the tab on one WebSocket (docs/use-chat.md, "One connection per tab").
            shareSocket: true,
            files: config.files,
          }),
        }
        connections.set(key, shared)
        if (options.immediate !== false) shared.connection.open()
      }
      shared.keep?.()
      shared.keep = undefined
      shared.holders++
      heldKey = key
      current.value = shared.connection
    },
    { immediate: true, flush: 'sync' },
  )
  listenForResume()
  if (getCurrentScope()) onScopeDispose(release)
  return result
}
