import { getCurrentScope, onScopeDispose, shallowRef, type ShallowRef } from 'vue'
import { useRuntimeConfig } from '#app'
import { isIdInRange, type ChatMemberRole, type ChatMessageFrame, type ChatRoomState, type ChatServerFrame } from '../../shared/protocol'
import { backoffDelay } from '../backoff'
import { idRefusal, type ChatClientError, type ChatStatus, type ChatTransport } from '../chatConnection'
import { guestKey } from '../identity'
import { openSharedWebSocketLink } from '../sharedSocket'
import { answersRoomCommand, createRoomCommands, type ChatRoomCommands } from '../roomCommands'
import { openSharedSseLink } from '../sharedStream'
import { postCommand, probeRefusal, type ChatLink } from '../transport'

export type { ChatNewRoom, ChatRoomCommandResult, ChatRoomCommands, ChatSearchOptions } from '../roomCommands'

/** One room of the signed-in user's rooms list. */
export interface ChatRoomEntry {
  room: string
  /** Messages from others above the user's read position (the server stops counting at 1000). */
  unread: number
  /** The user's read position (a message id). */
  read: number
  /** The room's newest live message. */
  last?: ChatMessageFrame
  /** A room with a record (made with `createRoom`, a direct room, …): its title; a direct room's is the other person's name (or id). */
  title?: string
  kind?: 'room' | 'dm'
  visibility?: 'public' | 'private'
  /** A direct room: the other person's user id. */
  with?: string
  /** The user's role in the room (`'owner'`, `'moderator'`, `'member'`), where they are a member. */
  role?: ChatMemberRole
  /** Unread messages that mention the user (`@name`, or a moderator's `@room` / `@here`; the server stops counting at 1000; 0 from servers before mentions). */
  mentions: number
}

export interface UseChatRoomsOptions {
  /** `'ws'`: on the tab's WebSocket (`/_ws`). `'sse'`: on the tab's event stream (`/api/sse?v=2`). Version 1's own connection (`?rooms`) where the server has no version 2. @default 'ws' */
  transport?: ChatTransport
  /** Connect when created. @default true */
  immediate?: boolean
}

/** The rooms list, and the rooms and members commands (`ChatRoomCommands`: protocol version 2, over the tab's one WebSocket). */
export interface UseChatRoomsReturn extends ChatRoomCommands {
  /**
   * The rooms the user is in (has a read position in: joining a room makes one), at most 100,
   * newest message first, with unread counts and the last message; live across devices and instances.
   */
  rooms: Readonly<ShallowRef<ChatRoomEntry[]>>
  status: Readonly<ShallowRef<ChatStatus>>
  /** `unauthorized` for a guest (guests have no rooms list), or the last refusal. */
  error: Readonly<ShallowRef<ChatClientError | null>>
  /** Mark a listed room read up to `id` (default: its newest message); false when it is not listed, or `id` is no message id (`error` says so). */
  markRead: (room: string, id?: number) => boolean
  open: () => void
  close: () => void
}

const RETRY = { delay: 500, maxDelay: 10_000 }
// Refusals a retry cannot cure: stay closed until `open()`.
const REFUSING_STATUS: Record<number, ChatClientError['code']> = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden' }

/** Newest message first; rooms without one last, by name. */
const byActivity = (a: ChatRoomEntry, b: ChatRoomEntry) => (b.last?.ts ?? 0) - (a.last?.ts ?? 0) || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0)

/** The entry without the list's bookkeeping (`upTo`) and without fields the room does not have. */
function entryOf({ upTo: _upTo, ...entry }: ChatRoomState): ChatRoomEntry {
  return { ...entry, mentions: entry.mentions ?? 0 }
}

