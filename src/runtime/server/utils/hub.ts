import type { Hookable } from 'hookable'
import type { ConsolaInstance } from 'consola'
import { errorFrame, presenceFrame, systemFrame, type ChatErrorFrame, type ChatMessageFrame, type ChatServerFrame, type ChatUser } from '../../shared/protocol'
import type { ChatMessageContext, ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import type { ChatBus, BusEvent } from './bus'
import { createRateLimiter, createTokenBucket, takeToken, type TokenBucket } from './rateLimit'
import type { RoomLog, StoredMessage } from './roomLog'
import { encodeTextFrame } from './wsTransport'

/** One frame on its way to a room: serialised once, encoded once per transport on first use. */
export class RoomFrame {
  // Plain fields, not #private: bundlers lower those to WeakMap lookups, paid per delivery.
  private wsBytes: Buffer | undefined
  private sseBytes: Buffer | undefined
  constructor(readonly text: string, readonly id = 0) {}

  /** The WebSocket frame bytes. */
  get ws(): Buffer {
    return this.wsBytes ??= encodeTextFrame(Buffer.from(this.text))
  }

  /** The SSE event bytes; message frames carry `id:` so EventSource resumes by itself. */
  get sse(): Buffer {
    return this.sseBytes ??= Buffer.from(this.id ? `id: ${this.id}\ndata: ${this.text}\n\n` : `data: ${this.text}\n\n`)
  }
}

/** One connection in a room, WebSocket or SSE. */
export interface Member {
  readonly user: ChatUser
  /** `cid` de-duplication key: the identified user id, or '' for anonymous peers. */
  readonly sender: string
  /** Frames held while the member's replay is being sent; `null` once live. */
  backlog: RoomFrame[] | null
  /** Newest message id its replay sent: a slower delivery of the same id is not sent again. */
  replayedTo: number
  /** Write a frame now. */
  write: (frame: RoomFrame) => void
  /** Token bucket for the rate limit. */
  bucket?: TokenBucket
  /** Last typing broadcast, for the server-side throttle. */
  typingAt?: number
}

/** A room as this instance sees it: its local members, presence and delivery cursor. */
interface Room {
  name: string
  members: Set<Member>
  /** Local users by id, with how many connections each has (two tabs are one user). */
  users: Map<string, { user: ChatUser, connections: number }>
  /** Users on other instances, by instance id, until `expires`. */
  remote: Map<string, { users: ChatUser[], expires: number }>
  /** Text of the last presence frame sent, to skip unchanged ones. */
  presenceText: string
  /** Newest message id delivered here; `undefined` until read from the store. */
  lastId: number | undefined
  /** Resolves once `lastId` is known. */
  ready: Promise<void>
  /** Messages waiting while the room initialises or fills a gap. */
  inbox: { id: number, text: string }[]
  draining: boolean
  /** Catch up to this id (exclusive) from the store; 0 when nothing is asked. */
  catchUpTo: number
}

export interface SendResult {
  /** The stored message frame (new or, for a repeated `cid`, the earlier one). */
  frame?: ChatMessageFrame
  duplicate?: boolean
  error?: ChatErrorFrame
  /** HTTP status for the POST transport. */
  status: number
}

export interface ChatHubOptions {
  config: ChatRuntimeConfig
  store: RoomLog
  bus: ChatBus
  hooks: Hookable<ChatRuntimeHooks>
  logger: ConsolaInstance
}

const TYPING_THROTTLE = 1000
const RECOVERY_RECHECK = 1000
const GAP_RETRY = 1000
const PRUNE_EVERY = 100

/**
 * Give a member a frame: held while its replay is sent, dropped when its replay already
 * carried that message id, written otherwise.
 */
export function offerFrame(member: Member, frame: RoomFrame) {
  if (member.backlog) member.backlog.push(frame)
  else if (frame.id === 0 || frame.id > member.replayedTo) member.write(frame)
}

/** Serialise a stored message as its wire frame. */
export function messageFrame(message: StoredMessage): ChatMessageFrame {
  const frame: ChatMessageFrame = { type: 'message', id: message.id, room: message.room, user: message.user, message: message.message, ts: message.ts }
  if (message.cid !== undefined) frame.cid = message.cid
  return frame
}

/**
 * The chat hub: the room index of this instance, the send pipeline (limits, moderation,
 * store, fan-out) and the bridge to other instances. Transports (WebSocket, SSE, POST) only
 * parse requests and call it.
 */
export function createChatHub({ config, store, bus, hooks, logger }: ChatHubOptions) {
  const rooms = new Map<string, Room>()
  const postLimiter = config.rateLimit ? createRateLimiter(config.rateLimit) : undefined
  /** Rooms with messages stored while the bus was down: the others must be told to catch up. */
  const unpublished = new Set<string>()
  let closed = false

  // ---- fan-out ----

  /** Write one frame to every live member of a room (held for members still replaying). */
  function broadcast(room: Room, frame: RoomFrame, except?: Member) {
    for (const member of room.members) {
      if (member !== except) offerFrame(member, frame)
    }
  }

  /** Send the room's presence list when it changed. */
  function broadcastPresence(room: Room, except?: Member) {
    const text = JSON.stringify(presenceFrame(room.name, presenceOf(room)))
    if (text === room.presenceText) return
    room.presenceText = text
    broadcast(room, new RoomFrame(text), except)
  }

  function presenceOf(room: Room): ChatUser[] {
    const users = new Map<string, ChatUser>()
    for (const { user } of room.users.values()) users.set(user.id, user)
    const now = Date.now()
    for (const [origin, entry] of room.remote) {
      if (entry.expires < now) {
        room.remote.delete(origin)
        continue
      }
      for (const user of entry.users) if (!users.has(user.id)) users.set(user.id, user)
    }
    return [...users.values()]
  }

  function announcePresence(room: Room) {
    const users = [...room.users.values()].map(entry => entry.user)
    bus.publish({ kind: 'presence', room: room.name, id: 0, frame: JSON.stringify(users) })
  }

  // ---- ordered delivery ----

  /**
   * Deliver a stored message to the room's local members exactly once and in id order.
   * Ids are contiguous per room, so a jump means a message is still on its way (another
   * instance, a slower write): fill the gap from the store, which already holds it.
   */
  function deliver(room: Room, id: number, text: string) {
    if (room.draining) {
      room.inbox.push({ id, text })
      return
    }
    if (room.lastId !== undefined && id <= room.lastId) return
    if (room.lastId !== undefined && id > room.lastId + 1) {
      room.inbox.push({ id, text })
      drain(room)
      return
    }
    room.lastId = id
    broadcast(room, new RoomFrame(text, id))
  }

  /**
   * Fill gaps from the store, then deliver what waited in the inbox, in order. `upTo`
   * (exclusive) asks to catch up to a known id even with nothing in the inbox. One drain
   * runs per room at a time; a call during it only raises the target.
   */
  function drain(room: Room, upTo?: number) {
    if (upTo !== undefined) room.catchUpTo = Math.max(room.catchUpTo, upTo)
    if (room.draining) return
    room.draining = true
    void runDrain(room)
  }

  async function runDrain(room: Room) {
    let storeFailed = false
    try {
      await room.ready
      while (room.lastId !== undefined && (room.inbox.length || room.catchUpTo > room.lastId + 1)) {
        const last = room.lastId
        let upTo = room.catchUpTo
        room.catchUpTo = 0
        const pending = new Map<number, string>()
        for (const entry of room.inbox.splice(0)) {
          pending.set(entry.id, entry.text)
          if (entry.id >= upTo) upTo = entry.id + 1
        }
        let held = 0
        for (const id of pending.keys()) if (id > last && id < upTo) held++
        if (held < upTo - 1 - last) {
          try {
            for (const message of await store.between(room.name, last, upTo)) {
              if (!pending.has(message.id)) pending.set(message.id, JSON.stringify(messageFrame(message)))
            }
          }
          catch (error) {
            // Never deliver across a hole: clients would move their cursor past it for good.
            logger.error('[nuxt-chat] could not read missed messages from the store; retrying', error)
            for (const [id, text] of pending) room.inbox.push({ id, text })
            room.catchUpTo = Math.max(room.catchUpTo, upTo)
            storeFailed = true
            break
          }
        }
        for (const id of [...pending.keys()].sort((a, b) => a - b)) {
          if (id <= room.lastId) continue
          room.lastId = id
          broadcast(room, new RoomFrame(pending.get(id)!, id))
        }
      }
    }
    finally {
      room.draining = false
    }
    if (storeFailed) {
      setTimeout(() => drain(room), GAP_RETRY).unref?.()
      return
    }
    // The room's cursor could not be read at all: deliver what waited as it is, in order.
    if (room.inbox.length) {
      const inbox = room.inbox.splice(0)
      for (const entry of inbox.sort((a, b) => a.id - b.id)) deliver(room, entry.id, entry.text)
    }
  }

  function roomOf(name: string): Room {
    let room = rooms.get(name)
    if (room) return room
    room = { name, members: new Set(), users: new Map(), remote: new Map(), presenceText: '', lastId: undefined, ready: Promise.resolve(), inbox: [], draining: false, catchUpTo: 0 }
    const created = room
    created.ready = store.lastId(name).then(
      (id) => {
        created.lastId = id
      },
      (error) => {
        logger.error(`[nuxt-chat] could not read room "${name}" from the store`, error)
      },
    )
    // Messages arriving while the cursor is read wait in the inbox.
    drain(created)
    rooms.set(name, room)
    bus.publish({ kind: 'presence?', room: name, id: 0, frame: '' })
    return room
  }

  // ---- membership ----

  /**
   * Add a connection to a room: welcome and presence go to it at once, then the replay
   * (messages after `since`, or the last `replay` ones), then everything live, each once.
   */
  async function join(roomName: string, member: Member, since: number | undefined) {
    const room = roomOf(roomName)
    member.backlog = []
    room.members.add(member)
    if (config.rateLimit) member.bucket = createTokenBucket(config.rateLimit)
    const entry = room.users.get(member.user.id)
    if (entry) entry.connections++
    else room.users.set(member.user.id, { user: member.user, connections: 1 })

    member.write(new RoomFrame(JSON.stringify(systemFrame('welcome', room.name, member.user))))
    const joined = !entry
    if (joined) {
      const text = JSON.stringify(systemFrame('join', room.name, member.user))
      broadcast(room, new RoomFrame(text), member)
      bus.publish({ kind: 'system', room: room.name, id: 0, frame: text })
      announcePresence(room)
    }
    // The newcomer always gets the presence list (before its replay), even when it did not change.
    broadcastPresence(room, member)
    member.write(new RoomFrame(room.presenceText))

    await room.ready
    // A cursor the room never reached (a reset store, another deployment) is unknown: replay as if none was given.
    if (since !== undefined && since > (room.lastId ?? 0)) since = undefined
    let replayed: StoredMessage[] = []
    try {
      replayed = since === undefined
        ? await store.replaySince(room.name, undefined, config.replay)
        : await store.replaySince(room.name, since, config.maxReplay)
    }
    catch (error) {
      logger.error('[nuxt-chat] replay failed', error)
      member.write(new RoomFrame(JSON.stringify(errorFrame('unavailable', 'History is unavailable right now'))))
    }
    if (!room.members.has(member)) return
    let last = since ?? 0
    for (const message of replayed) {
      member.write(new RoomFrame(JSON.stringify(messageFrame(message)), message.id))
      last = message.id
    }
    member.replayedTo = last
    const backlog = member.backlog ?? []
    member.backlog = null
    for (const frame of backlog) {
      if (frame.id && frame.id <= last) continue
      member.write(frame)
    }
  }

  /** Remove a connection; the last connection of a user tells the room they left. */
  function leave(roomName: string, member: Member) {
    const room = rooms.get(roomName)
    if (!room || !room.members.delete(member)) return
    const entry = room.users.get(member.user.id)
    if (entry && --entry.connections === 0) {
      room.users.delete(member.user.id)
      const text = JSON.stringify(systemFrame('leave', room.name, member.user))
      broadcast(room, new RoomFrame(text))
      bus.publish({ kind: 'system', room: room.name, id: 0, frame: text })
      announcePresence(room)
      broadcastPresence(room)
    }
    if (room.members.size === 0) rooms.delete(roomName)
  }

  // ---- sending ----

  /**
   * The send pipeline: size and emptiness, rate limit, the `chat:message` hook, the store,
   * then fan-out here and on every other instance. `member` is absent for HTTP POST.
   */
  async function send(input: {
    room: string
    user: ChatUser
    sender: string
    message: string
    cid?: string
    member?: Member
    rateKey?: string
    /** Called once the message is handed to the store (appends are stored in the order handed). */
    onQueued?: () => void
  }): Promise<SendResult> {
    const fail = (status: number, code: ChatErrorFrame['code'], text: string): SendResult => ({ status, error: errorFrame(code, text, input.cid) })
    // Lone surrogates and NUL cannot be stored as text everywhere (PostgreSQL refuses NUL).
    let text = input.message.toWellFormed().replaceAll('\0', '')
    if (!text.trim()) return fail(400, 'empty', 'Message is empty')
    if (text.length > config.maxLength) return fail(413, 'too_long', `Message is longer than ${config.maxLength} characters`)
    if (config.rateLimit) {
      const allowed = input.member?.bucket ? takeToken(input.member.bucket, config.rateLimit) : postLimiter!.take(input.rateKey ?? input.sender)
      if (!allowed) return fail(429, 'rate_limited', 'Too many messages; slow down')
    }
    const context: ChatMessageContext = { room: input.room, user: input.user, message: text, cid: input.cid }
    try {
      await hooks.callHook('chat:message', context)
    }
    catch (error) {
      const { statusCode, statusMessage } = error as { statusCode?: number, statusMessage?: string }
      // `throw createError({ statusMessage })` refuses the message; any other exception is a bug in the hook.
      if (!statusCode) {
        logger.error('[nuxt-chat] the chat:message hook failed', error)
        return fail(503, 'unavailable', 'The message could not be checked; try again')
      }
      context.reject = statusMessage || 'Message rejected'
    }
    if (context.reject !== undefined) return fail(403, 'rejected', String(context.reject))
    text = typeof context.message === 'string' ? context.message : text
    if (!text.trim()) return fail(400, 'empty', 'Message is empty')

    let result
    try {
      const appending = store.append({ room: input.room, user: input.user.name, sender: input.sender, message: text, ts: Date.now(), cid: input.cid })
      input.onQueued?.()
      result = await appending
    }
    catch (error) {
      logger.error('[nuxt-chat] could not store a message', error)
      return fail(503, 'unavailable', 'The message could not be stored; try again')
    }
    const frame = messageFrame(result.message)
    if (result.duplicate) return { status: 200, frame, duplicate: true }

    const json = JSON.stringify(frame)
    const room = rooms.get(input.room)
    if (room) deliver(room, frame.id, json)
    if (!bus.publish({ kind: 'message', room: input.room, id: frame.id, frame: json })) unpublished.add(input.room)
    // Retention every PRUNE_EVERY messages of a room (ids are contiguous), off the send path.
    if (frame.id % PRUNE_EVERY === 0) {
      setImmediate(() => {
        store.prune(input.room, config.history).catch(error => logger.error('[nuxt-chat] pruning failed', error))
      })
    }
    return { status: 200, frame }
  }

  /** Tell the others in the room that `member` is typing (at most once a second per connection). */
  function typing(roomName: string, member: Member) {
    const room = rooms.get(roomName)
    const now = Date.now()
    if (!room || (member.typingAt && now - member.typingAt < TYPING_THROTTLE)) return
    member.typingAt = now
    const text = JSON.stringify({ type: 'typing', room: roomName, user: member.user.name, uid: member.user.id, message: '' } satisfies ChatServerFrame)
    broadcast(room, new RoomFrame(text), member)
    bus.publish({ kind: 'typing', room: roomName, id: 0, frame: text })
  }

  // ---- other instances ----

  bus.onEvent((event: BusEvent, origin: string) => {
    const room = rooms.get(event.room)
    if (!room) return
    switch (event.kind) {
      case 'message':
        deliver(room, event.id, event.frame)
        break
      case 'system':
      case 'typing':
        broadcast(room, new RoomFrame(event.frame))
        break
      case 'presence': {
        room.remote.set(origin, { users: parseUsers(event.frame), expires: Date.now() + 3 * config.presenceInterval })
        broadcastPresence(room)
        break
      }
      case 'presence?':
        announcePresence(room)
        break
      case 'sync':
        drain(room, event.id + 1)
        break
    }
  })

  function catchUp() {
    for (const room of rooms.values()) {
      store.lastId(room.name).then(id => drain(room, id + 1), error => logger.error('[nuxt-chat] catch-up failed', error))
    }
  }

  // After an outage: catch every local room up from the shared store (again a moment later:
  // the bus may report ready before it has resubscribed), and tell the other instances which
  // rooms got messages here that the bus dropped.
  bus.onRecover(() => {
    catchUp()
    setTimeout(catchUp, RECOVERY_RECHECK).unref?.()
    for (const name of unpublished) {
      store.lastId(name).then((id) => {
        if (bus.publish({ kind: 'sync', room: name, id, frame: '' })) unpublished.delete(name)
      }, error => logger.error('[nuxt-chat] catch-up failed', error))
    }
  })

  // Presence heartbeat: re-announce local users, expire instances that went quiet.
  const presenceTimer = setInterval(() => {
    for (const room of rooms.values()) {
      announcePresence(room)
      broadcastPresence(room)
    }
    postLimiter?.sweep()
  }, config.presenceInterval)
  presenceTimer.unref?.()

  return {
    join,
    leave,
    send,
    typing,
    async close() {
      if (closed) return
      closed = true
      clearInterval(presenceTimer)
      await bus.close()
      await store.close()
    },
  }
}

export type ChatHub = ReturnType<typeof createChatHub>

/** Users announced by another instance; anything malformed counts as none. */
function parseUsers(text: string): ChatUser[] {
  let users: unknown
  try {
    users = JSON.parse(text)
  }
  catch {
    return []
  }
  if (!Array.isArray(users)) return []
  return users.filter((user): user is ChatUser => typeof user?.id === 'string' && typeof user?.name === 'string')
}
