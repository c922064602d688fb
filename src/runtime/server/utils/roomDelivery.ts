import { errorFrame, type ChatMemberRole, type ChatMessageFrame, type ChatStoredFrame, type ChatUser } from '../../shared/protocol'
import { eventFrame } from './roomEvents'
import { sequenceOf, type RoomLog, type StoredMessage } from './roomLog'
import { RoomFrame } from '../transport/frame'

/** How a stored message's frame text starts (`messageFrame` puts `type` first); events start otherwise. */
const MESSAGE_FRAME_START = '{"type":"message"'

/** What a person is told of their membership on joining (docs/PROTOCOL.md, "Moderation commands"). */
export interface Membership {
  role?: ChatMemberRole
  mutedUntil?: number
}

/** One connection in a room, WebSocket or SSE. */
export interface Member {
  readonly user: ChatUser
  /** Who sends: `user.id` (the `cid` de-duplication scope and the rate-limit key). */
  readonly sender: string
  /** The client address, for the per-address limits (a new room's first read position). */
  readonly ip?: string
  /** Frames that arrived while the member's replay was being sent; `null` or absent once live. Set by the hub. */
  heldDuringReplay?: RoomFrame[] | null
  /** Newest message id its replay sent: a slower delivery of the same id is not sent again. Set by the hub. */
  replayedTo?: number
  /** Write a frame now: the only way the hub writes to a connection, so the transport can bound it. */
  write: (frame: RoomFrame) => void
  /** Last typing broadcast, for the server-side throttle. */
  typingAt?: number
  /** End the connection (`useChatServer().disconnect`). */
  close?: (code?: number, reason?: string) => void
  /** It is told who has read what (`seen` frames: version 2 only, docs/PROTOCOL.md "Seen by"). */
  readonly seesReads?: boolean
  /** It is sent streaming messages' `delta` frames (version 2, and version 1 with `?deltas=1`: docs/PROTOCOL.md "Streaming messages"). */
  readonly takesDeltas?: boolean
  /** The frame that opens its join, with the person's membership of the room; absent: the seed's `welcome` (a version 2 subscription's is `joined`). */
  greeting?: (room: string, membership: Membership) => RoomFrame
  /** Keep its output from leaving until `releaseOutput` (a join's frames of two tasks in one write); false when it cannot. */
  holdOutput?: () => boolean
  releaseOutput?: () => void
}

/**
 * Deliver a frame to a member: held while its replay is sent, dropped when its replay already
 * carried that id (the member's own change then still acknowledged), written otherwise.
 */
export function deliverToMember(member: Member, frame: RoomFrame) {
  if (member.heldDuringReplay) member.heldDuringReplay.push(frame)
  else if (frame.id === 0 || frame.id > (member.replayedTo ?? 0)) member.write(frame)
  else acknowledgeCoveredChange(member, frame)
}

/**
 * A change the member's replay covers is dropped from its room order, but the replay carries only
 * the target's state, not the change's `cid`: its sender gets the change marked `duplicate`
 * (docs/PROTOCOL.md, "Replay frames and the resume cursor"), else its outbox would wait for an answer forever.
 */
function acknowledgeCoveredChange(member: Member, frame: RoomFrame) {
  // A message's replay frame carries its own cid; only changes (rarely dropped) are parsed.
  if (frame.text.startsWith(MESSAGE_FRAME_START) || !member.sender) return
  const change = JSON.parse(frame.text) as ChatStoredFrame
  if (change.cid !== undefined && change.uid === member.sender) member.write(new RoomFrame(JSON.stringify({ ...change, duplicate: true })))
}

/** Serialise a stored message, or event (revision 3), as its wire frame. */
export function messageFrame(message: StoredMessage): ChatStoredFrame {
  if (message.kind) return eventFrame(message)
  const frame: ChatMessageFrame = { type: 'message', id: message.id, room: message.room, user: message.user, message: message.message, ts: message.ts }
  if (message.cid !== undefined) frame.cid = message.cid
  if (message.uid !== undefined) frame.uid = message.uid
  if (message.guest) frame.guest = true
  if (message.edited !== undefined) frame.edited = message.edited
  if (message.deleted) frame.deleted = true
  if (message.reactions) frame.reactions = message.reactions
  // Which thread it is in (a client takes a deleted reply out of its parent's summary), and a parent's summary as stored.
  if (message.thread !== undefined) frame.thread = message.thread
  if (message.alsoInRoom) frame.alsoInRoom = true
  if (message.replies) frame.replies = { ...message.replies, users: [...message.replies.users] }
  // Streaming messages (docs/PROTOCOL.md, "Streaming messages").
  if (message.streaming) frame.streaming = true
  if (message.incomplete) frame.incomplete = message.incomplete
  // A tombstone tells nothing of what the text was: not whom it answered, nor whom it named.
  if (message.deleted) return frame
  // A copy: the memory store shares one quote among a message's replies and changes it in place.
  if (message.replyTo) frame.replyTo = { ...message.replyTo }
  if (message.mentions) frame.mentions = message.mentions
  if (message.mentionsAll) frame.mentionsAll = message.mentionsAll
  if (message.files) frame.files = message.files
  return frame
}