/** One rooms-list connection with its state; `useChatRooms()` calls on the same transport share it. */
function createRoomsConnection(transport: ChatTransport) {
  const config = useRuntimeConfig().public.chat
  const rooms = shallowRef<ChatRoomEntry[]>([])
  const status = shallowRef<ChatStatus>('CLOSED')
  const error = shallowRef<ChatClientError | null>(null)
  const state = { link: undefined as ChatLink | undefined, wanted: false, attempts: 0, timer: undefined as ReturnType<typeof setTimeout> | undefined, generation: 0 }

  const url = (path: string) => new URL(path, globalThis.location.href)

  function handle(frame: ChatServerFrame) {
    if (frame.type === 'rooms') rooms.value = frame.rooms.map(entryOf).sort(byActivity)
    else if (frame.type === 'room' && frame.removed) rooms.value = rooms.value.filter(entry => entry.room !== frame.room)
    else if (frame.type === 'room') rooms.value = [...rooms.value.filter(entry => entry.room !== frame.room), entryOf(frame)].sort(byActivity)
    else if (frame.type === 'error' && !answersRoomCommand(frame)) error.value = { code: frame.code, message: frame.message }
  }

  function connect() {
    state.link?.close()
    const generation = ++state.generation
    status.value = 'CONNECTING'
    const target = url(transport === 'sse' ? config.sseRoute : config.route)
    if (transport === 'ws') target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:'
    target.searchParams.set('rooms', '')
    // The same guest key as the tab's rooms: the list rides on their shared socket.
    target.searchParams.set('guest', guestKey())
    const open = transport === 'sse' ? openSharedSseLink : openSharedWebSocketLink
    const link = open({ connect: () => target, post: () => target }, {
      opened() {
        state.attempts = 0
        status.value = 'OPEN'
      },
      frame: frame => state.link === link && frame.type !== 'seen' && handle(frame),
      dropped(beforeOpen) {
        if (state.link !== link) return
        state.link = undefined
        status.value = 'CLOSED'
        if (!state.wanted) return
        void (beforeOpen ? probeRefusal(target) : Promise.resolve(undefined)).then((answer) => {
          const code = answer === undefined ? undefined : REFUSING_STATUS[answer]
          if (generation !== state.generation || !state.wanted) return
          if (code) {
            error.value = { code, message: code === 'unauthorized' ? 'Sign in to see your rooms' : 'The server refused the rooms list' }
            return
          }
          state.timer = setTimeout(connect, backoffDelay(state.attempts++, RETRY))
        })
      },
    })
    state.link = link
  }

  return {
    rooms,
    status,
    error,
    ...createRoomCommands({ transport, route: config.route, sseRoute: config.sseRoute, guestKey: guestKey() }),
    markRead(room: string, id?: number): boolean {
      if (!rooms.value.some(entry => entry.room === room)) return false
      if (id !== undefined && !isIdInRange(id)) {
        error.value = idRefusal(id)
        return false
      }
      const command = id === undefined ? { type: 'read' } : { type: 'read', id }
      if (state.link?.command(JSON.stringify({ ...command, room }))) return true
      // No WebSocket open (or SSE): the same command as a POST to the room.
      const target = url(config.sseRoute)
      target.searchParams.set('room', room)
      void postCommand(target, command).then(frame => frame?.type === 'error' && handle(frame))
      return true
    },
    open() {
      state.wanted = true
      state.attempts = 0
      error.value = null
      clearTimeout(state.timer)
      connect()
    },
    close() {
      state.wanted = false
      state.generation++
      clearTimeout(state.timer)
      state.link?.close()
      state.link = undefined
      status.value = 'CLOSED'
    },
  }
}

type RoomsConnection = ReturnType<typeof createRoomsConnection>
const shared = new Map<ChatTransport, { connection: RoomsConnection, holders: number }>()

/**
 * The signed-in user's rooms: each room they are in with its unread count and last message,
 * updated live (new messages in any of them, reads on other devices), on every instance.
 * Guests get `error.code === 'unauthorized'` and an empty list. Does nothing during SSR.
 *
 * ```ts
 * const { rooms } = useChatRooms()
 * // rooms.value: [{ room: 'lobby', unread: 3, read: 41, last: { user: 'Bob', message: 'hi', … } }]
 * ```
 */
export function useChatRooms(options: UseChatRoomsOptions = {}): UseChatRoomsReturn {
  if (typeof window === 'undefined') {
    const unsupported = () => Promise.reject<never>({ code: 'unsupported', message: 'Rooms commands run in the browser only' } satisfies ChatClientError)
    const commands: ChatRoomCommands = { createRoom: unsupported, openDirect: unsupported, invite: unsupported, remove: unsupported, setRole: unsupported, mute: unsupported, ban: unsupported, unban: unsupported, update: unsupported, search: unsupported, members: unsupported }
    return { rooms: shallowRef([]), status: shallowRef('CLOSED'), error: shallowRef(null), markRead: () => false, open() {}, close() {}, ...commands }
  }
  const transport = options.transport ?? 'ws'
  let held = shared.get(transport)
  if (!held) {
    shared.set(transport, held = { connection: createRoomsConnection(transport), holders: 0 })
    if (options.immediate !== false) held.connection.open()
  }
  held.holders++
  const { connection } = held
  if (getCurrentScope()) {
    onScopeDispose(() => {
      if (--held.holders > 0) return
      connection.close()
      shared.delete(transport)
    })
  }
  const { rooms, status, error, markRead, open, close, ...commands } = connection
  return { rooms, status, error, markRead, open, close, ...commands }
}
