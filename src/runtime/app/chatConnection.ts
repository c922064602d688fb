import { shallowRef, type ShallowRef } from 'vue'
import { HISTORY_PAGE_DEFAULT, MAX_ID, isIdInRange, replyExcerpt, type ChatErrorFrame, type ChatHistoryFrame, type ChatMemberRole, type ChatServerFrame, type ChatStoredFrame, type ChatUser } from '../shared/protocol'
import type { ChatJoinRefusalCode, ChatSeenFrame } from '../shared/protocolV2'
import { backoffDelay } from './backoff'
import { randomCid } from './identity'
import { membershipFrom } from './membership'
import { createMessageLog, type ChatMessage } from './messageLog'
import { createOutbox, type OutgoingAction } from './outbox'
import { uploadFiles, type ChatMessageFile } from './uploads'
import { createPresence } from './presence'
import { createResumeCursor } from './resumeCursor'
import { openSharedWebSocketLink } from './sharedSocket'
import { openSharedSseLink } from './sharedStream'
import { fetchHistory, openSseLink, openWebSocketLink, postCommand, probeRefusal, type ChatLink, type ChatLinkTargets } from './transport'

export type ChatStatus = 'CONNECTING' | 'OPEN' | 'CLOSED'

/** The error for an id the app passed that no server accepts (docs/PROTOCOL.md, "Ids and cursors"); nothing is sent. */
export function idRefusal(id: unknown): ChatClientError {
  return { code: 'bad_request', message: `${String(id)} is not a message id (an integer from 1 to ${MAX_ID})` }
}
export type ChatTransport = 'ws' | 'sse'

export interface ChatReconnectOptions {
  /** Give up after this many failed attempts in a row. @default Infinity */
  retries?: number
  /** First delay in milliseconds (doubles each attempt, with jitter). @default 500 */
  delay?: number
  /** Longest delay in milliseconds. @default 10000 */
  maxDelay?: number
  /** Called when `retries` ran out. */
  onFailed?: () => void
}

export interface ChatConnectionOptions {
  room: string
  /** The other person of a direct room (`?dm=`, docs/PROTOCOL.md "Direct messages"): asked for instead of `room`, which the server's welcome then names. */
  dm?: string
  name?: string
  transport: ChatTransport
  /** WebSocket endpoint path. */
  route: string
  /** SSE endpoint path. */
  sseRoute: string
  /** Messages kept in the log. */
  maxMessages: number
  /** Messages that may wait to be sent. */
  maxQueue: number
  /** Longest message; longer is refused locally. */
  maxLength: number
  /** Reconnection with backoff, or `false`. */
  autoReconnect: boolean | ChatReconnectOptions
  /** App-level ping (WebSocket), or `false`. */
  heartbeat: false | { interval: number, timeout: number }
  /** How long a typing notice lasts without a new one, in ms. */
  typingTimeout: number
  /** This tab's guest key (`guest=`), see docs/PROTOCOL.md "Identity". */
  guestKey?: string
  /** Where the server is; defaults to the page's location. */
  baseURL?: string
  /** Take a room of the tab's one shared connection, a WebSocket or an event stream (protocol version 2; version 1 links per room where the server has no version 2). @default false */
  shareSocket?: boolean
  /** Attachments: the upload route and the server's limits (`runtimeConfig.public.chat.files`); absent: `send()` refuses files. */
  files?: false | { route: string, maxSize: number, maxFiles: number }
}

/**
 * A client-side error: a refused frame from the server, or the client's own: `queue_full`,
 * `connection` (no answer, reconnecting), `undelivered` (a room was left before its queue was
 * delivered), and the local `empty` / `too_long`. `unauthorized` / `forbidden` after a refused
 * connect stop the reconnecting until `open()`.
 */
/** What `send()` takes besides the text. */
export interface ChatSendOptions {
  /** The id of the room's stored message this one answers (docs/PROTOCOL.md, "Replies"); the server refuses an unknown one (`bad_request`). */
  replyTo?: number
  /** Answer in the thread of this stored message (docs/PROTOCOL.md, "Threads"): kept out of `messages`, shown in `thread(id)`. */
  thread?: number
  /** With `thread`: also show the reply in the room's main timeline. */
  alsoInRoom?: boolean
  /** Attachments (docs/PROTOCOL.md, "Attachments"): uploaded first, with `progress` on the pending message; the text may then be empty. */
  files?: readonly Blob[]
}