export interface RoomDeliveryOptions {
  room: string
  store: Pick<RoomLog, 'lastId' | 'between' | 'replaySince'>
  /** Where failures to read the store are reported. */
  logger: { error: (message: string, error?: unknown) => void }
  /** How long to wait before reading missed messages again after the store failed, in ms. @default 1000 */
  gapRetry?: number
  /**
   * Newest message frames kept in memory, so a newcomer's replay they cover needs no store
   * query. Only safe while the store keeps at least these (no `maxAge` retention). @default 0
   */
  recent?: number
}

/** A replay read from the store waits for its turn (the person's byte budget, `ChatLimits.replayTurn`); resolves to the turn's release. */
export type ReplayTurn = () => Promise<() => void>

/** How much history a newcomer gets. */
export interface ReplayLimits {
  /** Messages replayed without a cursor. */
  replay: number
  /** Most messages replayed after a cursor. */
  maxReplay: number
}

const SETTLED = Promise.resolve()
/** How many messages a replay sends: the last `replay` ones without a cursor, up to `maxReplay` after one. */
const replayCount = (since: number | undefined, limits: ReplayLimits) => since === undefined ? limits.replay : limits.maxReplay

/**
 * Ordered delivery for one room on this instance: its local members get every stored message
 * exactly once and in id order, whether it was stored here, arrived from another instance
 * (maybe early, maybe late) or was missed while the bus was down; a newcomer gets its replay,
 * then live messages, with nothing lost or repeated at the seam.
 * A class, not an object of closures: one stays with every room, and a room is a few connections' worth of memory.
 */
export class RoomDelivery {
  // Set in the constructor: in-object slots.
  declare readonly room: string
  declare readonly members: Set<Member>
  /** Resolves once the room's newest stored id is known. */
  declare readonly ready: Promise<void>
  declare private readonly store: RoomDeliveryOptions['store']
  declare private readonly logger: RoomDeliveryOptions['logger']
  declare private readonly gapRetry: number
  declare private readonly recent: number
  /** The newest delivered message frames, contiguous ids ending at `lastId` (oldest first). */
  declare private recentFrames: RoomFrame[]
  /** Newest message id delivered here; `undefined` until read from the store. */
  declare private newest: number | undefined
  /** Messages that arrived ahead of a gap, or while the cursor was read or a catch-up ran. */
  declare private outOfOrder: { id: number, text: string }[]
  declare private draining: boolean
  /** Catch up to this id (exclusive) from the store; 0 when nothing is asked. */
  declare private catchUpTo: number

  constructor({ room, store, logger, gapRetry = 1000, recent = 0 }: RoomDeliveryOptions) {
    this.room = room
    this.members = new Set()
    this.store = store
    this.logger = logger
    this.gapRetry = gapRetry
    this.recent = recent
    this.recentFrames = []
    this.newest = undefined
    this.outOfOrder = []
    this.draining = false
    this.catchUpTo = 0
    this.ready = store.lastId(room).then(
      (id) => {
        this.newest = id
      },
      (error) => {
        logger.error(`[nuxt-chat] could not read room "${room}" from the store`, error)
      },
    )
    // Messages arriving while the cursor is read wait with the out-of-order arrivals.
    this.catchUp()
  }

  /** Newest message id delivered here; `undefined` until read from the store. */
  get lastId(): number | undefined {
    return this.newest
  }

  /** Write one frame to every member but `except` (held for members still replaying), in arrival order. */
  broadcast(frame: RoomFrame, except?: Member | ReadonlySet<Member> | ReadonlyMap<Member, unknown>) {
    if (except instanceof Set || except instanceof Map) {
      for (const member of this.members) {
        if (!except.has(member)) deliverToMember(member, frame)
      }
      return
    }
    for (const member of this.members) {
      if (member !== except) deliverToMember(member, frame)
    }
  }

  /** Write a streaming message's `delta` to the members that take deltas (never the seed page: it would show each one as a line). */
  broadcastDelta(frame: RoomFrame) {
    for (const member of this.members) {
      if (member.takesDeltas) deliverToMember(member, frame)
    }
  }

