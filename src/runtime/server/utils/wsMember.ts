import type { ChatErrorFrame, ChatUser } from '../../shared/protocol'
import type { ConnectionHold } from './connectionCaps'
import { countSlowReaderDrop } from './chatMetrics'
import { HeartbeatSlices, heartbeatSliceCount } from './heartbeatSlices'
import { isOverBudget, queuedWritesAfter } from './outputBudget'
import type { Member } from './roomDelivery'
import { RoomFrame } from '../transport/frame'
import type { RoomsWatcher } from './readState'
import { chatLogger } from './logger'
import type { ChatTransport } from '../transport/chatTransport'

const SETTLED = Promise.resolve()
// Input backpressure: past this many messages read but not yet answered, stop reading the socket.
const MAX_WAITING = 16

/**
 * What only some connections need (senders, typists, history readers, rooms lists): made on first use, so an idle connection carries one empty slot instead of a dozen fields.
 */
export class MemberRareState {
  // Set in the constructor, as on the member: in-object slots.
  /** Rate-limit answers in a row; too many closes the connection. */
  declare strikes: number
  /** This member's messages, handled one after another (back to SETTLED once all are answered). */
  declare chain: Promise<void>
  /** Settles once this member's latest message is answered (stored or refused): an edit or delete waits for it, as its target may be that message. */
  declare answeredAll: Promise<unknown>
  /** Messages read but not yet answered; past MAX_WAITING the socket is paused. */
  declare waiting: number
  declare paused: boolean
  /** A message refused for now: later messages with a cid are refused alike until this cid comes again. */
  declare refusal: ChatErrorFrame | undefined
  declare typingAt: number | undefined
  /** A history page is being read for this connection. */
  declare readingHistory: boolean
  /** A `?rooms` connection: its rooms list (set by the read state). */
  declare entries: RoomsWatcher['entries']
  declare loading: RoomsWatcher['loading']
  declare request: RoomsWatcher['request']
  declare data: RoomsWatcher['data']
  /** It asked for streaming messages' `delta` frames (`?deltas=1`). */
  declare takesDeltas: boolean

  constructor() {
    this.strikes = 0
    this.chain = SETTLED
    this.answeredAll = SETTLED
    this.waiting = 0
    this.paused = false
    this.refusal = undefined
    this.typingAt = undefined
    this.readingHistory = false
    this.entries = undefined
    this.loading = undefined
    this.request = undefined
    this.data = undefined
    this.takesDeltas = false
  }
}

/**
 * One WebSocket connection in a room, writing through its transport (../transport/chatTransport.ts), which holds it
 * in its `member` slot. A class, not an object of closures, with only what every connection uses in its own fields:
 * idle connections are most of a chat server's memory.
 */
export class WebSocketMember implements Member, RoomsWatcher {
  // Fields are declared here and set in the constructor: class fields compile to helper calls that
  // V8 cannot count, and every one past its guess costs each connection an out-of-object slot.
  /** The one socket it writes to, whatever the platform serves it with. */
  declare readonly socket: ChatTransport
  declare readonly user: ChatUser
  declare readonly ip: string | undefined
  /** `''` for a rooms list connection (a room name is never empty). */
  declare readonly room: string
  /** Its address's connection slot, released when it ends. */
  declare readonly hold: ConnectionHold
  declare private readonly maxBufferedBytes: number
  declare heldDuringReplay: RoomFrame[] | null
  declare replayedTo: number
  declare alive: boolean
  /** Writes queued behind a full socket since it last drained: they cost memory beyond their bytes. */
  declare queuedWrites: number
  /** The heartbeat slice that pings this connection (set when it is added to `heartbeatSlices`). */
  declare slice: number
  declare private rareState: MemberRareState | undefined

  constructor(socket: ChatTransport, user: ChatUser, ip: string | undefined, room: string, hold: ConnectionHold, maxBufferedBytes: number) {
    this.socket = socket
    this.user = user
    this.ip = ip
    this.room = room
    this.hold = hold
    this.maxBufferedBytes = maxBufferedBytes
    this.heldDuringReplay = null
    this.replayedTo = 0
    this.alive = true
    this.queuedWrites = 0
    this.slice = 0
    this.rareState = undefined
  }

  /** Who sends (`cid` de-duplication, rate limit): always the user's id, so not stored again. */
  get sender(): string {
    return this.user.id
  }

  /** A `?rooms` connection follows its user's rooms list and is in no room. */
  get watching(): boolean {
    return this.room === ''
  }

  /** Sent `delta` frames: only when it asked (read without making the rare state). */
  get takesDeltas(): boolean {
    return this.rareState?.takesDeltas ?? false
  }

  /** Reading stopped by input backpressure (read without making the rare state). */
  get paused(): boolean {
    return this.rareState?.paused ?? false
  }

  /** The state only some connections need, made on first use. */
  rare(): MemberRareState {
    return this.rareState ??= new MemberRareState()
  }

  // The fields other modules set through the Member and RoomsWatcher interfaces, kept in the rare state.
  get typingAt(): number | undefined {
    return this.rareState?.typingAt
  }

  set typingAt(at: number | undefined) {
    this.rare().typingAt = at
  }