export interface ChatClientError {
  /** `unsupported`: a rooms and members command where only protocol version 1 is spoken (an older server). `too_many_rooms`: the tab's connection follows `maxRoomsPerConnection` rooms already. */
  code: ChatErrorFrame['code'] | 'queue_full' | 'connection' | 'undelivered' | 'unsupported' | 'too_many_rooms'
  message: string
  cid?: string
  /** `undelivered`: the cids of the messages that were not delivered. */
  cids?: string[]
}

const TYPING_SEND_INTERVAL = 2000
// Refusals a retry cannot cure: the connection stays closed until `open()`.
/** What a room connection refused for good says (`open()` tries again). */
const REFUSAL_MESSAGES: Partial<Record<ChatClientError['code'], string>> = {
  unauthorized: 'Not signed in: the server refused the connection',
  forbidden: 'The server does not allow this client in this room',
  too_many_rooms: 'This tab follows as many rooms as the server allows on one connection: close one, then open this room again',
}
const REFUSING_STATUS: Record<number, ChatErrorFrame['code']> = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden' }
const PASSING_CODES = new Set<string>(['rate_limited', 'unavailable'])
// A history answer that does not come within this time counts as failed (the page may be asked again).
const HISTORY_TIMEOUT = 10_000

/**
 * One connection to one room: a link (WebSocket, or EventSource + POST), the message log, the
 * outbox, presence, typing, heartbeats and reconnection. Framework-free apart from Vue refs,
 * so it is unit-tested with stubbed sockets; `useChat()` shares one per room between components.
 */