  /**
   * Deliver a stored message exactly once and in id order. Ids are contiguous per room, so a
   * jump means a message is still on its way (another instance, a slower write): fill the gap
   * from the store, which already holds it.
   */
  deliver(id: number, text: string) {
    if (this.draining) {
      this.outOfOrder.push({ id, text })
      return
    }
    const lastId = this.newest
    if (lastId !== undefined && id <= lastId) return
    if (lastId !== undefined && id > lastId + 1) {
      this.outOfOrder.push({ id, text })
      this.catchUp()
      return
    }
    this.newest = id
    this.broadcastMessage(new RoomFrame(text, id))
  }

  /** Broadcast a message frame in id order, and keep it among the recent ones. */
  private broadcastMessage(frame: RoomFrame) {
    const recent = this.recent
    // An edit, delete or reaction changes messages the window holds as they were sent, and so does a thread
    // reply (its parent's summary): start it afresh (replays read the store). A JSON text has `"thread":` only as a key.
    if (recent > 0 && (!frame.text.startsWith(MESSAGE_FRAME_START) || frame.text.includes(',"thread":'))) this.recentFrames = []
    else if (recent > 0) {
      // A jump (a cursor read late, a store that could not fill a gap) starts the window afresh.
      if (this.recentFrames.length && this.recentFrames.at(-1)!.id !== frame.id - 1) this.recentFrames = []
      this.recentFrames.push(frame)
      // Trimmed in batches: one copy per `recent` messages instead of a shift per message.
      if (this.recentFrames.length >= 2 * recent) this.recentFrames = this.recentFrames.slice(-recent)
    }
    this.broadcast(frame)
  }

  /**
   * The replay from memory, or `undefined` when the recent frames do not cover it. Covered:
   * the window ends at `lastId` and holds every message the store would return (all after
   * `since`, or the last `count`; or it starts at the room's first id).
   */
  private recentReplay(since: number | undefined, count: number): RoomFrame[] | undefined {
    const lastId = this.newest
    const recentFrames = this.recentFrames
    if (lastId === undefined) return undefined
    // Nothing delivered after the cursor: nothing to replay (a later message comes live).
    if (lastId === 0 || (since !== undefined && since >= lastId)) return []
    if (!recentFrames.length || recentFrames.at(-1)!.id !== lastId) return undefined
    const first = recentFrames[0]!.id
    const from = since === undefined ? lastId - count + 1 : Math.max(since + 1, lastId - count + 1)
    if (from < first && first !== 1) return undefined
    return recentFrames.slice(Math.max(0, from - first))
  }

  /**
   * Fill gaps from the store, then deliver the out-of-order arrivals, in order. `upTo`
   * (exclusive) asks to catch up to a known id even with nothing waiting. One catch-up runs
   * at a time; a call during it only raises the target.
   */
  catchUp(upTo?: number) {
    if (upTo !== undefined) this.catchUpTo = Math.max(this.catchUpTo, upTo)
    if (this.draining) return
    this.draining = true
    void this.runCatchUp()
  }

  private async runCatchUp() {
    let storeFailed = false
    try {
      await this.ready
      while (this.newest !== undefined && (this.outOfOrder.length || this.catchUpTo > this.newest + 1)) {
        const last = this.newest
        let upTo = this.catchUpTo
        this.catchUpTo = 0
        const pending = new Map<number, string>()
        for (const arrival of this.outOfOrder.splice(0)) {
          pending.set(arrival.id, arrival.text)
          if (arrival.id >= upTo) upTo = arrival.id + 1
        }
        let held = 0
        for (const id of pending.keys()) if (id > last && id < upTo) held++
        if (held < upTo - 1 - last) {
          try {
            for (const message of await this.store.between(this.room, last, upTo)) {
              if (!pending.has(message.id)) pending.set(message.id, JSON.stringify(messageFrame(message)))
            }
          }
          catch (error) {
            // Never deliver across a hole: clients would move their cursor past it for good.
            this.logger.error('[nuxt-chat] could not read missed messages from the store; retrying', error)
            for (const [id, text] of pending) this.outOfOrder.push({ id, text })
            this.catchUpTo = Math.max(this.catchUpTo, upTo)
            storeFailed = true
            break
          }
        }
        for (const id of [...pending.keys()].sort((a, b) => a - b)) {
          if (id <= this.newest) continue
          this.newest = id
          this.broadcastMessage(new RoomFrame(pending.get(id)!, id))
        }
      }
    }
    finally {
      this.draining = false
    }
    if (storeFailed) {
      setTimeout(() => this.catchUp(), this.gapRetry).unref?.()
      return
    }
    // The room's cursor could not be read at all: deliver what waited as it is, in order.
    if (this.outOfOrder.length) {
      const arrivals = this.outOfOrder
      this.outOfOrder = []
      for (const arrival of arrivals.sort((a, b) => a.id - b.id)) this.deliver(arrival.id, arrival.text)
    }
  }