  get entries(): RoomsWatcher['entries'] {
    return this.rareState?.entries
  }

  set entries(entries: RoomsWatcher['entries']) {
    this.rare().entries = entries
  }

  get loading(): RoomsWatcher['loading'] {
    return this.rareState?.loading
  }

  set loading(loading: RoomsWatcher['loading']) {
    this.rare().loading = loading
  }

  get request(): RoomsWatcher['request'] {
    return this.rareState?.request
  }

  set request(request: RoomsWatcher['request']) {
    this.rare().request = request
  }

  get data(): RoomsWatcher['data'] {
    return this.rareState?.data
  }

  set data(data: RoomsWatcher['data']) {
    // Most connections have none: no rare state made for an undefined.
    if (data !== undefined || this.rareState) this.rare().data = data
  }

  /** Every frame to this connection goes through here, so all of them count against `maxBufferedBytes`. */
  write(frame: RoomFrame) {
    const socket = this.socket
    // Already closing (e.g. dropped as a slow reader): nothing more to send, nor to warn about again.
    if (!socket.writable) return
    const buffered = socket.writeFrame(frame)
    this.queuedWrites = queuedWritesAfter(this.queuedWrites, buffered)
    if (isOverBudget(buffered, this.queuedWrites, this.maxBufferedBytes)) {
      // A reader this far behind would only grow our memory: drop it now (a close frame would wait behind the unread output); it resumes by id.
      chatLogger.warn(this.room ? `[nuxt-chat] closing a slow reader in room "${this.room}"` : '[nuxt-chat] closing a slow reader')
      countSlowReaderDrop()
      socket.drop()
    }
  }

  send(frame: object) {
    this.write(new RoomFrame(JSON.stringify(frame)))
  }

  holdOutput(): boolean {
    return this.socket.holdOutput()
  }

  releaseOutput() {
    this.socket.releaseOutput()
  }

  /** Closed by the app (`useChatServer().disconnect`: 4001) or by a membership that ended (4003), see docs/PROTOCOL.md. */
  close(code = 4001, reason = 'Disconnected by the server') {
    this.socket.closeWith(code, reason)
  }

  /** One more message read; stop reading the socket while too many wait. */
  received() {
    const rare = this.rare()
    if (++rare.waiting <= MAX_WAITING || rare.paused) return
    rare.paused = true
    // No way to pause this transport: refuse the flood rather than queue it.
    if (!this.socket.pauseReading()) this.socket.closeWith(1008, 'Too many messages waiting')
  }

  /** One message answered; read again once the queue is half empty. */
  answered() {
    const rare = this.rare()
    // All answered: the last message's promises need not stay alive with an idle connection.
    if (--rare.waiting === 0) rare.chain = rare.answeredAll = SETTLED
    if (rare.waiting > MAX_WAITING / 2 || !rare.paused) return
    rare.paused = false
    this.socket.resumeReading()
  }
}

/**
 * Queue one of a connection's messages: each is checked and handed to the store in the order sent, the
 * next starting once this one is handed over. Settles once this one is answered (stored or refused).
 */
export function handleInOrder(member: WebSocketMember, handle: (handed: () => void) => Promise<void>): Promise<void> {
  member.received()
  const rare = member.rare()
  return new Promise<void>((answered) => {
    rare.chain = rare.chain.then(() => new Promise<void>((handed) => {
      rare.answeredAll = handle(handed).catch((error) => {
        chatLogger.error('[nuxt-chat] message handling failed', error)
      }).finally(() => {
        member.answered()
        handed()
        answered()
      })
    }))
  })
}

// Each interval's pings go out in slices, a tick every ~100 ms (heartbeatSliceCount): 10,000 pings in one task hold the event loop ~100 ms.
let heartbeatSlices: HeartbeatSlices<WebSocketMember> | undefined
let heartbeat: ReturnType<typeof setInterval> | undefined

/** WebSocket pings (every `interval` ms): a peer that answered nothing since its last round is gone (found within 2 × interval). */
export function addToHeartbeat(member: WebSocketMember, interval: number) {
  heartbeatSlices ??= new HeartbeatSlices(heartbeatSliceCount(interval))
  member.slice = heartbeatSlices.add(member)
  if (heartbeat) return
  heartbeat = setInterval(() => {
    heartbeatSlices!.tick(pingOrDrop)
  }, interval / heartbeatSlices.count)
  heartbeat.unref?.()
}

/** Close every WebSocket connection of this instance (a stopping server). */
export function closeWebSocketMembers(code: number, reason: string) {
  for (const member of heartbeatSlices ?? []) member.close(code, reason)
}

/** The connection closed: no more pings. */
export function removeFromHeartbeat(member: WebSocketMember) {
  heartbeatSlices?.delete(member, member.slice)
}

/** One heartbeat visit: a connection silent since its last ping is dropped, else pinged again. */
function pingOrDrop(member: WebSocketMember) {
  // A socket we stopped reading (input backpressure) cannot have read its pong: not a sign of death.
  if (!member.alive && !member.paused) {
    member.socket.drop()
    return
  }
  // No protocol ping on this platform: never marked silent either.
  if (member.socket.sendPing()) member.alive = false
}