export function createChatConnection<T = unknown>(options: ChatConnectionOptions) {
  const messages: ShallowRef<ChatMessage<T>[]> = shallowRef([])
  const status = shallowRef<ChatStatus>('CLOSED')
  const error = shallowRef<ChatClientError | null>(null)
  const me = shallowRef<ChatUser | null>(null)
  /** This user's role in the room and the end of their mute there, as the server last told (welcome, `member`). */
  const role = shallowRef<ChatMemberRole | undefined>()
  const mutedUntil = shallowRef<number | undefined>()
  const hasMore = shallowRef(true)
  /** Messages from others above this user's read position (signed-in users; 0 for guests). */
  const unread = shallowRef(0)
  /** In a small room (DMs included) on version 2: each member's read position, as the server last told (docs/PROTOCOL.md, "Seen by"). */
  const readBy = shallowRef<Readonly<Record<string, number>>>({})

  const reconnect = options.autoReconnect === false ? undefined : { retries: Infinity, delay: 500, maxDelay: 10_000, ...(options.autoReconnect === true ? {} : options.autoReconnect) }
  const log = createMessageLog<T>(options.maxMessages, () => me.value?.id)
  const outbox = createOutbox(reconnect ?? { delay: 500, maxDelay: 10_000 })
  const cursor = createResumeCursor()
  const presence = createPresence(options.typingTimeout)
  /** Everything about the connection's lifecycle, in one place. */
  const state = {
    link: undefined as ChatLink | undefined,
    /** The room as the server named it (a direct room's id is the server's to say). */
    room: options.room,
    /** Bumped for every link, so late events (a probe's answer) of an old one are ignored. */
    generation: 0,
    /** The app wants to be connected (open() called, close() not). */
    wanted: false,
    /** Failed connects in a row, for the backoff. */
    attempts: 0,
    /** The server refused this client for good; no reconnecting until `open()`. */
    refusal: undefined as ChatClientError | undefined,
    reconnectTimer: undefined as ReturnType<typeof setTimeout> | undefined,
    pingTimer: undefined as ReturnType<typeof setInterval> | undefined,
    pongTimer: undefined as ReturnType<typeof setTimeout> | undefined,
    lastTypingSent: 0,
    flushScheduled: false,
    /** Left by its last holder with messages still waiting: called once they are delivered or given up. */
    drained: undefined as (() => void) | undefined,
    /** The page of older history being loaded, if any. */
    loadingOlder: undefined as Promise<number> | undefined,
    /** Takes the answer to the `history` command in flight on the WebSocket. */
    historyAnswer: undefined as ((frame: ChatHistoryFrame | ChatErrorFrame | undefined) => void) | undefined,
    /** The server said nothing is stored below this id (0: not known). */
    oldestStored: 0,
    /** This user's read position as the server last counted it (`read` frame); undefined for guests and until told. */
    readState: undefined as { read: number, unread: number, upTo: number } | undefined,
    /** A `markRead` made while the WebSocket was down: sent once it is open. */
    pendingRead: undefined as number | undefined,
  }

  // Frames arrive in bursts (a replay is hundreds); publish the log once per burst.
  function publish() {
    if (state.flushScheduled) return
    state.flushScheduled = true
    queueMicrotask(() => {
      state.flushScheduled = false
      log.trim()
      messages.value = log.entries()
      const oldest = log.oldestId()
      hasMore.value = oldest === undefined ? state.oldestStored === 0 : oldest > 1 && oldest > state.oldestStored
      countUnread()
    })
  }

  /** The server's count up to `upTo`, plus the messages from others held above it. */
  function countUnread() {
    const read = state.readState
    unread.value = read ? (read.read >= read.upTo ? 0 : read.unread) + log.countFromOthersAfter(Math.max(read.read, read.upTo), me.value?.id) : 0
  }

  const targets: ChatLinkTargets = {
    connect() {
      const target = url(options.transport === 'sse' ? options.sseRoute : options.route)
      if (options.transport === 'ws') target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:'
      if (isIdInRange(cursor.value, 0)) target.searchParams.set('since', String(cursor.value))
      return target
    },
    post() {
      const target = url(options.sseRoute)
      // Over SSE the server named us in the welcome: POST under that name.
      if (me.value && !options.name) target.searchParams.set('name', me.value.name)
      return target
    },
  }

  function url(path: string) {
    const target = new URL(path, new URL(options.baseURL ?? globalThis.location.href))
    if (options.dm) target.searchParams.set('dm', options.dm)
    else target.searchParams.set('room', options.room)
    if (options.name) target.searchParams.set('name', options.name)
    if (options.guestKey) target.searchParams.set('guest', options.guestKey)
    return target
  }

  // ---- frames in ----

  function handleFrame(frame: ChatServerFrame | ChatSeenFrame, outOfOrder = false) {
    if (frame.type === 'seen') {
      // Positions only move forward: a live frame may pass the join's snapshot.
      const next = { ...readBy.value }
      for (const [uid, read] of Object.entries(frame.seen)) next[uid] = Math.max(next[uid] ?? 0, read)
      readBy.value = next
      return
    }
    // The welcome names `me` below; its membership is the newcomer's whoever it is.
    const membership = membershipFrom(frame, me.value?.id)
    if (membership) {
      role.value = membership.role
      mutedUntil.value = membership.mutedUntil
    }
    switch (frame.type) {
      case 'message': {
        // A duplicate answer (or a POST's reply) is outside the room's order: merge it, never move the cursor.
        if (!outOfOrder && !frame.duplicate) cursor.received(frame.rev ?? frame.id, frame.rev !== undefined)
        presence.spoke(frame.uid, frame.user)
        if (log.add(frame)) publish()
        if (frame.cid !== undefined && outbox.acknowledged(frame.cid)) settled()
        break
      }
      case 'edit':
      case 'delete':
      case 'reaction':
        if (!outOfOrder && !frame.duplicate) cursor.received(frame.id)
        if (frame.type === 'delete') forgetUnread(frame.target)
        // A stream's end: its author stopped writing.
        if (frame.type === 'edit' && frame.ended) presence.spoke(frame.uid, frame.user)
        if (log.apply(frame)) publish()
        if (frame.cid !== undefined && outbox.acknowledged(frame.cid)) settled()
        break
      case 'system':
        if (frame.event === 'welcome') {
          // A welcome is a successful connect: the next drop starts the backoff afresh.
          state.attempts = 0
          if (frame.peer) me.value = frame.peer
          // A direct room's id, which only the server knows (`dm`): pending messages show it too.
          if (frame.room) state.room = frame.room
        }
        break
      case 'history':
        state.historyAnswer?.(frame)
        break
      case 'read':
        if (frame.uid !== me.value?.id || frame.read < (state.readState?.read ?? 0)) break
        state.readState = { read: frame.read, unread: frame.unread, upTo: frame.upTo }
        publish()
        break
      case 'presence':
        presence.replace(frame.users)
        break
      case 'presence_diff':
        presence.apply(frame)
        break
      case 'delta':
        // A streaming message grows (docs/PROTOCOL.md, "Streaming messages"); outside the room's order.
        if (log.applyDelta(frame)) publish()
        break
      case 'typing':
        if (frame.uid !== me.value?.id) presence.typed({ id: frame.uid, name: frame.user, ...(frame.guest ? { guest: true as const } : {}) })
        break
      case 'error':
        error.value = { code: frame.code, message: frame.message, cid: frame.cid }
        // A history page refused by its limit answers the page in flight at once (not after HISTORY_TIMEOUT).
        if (frame.limit === 'history') state.historyAnswer?.(frame)
        if (!frame.cid) break
        if (PASSING_CODES.has(frame.code)) outbox.refusedForNow(frame.cid)
        else if (outbox.refused(frame.cid)) {
          log.markFailed(frame.cid)
          publish()
          settled()
        }
        break
    }
  }

  /** A deleted message the server counted as unread is unread no more (one held here tells whose it was). */
  function forgetUnread(target: number) {
    const read = state.readState
    const entry = log.get(target)
    if (read && entry && target > read.read && target <= read.upTo && entry.uid !== me.value?.id && read.unread > 0) read.unread--
  }

  /** Tell the server this user read up to `id` (a command on the link, or a POST to the room over SSE). */
  function sendRead(id: number) {
    // A shared event stream takes it as a command; its `read` frame comes on the stream.
    if (options.transport === 'sse' && state.link?.command(JSON.stringify({ type: 'read', id }))) return
    if (options.transport === 'ws') {
      state.pendingRead = state.link?.command(JSON.stringify({ type: 'read', id })) ? undefined : id
      return
    }
    void postCommand(targets.post(), { type: 'read', id }).then((frame) => {
      if (frame) handleFrame(frame, true)
    })
  }

  /** A message left the outbox: a connection being released may be done. */
  function settled() {
    if (state.drained && !outbox.size) finishDrain()
  }

  // ---- the link ----

  function connect() {
    teardown()
    status.value = 'CONNECTING'
    const generation = ++state.generation
    const open = options.transport === 'sse' ? (options.shareSocket ? openSharedSseLink : openSseLink) : options.shareSocket ? openSharedWebSocketLink : openWebSocketLink
    const link: ChatLink = open(targets, {
      opened: () => {
        if (state.link !== link) return
        status.value = 'OPEN'
        cursor.connected()
        startHeartbeat()
        outbox.attach(link)
        if (state.pendingRead !== undefined) sendRead(state.pendingRead)
      },
      frame: (frame, outOfOrder) => {
        if (state.link !== link) return
        clearTimeout(state.pongTimer)
        state.pongTimer = undefined
        handleFrame(frame, outOfOrder)
      },
      dropped: (beforeOpen, refused, retryAfter) => {
        if (state.link !== link) return
        if (beforeOpen) void learnWhy(generation, refused, retryAfter)
        else dropped()
      },
    })
    state.link = link
  }

  /**
   * A connect failed before it opened: stop on a join the server refused for this person, wait
   * out a limit's `retryAfter`, else ask the route once whether it refuses us; then retry or stop.
   */
  async function learnWhy(generation: number, refused?: ChatJoinRefusalCode, retryAfter?: number) {
    const target = targets.connect()
    dropped(true)
    // A limit said when to come back (joins, or the history byte budget): no probe (it would cost a join too), the backoff on top.
    if (refused === 'rate_limited') return scheduleReconnect(retryAfter)
    // Said by the server, no probe needed (one request fewer; on SSE the join was a POST already);
    // a tab past `maxRoomsPerConnection` stays past it until a room closes: no retry either.
    const final = refused === 'unauthorized' || refused === 'forbidden' || refused === 'too_many_rooms' ? refused : undefined
    const answer = final ? undefined : await probeRefusal(target)
    if (generation !== state.generation || !state.wanted) return
    const code = final ?? (answer === undefined ? undefined : REFUSING_STATUS[answer])
    if (!code) {
      scheduleReconnect()
      return
    }
    state.refusal = { code, message: REFUSAL_MESSAGES[code] ?? 'The server refused the connection request' }
    error.value = state.refusal
    clearTimeout(state.reconnectTimer)
    // Nothing will deliver them now: a connection being released reports them.
    if (state.drained) finishDrain()
  }

  /** The link went away: everything unanswered goes again on the next one (with backoff). */
  function dropped(probing = false) {
    teardown()
    status.value = 'CLOSED'
    if (!probing) scheduleReconnect()
  }

  /** The next connect after the backoff; `retryAfter`: whole seconds a limit asked to wait first (the jittered backoff spreads the rooms it refused together). */
  function scheduleReconnect(retryAfter = 0) {
    if (!state.wanted || !reconnect || state.refusal) return
    if (state.attempts >= reconnect.retries) {
      reconnect.onFailed?.()
      if (state.drained) finishDrain()
      return
    }
    // Within a day: a timer past 2^31 ms fires at once.
    const wait = Number.isFinite(retryAfter) ? Math.min(Math.max(retryAfter, 0), 86_400) * 1000 : 0
    state.reconnectTimer = setTimeout(connect, wait + backoffDelay(state.attempts++, reconnect))
  }

  function teardown() {
    clearTimeout(state.reconnectTimer)
    clearInterval(state.pingTimer)
    clearTimeout(state.pongTimer)
    state.reconnectTimer = state.pingTimer = state.pongTimer = undefined
    state.link?.close()
    state.link = undefined
    state.historyAnswer?.(undefined)
    outbox.detach()
    presence.clear()
  }

  /** App-level ping; no frame within `timeout` means the socket is dead though it looks open. */
  function startHeartbeat() {
    if (!options.heartbeat || options.transport !== 'ws') return
    const { interval, timeout } = options.heartbeat
    state.pingTimer = setInterval(() => {
      // Still waiting for an answer (timeout >= interval): let that wait run out.
      if (state.pongTimer || !state.link?.command('{"type":"ping"}')) return
      state.pongTimer = setTimeout(() => {
        error.value = { code: 'connection', message: 'No answer from the server; reconnecting' }
        dropped()
      }, timeout)
    }, interval)
  }

  // ---- leaving ----

  /** Report what a released connection could not deliver, then let it go. */
  function finishDrain() {
    const done = state.drained
    state.drained = undefined
    const lost = outbox.takeAll()
    if (lost.length) {
      for (const item of lost) log.markFailed(item.cid)
      publish()
      error.value = { code: 'undelivered', message: `${lost.length} ${lost.length === 1 ? 'message' : 'messages'} to room ${options.room} could not be delivered`, cids: lost.map(item => item.cid) }
    }
    state.wanted = false
    teardown()
    status.value = 'CLOSED'
    done?.()
  }

  /**
   * Send a message (objects are sent as JSON text). Shown at once as pending; queued while
   * disconnected. Returns false when it cannot be: too long, empty, the queue is full, or the
   * server refused this client (`unauthorized` / `forbidden`: call `open()` after signing in).
   */
  function send(data: string | T, sendOptions: ChatSendOptions = {}): boolean {
    const text = typeof data === 'string' ? data : JSON.stringify(data)
    const { replyTo, thread } = sendOptions
    if (replyTo !== undefined && !isIdInRange(replyTo)) return refuseId(replyTo)
    if (thread !== undefined && !isIdInRange(thread)) return refuseId(thread)
    const threadFields = thread === undefined ? {} : { thread, ...(sendOptions.alsoInRoom ? { alsoInRoom: true as const } : {}) }
    if (state.refusal) {
      error.value = state.refusal
      return false
    }
    const files = sendOptions.files ?? []
    if (files.length && !checkFiles(files)) return false
    if (!text.trim() && !files.length) {
      error.value = { code: 'empty', message: 'Message is empty' }
      return false
    }
    if (text.length > options.maxLength) {
      error.value = { code: 'too_long', message: `Message is longer than ${options.maxLength} characters` }
      return false
    }
    if (outbox.size >= options.maxQueue) {
      error.value = { code: 'queue_full', message: `${options.maxQueue} messages are already waiting to be sent` }
      return false
    }
    const cid = randomCid()
    // A pending reply shows what this client holds of its original until the server's echo says.
    const original = replyTo === undefined ? undefined : log.get(replyTo)
    const quote = replyTo === undefined ? {} : { replyTo: original ? { id: replyTo, user: original.user, ...(original.uid === undefined ? {} : { uid: original.uid }), excerpt: replyExcerpt(original.message) } : { id: replyTo, user: '', excerpt: '' } }
    const progress = files.length ? shallowRef(0) : undefined
    const shown = files.map((file): ChatMessageFile => ({ id: '', name: (file as File).name || 'file', size: file.size, type: file.type, url: URL.createObjectURL(file) }))
    log.addPending({ room: state.room, user: me.value?.name ?? options.name ?? '', ...(me.value ? { uid: me.value.id } : {}), ...(me.value?.guest ? { guest: true } : {}), message: text, ts: Date.now(), cid, ...quote, ...threadFields, ...(progress ? { files: shown, progress } : {}) })
    publish()
    const fields = { ...(replyTo === undefined ? {} : { replyTo }), ...threadFields }
    if (!progress) {
      outbox.push(cid, text, replyTo === undefined && thread === undefined ? undefined : { type: 'message', ...fields })
      return true
    }
    // Uploaded first (over HTTP, across reconnects); then queued like any message, with the uploads' ids: a resend never uploads again.
    void uploadFiles({ url: uploadUrl, retry: reconnect ?? { delay: 500, maxDelay: 10_000 } }, files, progress).then((result) => {
      if ('error' in result) {
        log.markFailed(cid)
        error.value = { ...result.error, cid }
        publish()
        return
      }
      outbox.push(cid, text, { type: 'message', ...fields, files: result.files.map(file => file.id) })
    })
    return true
  }

  /** May these files be sent (the server's count and size limits)? Sets `error` when not. */
  function checkFiles(files: readonly Blob[]): boolean {
    const limits = options.files
    if (!limits) error.value = { code: 'bad_request', message: 'Attachments are turned off' }
    else if (files.length > limits.maxFiles) error.value = { code: 'bad_request', message: `At most ${limits.maxFiles} files in one message` }
    else if (files.some(file => file.size > limits.maxSize)) error.value = { code: 'too_long', message: `A file is larger than ${limits.maxSize} bytes` }
    else return true
    return false
  }

  /** Where this room's uploads go, as whom (the room as the server named it). */
  function uploadUrl(): URL {
    const target = new URL((options.files as { route: string }).route, new URL(options.baseURL ?? globalThis.location.href))
    target.searchParams.set('room', state.room)
    if (options.name) target.searchParams.set('name', options.name)
    if (options.guestKey) target.searchParams.set('guest', options.guestKey)
    return target
  }

  /** Ask for a page of older history (`before` absent: the newest page): a command on an open WebSocket, else a GET on the SSE route. */
  async function requestHistory(before: number | undefined, limit: number, thread?: number): Promise<ChatServerFrame | undefined> {
    if (status.value === 'OPEN' && state.link?.command(JSON.stringify({ type: 'history', before, limit, thread }))) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => answer(undefined), HISTORY_TIMEOUT)
        const answer = (frame: ChatHistoryFrame | ChatErrorFrame | undefined) => {
          clearTimeout(timer)
          state.historyAnswer = undefined
          resolve(frame)
        }
        state.historyAnswer = answer
      })
    }
    const target = url(options.sseRoute)
    if (before === undefined) target.searchParams.set('history', '')
    else target.searchParams.set('before', String(before))
    target.searchParams.set('limit', String(limit))
    if (thread !== undefined) target.searchParams.set('thread', String(thread))
    return fetchHistory(target)
  }

  /** Load a page of a thread's older replies (before the oldest held); resolves to how many were added. */
  async function fetchThread(parent: number, limit: number): Promise<number> {
    const oldest = log.threadEntries(parent).find(entry => entry.id !== undefined)?.id
    const frame = await requestHistory(oldest, limit, parent)
    if (frame?.type !== 'history') {
      error.value = frame?.type === 'error' ? { code: frame.code, message: frame.message } : { code: 'unavailable', message: 'The thread could not be loaded; try again' }
      return 0
    }
    let added = 0
    for (const stored of frame.messages) if (merge(stored)) added++
    log.keepOlder(added)
    publish()
    return added
  }

  /** Merge a stored frame of a history page: a message is added, an event applied to its target. */
  function merge(frame: ChatStoredFrame): boolean {
    if (frame.type === 'message') return log.add(frame) && !frame.deleted
    log.apply(frame)
    // Edits and deletes are not entries of their own.
    return false
  }

  async function fetchOlder(limit: number): Promise<number> {
    const anchor = log.oldestId() ?? (cursor.value === undefined ? undefined : cursor.value + 1)
    // Nothing held and no cursor (an empty room): the newest page, without a made-up `before`; never one past what servers accept.
    const before = anchor === undefined ? undefined : Math.min(anchor, MAX_ID)
    const frame = await requestHistory(before, limit)
    if (frame?.type !== 'history') {
      error.value = frame?.type === 'error' ? { code: frame.code, message: frame.message } : { code: 'unavailable', message: 'Older messages could not be loaded; try again' }
      return 0
    }
    let added = 0
    for (const stored of frame.messages) if (merge(stored)) added++
    log.keepOlder(added)
    if (!frame.more) state.oldestStored = frame.messages[0]?.id ?? before ?? MAX_ID
    publish()
    return added
  }

  /** An id no server accepts (docs/PROTOCOL.md, "Ids and cursors"): refused here, nothing is sent. */
  function refuseId(id: unknown): false {
    error.value = idRefusal(id)
    return false
  }

  /** Queue an edit or delete of stored message `target` (resent like messages until answered). */
  function change(action: OutgoingAction, text: string): boolean {
    if (!isIdInRange(action.target)) return refuseId(action.target)
    if (state.refusal) {
      error.value = state.refusal
      return false
    }
    if (outbox.size >= options.maxQueue) {
      error.value = { code: 'queue_full', message: `${options.maxQueue} messages are already waiting to be sent` }
      return false
    }
    outbox.push(randomCid(), text, action)
    return true
  }

  return {
    messages,
    status,
    hasMore,
    unread,
    readBy,
    /** Who else has read message `id` (member ids; small rooms and DMs on version 2, else none). */
    seenBy(id: number): string[] {
      return Object.entries(readBy.value).filter(([uid, read]) => read >= id && uid !== me.value?.id).map(([uid]) => uid)
    },
    /**
     * Mark the room read up to `id` (default: the newest id this client holds), for this user
     * on every device. Signed-in users only: false for a guest (nothing is stored for guests)
     * and before the server said who this client is.
     */
    markRead(id?: number): boolean {
      if (!me.value || me.value.guest) return false
      const upTo = id ?? Math.max(log.newestId() ?? 0, cursor.value ?? 0)
      if (!isIdInRange(upTo)) return id === undefined ? false : refuseId(id)
      const read = state.readState
      if (read && upTo <= read.read) return true
      // Shown at once; the server's `read` frame then confirms (or corrects) it.
      state.readState = read && upTo < read.upTo ? { ...read, read: upTo } : { read: upTo, unread: 0, upTo }
      publish()
      sendRead(upTo)
      return true
    },
    /** Replace the text of a stored message (your own, or as the server's `chat:action` hook allows); the edit shows once stored. */
    edit(id: number, data: string | T): boolean {
      const text = typeof data === 'string' ? data : JSON.stringify(data)
      if (!text.trim() || text.length > options.maxLength) {
        error.value = text.trim() ? { code: 'too_long', message: `Message is longer than ${options.maxLength} characters` } : { code: 'empty', message: 'Message is empty' }
        return false
      }
      return change({ type: 'edit', target: id }, text)
    },
    /** Delete a stored message (your own, or as the server's `chat:action` hook allows): it leaves `messages` everywhere once stored. */
    remove: (id: number): boolean => change({ type: 'delete', target: id }, ''),
    /** Add `emoji` to a stored message, or take it back if this user already gave it. */
    react: (id: number, emoji: string): boolean => change({ type: 'reaction', target: id, emoji }, ''),
    /**
     * Stop a streaming message (an AI member's reply you asked for; moderators any): its source is
     * aborted and it is stored as `incomplete: 'stopped'`. False when it is not streaming here or the
     * request cannot leave now; a refusal arrives as `error`.
     */
    stop(id: number): boolean {
      if (!isIdInRange(id)) return refuseId(id)
      if (!log.get(id)?.streaming) return false
      const command = JSON.stringify({ type: 'stop', id })
      if (state.link?.command(command)) return true
      if (options.transport !== 'sse') return false
      void postCommand(targets.post(), { type: 'stop', id }).then((frame) => {
        if (frame?.type === 'error') handleFrame(frame, true)
      })
      return true
    },
    /**
     * Load a page of older messages (at most `limit`, default 50) from the store and merge them
     * in order; resolves to how many were added. Loaded pages stay beyond `maxMessages` until
     * `dropOlder()`. One page at a time: a call while one loads gets that one's answer.
     */
    /** A thread's replies held (oldest first, pending last); reactive where `messages` is read. */
    threadMessages(parent: number): ChatMessage<T>[] {
      // Read so a computed or render that calls this follows every publish.
      void messages.value
      return log.threadEntries(parent)
    },
    /**
     * Replies from others above this signed-in user's read position in the room, in a thread they
     * took part in (started it or answered in it); 0 otherwise. Marking the room read marks its threads read.
     */
    threadUnread(parent: number): number {
      void messages.value
      const mine = me.value
      const replies = log.threadEntries(parent)
      if (!mine || mine.guest || (log.get(parent)?.uid !== mine.id && !replies.some(reply => reply.uid === mine.id))) return 0
      const read = state.readState?.read ?? 0
      return replies.filter(reply => reply.id !== undefined && reply.id > read && reply.uid !== mine.id).length
    },
    /** Load a page of older replies of a thread (one request at a time, shared with `loadOlder`). */
    loadThread(parent: number, limit = HISTORY_PAGE_DEFAULT): Promise<number> {
      state.loadingOlder ??= fetchThread(parent, limit).finally(() => {
        state.loadingOlder = undefined
      })
      return state.loadingOlder
    },
    loadOlder(limit = HISTORY_PAGE_DEFAULT): Promise<number> {
      state.loadingOlder ??= fetchOlder(limit).finally(() => {
        state.loadingOlder = undefined
      })
      return state.loadingOlder
    },
    /** Forget the pages `loadOlder` kept: back to the newest `maxMessages` (call when the user is back at the bottom). */
    dropOlder() {
      log.dropOlder()
      publish()
    },
    users: presence.users,
    typing: presence.typing,
    error,
    me,
    /** This user's role in the room (`owner`, `moderator`, `member`), undefined without a membership. */
    role,
    /** Muted in the room until then (epoch ms), else undefined. */
    mutedUntil,
    send,
    /** Send a ping (WebSocket); the answer is a `pong` frame. */
    ping() {
      state.link?.command('ping')
    },
    /** Tell the room this user is typing (throttled). */
    notifyTyping() {
      const now = Date.now()
      if (now - state.lastTypingSent < TYPING_SEND_INTERVAL) return
      if (state.link?.command('{"type":"typing"}')) state.lastTypingSent = now
    },
    /** Connect (or reconnect now, resetting the backoff and any refusal). */
    open() {
      state.wanted = true
      state.attempts = 0
      // The refusal that closed it is what `open()` answers: no longer the connection's error.
      if (state.refusal && error.value === state.refusal) error.value = null
      state.refusal = undefined
      connect()
    },
    /** Disconnect and stay disconnected; waiting messages stay queued for the next `open()`. */
    close() {
      state.wanted = false
      state.generation++
      teardown()
      status.value = 'CLOSED'
    },
    /** Reconnect at once if a drop left us waiting (browser back online, tab visible again). */
    resume() {
      if (state.wanted && !state.refusal && status.value === 'CLOSED') {
        state.attempts = 0
        connect()
      }
    },
    /**
     * The last holder let go: deliver what waits (staying connected at most `timeout` ms), then
     * close; what is still waiting then is marked failed and reported as `undelivered`.
     */
    release(timeout: number, done: () => void) {
      state.drained = done
      if (!outbox.size || !state.wanted || state.refusal) {
        finishDrain()
        return () => {}
      }
      const timer = setTimeout(() => state.drained === done && finishDrain(), timeout)
      // Taken back before it drained: it stays.
      return () => {
        clearTimeout(timer)
        if (state.drained === done) state.drained = undefined
      }
    },
    /** Empty the shown log (the resume cursor stays, so nothing old comes back). */
    clear() {
      log.clear()
      state.oldestStored = 0
      for (const item of outbox.items) log.addPending({ room: state.room, user: me.value?.name ?? '', message: item.message, ts: Date.now(), cid: item.cid })
      publish()
    },
    /** Messages waiting for the server's acknowledgement. */
    get queued() {
      return outbox.size
    },
  }
}

export type ChatConnection<T = unknown> = ReturnType<typeof createChatConnection<T>>