  /** Add a member: from now on it gets the room's frames, held until its replay is sent. */
  add(member: Member) {
    member.heldDuringReplay = []
    this.members.add(member)
  }

  /** Remove a member; true when it was here. */
  remove(member: Member): boolean {
    return this.members.delete(member)
  }

  /**
   * Send a member its replay (messages after `since`, or the last `limits.replay` ones), then
   * what arrived meanwhile, each message once; the member is live afterwards. From memory it is
   * written before this returns (in the caller's task: one flush with what the caller wrote).
   */
  replay(member: Member, since: number | undefined, limits: ReplayLimits, onSent?: (bytes: number) => void, turn?: ReplayTurn): Promise<void> {
    if (this.replayFromMemory(member, since, limits, onSent)) return SETTLED
    return this.replayFromStore(member, since, limits, onSent, turn)
  }

  /** Send the replay from memory when it covers it (no query, and the frames' bytes are already made): false when it does not. */
  private replayFromMemory(member: Member, since: number | undefined, limits: ReplayLimits, onSent?: (bytes: number) => void): boolean {
    const replayed = this.deliveredCursor(since) ? this.recentReplay(since, replayCount(since, limits)) : undefined
    if (!replayed) return false
    if (this.members.has(member)) sendReplay(member, since, replayed, onSent)
    return true
  }

  /**
   * Is the cursor at or below what this instance delivered? A cursor above it may still be the
   * store's (a replay's `rev`, a message not delivered here yet): the store decides whether it is known.
   */
  private deliveredCursor(since: number | undefined): boolean {
    return this.newest !== undefined && (since === undefined || since <= this.newest)
  }

  private async replayFromStore(member: Member, since: number | undefined, limits: ReplayLimits, onSent?: (bytes: number) => void, turn?: ReplayTurn) {
    await this.ready
    // The room's store may have settled since: memory may cover the replay now.
    if (this.replayFromMemory(member, since, limits, onSent)) return
    // Read, sent and charged within its turn; the turn ends whatever happens.
    const release = await turn?.()
    try {
      // Gone while it waited: nothing to read.
      if (this.members.has(member)) await this.readReplay(member, since, limits, onSent)
    }
    finally {
      release?.()
    }
  }

  private async readReplay(member: Member, since: number | undefined, limits: ReplayLimits, onSent?: (bytes: number) => void) {
    const replayed: RoomFrame[] = []
    try {
      // Read first: the messages read after it hold every change up to it, so the replay brings the client that far (revision 5).
      const newest = await this.store.lastId(this.room)
      // A cursor the room never reached (a reset store, another deployment) is unknown: replay as if none was given.
      if (since !== undefined && since > newest) since = undefined
      const messages = await this.store.replaySince(this.room, since, replayCount(since, limits))
      let previous = since
      messages.forEach((message, index) => {
        const frame = messageFrame(message) as ChatMessageFrame
        const position = index === messages.length - 1 ? Math.max(sequenceOf(message), newest) : sequenceOf(message)
        // Only where the cursor could not follow by id alone: a state with changes, or a skip in the numbers.
        if (position !== message.id || (previous !== undefined && position !== previous + 1)) frame.rev = position
        previous = position
        replayed.push(new RoomFrame(JSON.stringify(frame), position))
      })
    }
    catch (error) {
      this.logger.error('[nuxt-chat] replay failed', error)
      member.write(new RoomFrame(JSON.stringify(errorFrame('unavailable', 'History is unavailable right now'))))
    }
    if (this.members.has(member)) sendReplay(member, since, replayed, onSent)
  }
}

/** Write a replay, then what arrived meanwhile (but the ids it carried); the member is live afterwards. `onSent`: the replay's bytes (the frames' JSON). */
function sendReplay(member: Member, since: number | undefined, replayed: readonly RoomFrame[], onSent?: (bytes: number) => void) {
  let last = since ?? 0
  let bytes = 0
  for (const frame of replayed) {
    member.write(frame)
    last = frame.id
    if (onSent) bytes += Buffer.byteLength(frame.text)
  }
  if (onSent && bytes) onSent(bytes)
  member.replayedTo = last
  const held = member.heldDuringReplay ?? []
  member.heldDuringReplay = null
  for (const frame of held) {
    if (frame.id && frame.id <= last) acknowledgeCoveredChange(member, frame)
    else member.write(frame)
  }
}

/** Ordered delivery for one room on this instance (see `RoomDelivery`). */
export function createRoomDelivery(options: RoomDeliveryOptions): RoomDelivery {
  return new RoomDelivery(options)
}
