// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { Hooks, Peer } from 'crossws'
import { capIncomingFrames, serveChatSockets, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, parseClientFrame, PONG_FRAME, type ChatClientCommand, type ChatErrorFrame, type ChatUser } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal, holdConnection, type ChatAdmission } from '../utils/access'
import { admitToChat, refusalCode, retryAfterSeconds } from '../utils/httpAdmission'
import { countSlowReaderDrop } from '../utils/chatMetrics'
import { isOverBudget, queuedWritesAfter } from '../utils/outputBudget'
import { deliverToMember, RoomFrame, type Member } from '../utils/roomDelivery'
import type { RoomsWatcher } from '../utils/readState'
import { chatLogger, useChatHub } from '../utils/useChatHub'
import { HeartbeatSlices, heartbeatSliceCount } from '../utils/heartbeatSlices'
import { sendFieldsOf } from '../utils/sendPipeline'
import { closeConnection, nextFrameIsBinary, pauseReading, rawWebSocket, releaseUpgradeRequest, resumeReading, transportStats, upgradeRefusal, upgradeSocket, watchSocket, writeFrame, type RawWebSocket, type SocketWatch } from '../utils/wsTransport'

const SETTLED = Promise.resolve()
/** The per-address key of connections whose client address crossws does not show. */
const UNKNOWN_ADDRESS = 'unknown'
// A sender who keeps hammering after being told to slow down is closed (1008).
const ABUSE_LIMIT = 50
// Input backpressure: past this many messages read but not yet answered, stop reading the socket.
const MAX_WAITING = 16
// Refusals that hold every later message with a cid on the connection (docs/PROTOCOL.md, "Acknowledgements and order").
const HOLDING_CODES: ReadonlySet<ChatErrorFrame['code']> = new Set(['rate_limited', 'unavailable'])
// One pong for everyone: a flood of pings queues references to the same bytes.
const PONG = new RoomFrame(JSON.stringify(PONG_FRAME))
// Likewise for blank raw text, the cheapest frame to flood with: answered at once, from shared bytes.
const EMPTY = new RoomFrame(JSON.stringify(errorFrame('empty', 'Message is empty')))

type ChatMessageCommand = Extract<ChatClientCommand, { type: 'message' | 'edit' | 'delete' | 'reaction' }>

/**
 * One WebSocket connection in a room: on its `ws` socket's `member` slot (Nitro 2, ../utils/wsServer.ts),
 * or in `peer.context.chat` when crossws serves it (Nitro 3). A class, not an object of
 * closures: idle connections are most of a chat server's memory.
 */
class WebSocketMember implements Member, SocketWatch, RoomsWatcher {
  // Fields are declared here and set in the constructor: class fields compile to helper calls that
  // V8 cannot count, and every one past its guess costs each connection an out-of-object slot.
  /** The crossws Peer, when crossws serves this connection; `undefined` on a socket served directly. */
  declare readonly peer: Peer | undefined
  declare readonly ws: RawWebSocket | undefined
  declare readonly user: ChatUser
  declare readonly sender: string
  declare readonly ip: string | undefined
  declare readonly room: string
  declare readonly release: () => void
  declare private readonly maxBufferedBytes: number
  declare heldDuringReplay: RoomFrame[] | null
  declare replayedTo: number
  declare alive: boolean
  /** Made on the first frame read (most connections mostly listen). */
  declare binaryFlags: boolean[] | undefined
  /** Rate-limit answers in a row; too many closes the connection. */
  declare strikes: number
  /** This member's messages, handled one after another. */
  declare chain: Promise<void>
  /** Settles once this member's latest message is answered (stored or refused): an edit or delete waits for it, as its target may be that message. */
  declare answeredAll: Promise<unknown>
  /** Messages read but not yet answered; past MAX_WAITING the socket is paused. */
  declare waiting: number
  declare paused: boolean
  /** Writes queued behind a full socket since it last drained: they cost memory beyond their bytes. */
  declare queuedWrites: number
  /** A message refused for now: later messages with a cid are refused alike until this cid comes again. */
  declare refusal: ChatErrorFrame | undefined
  declare typingAt: number | undefined
  /** A history page is being read for this connection. */
  declare readingHistory: boolean
  /** The heartbeat slice that pings this connection (set when it is added to `heartbeatSlices`). */
  declare slice: number
  /** A `?rooms` connection: its rooms list (set by the hub); it is in no room. */
  declare entries: RoomsWatcher['entries']
  declare loading: RoomsWatcher['loading']
  declare watching: boolean

  constructor(peer: Peer | undefined, ws: RawWebSocket | undefined, user: ChatUser, sender: string, ip: string | undefined, room: string, release: () => void, maxBufferedBytes: number) {
    this.peer = peer
    this.ws = ws
    this.user = user
    this.sender = sender
    this.ip = ip
    this.room = room
    this.release = release
    this.maxBufferedBytes = maxBufferedBytes
    this.heldDuringReplay = null
    this.replayedTo = 0
    this.alive = true
    this.binaryFlags = undefined
    this.strikes = 0
    this.chain = SETTLED
    this.answeredAll = SETTLED
    this.waiting = 0
    this.paused = false
    this.queuedWrites = 0
    this.refusal = undefined
    this.typingAt = undefined
    this.readingHistory = false
    this.slice = 0
    this.entries = undefined
    this.loading = undefined
    this.watching = false
  }

  /** Every frame to this connection goes through here, so all of them count against `maxBufferedBytes`. */
  write(frame: RoomFrame) {
    const { ws, peer } = this
    // Already closing (e.g. dropped as a slow reader): nothing more to send, nor to warn about again.
    if (ws && ws.readyState !== 1) return
    const buffered = writeFrame(peer, ws, frame)
    this.queuedWrites = queuedWritesAfter(this.queuedWrites, buffered)
    if (isOverBudget(buffered, this.queuedWrites, this.maxBufferedBytes)) {
      // A reader this far behind would only grow our memory: drop it now (a close frame would wait behind the unread output); it resumes by id.
      chatLogger.warn(`[nuxt-chat] closing a slow reader in room "${this.room}"`)
      countSlowReaderDrop()
      if (ws) ws.terminate()
      else closeConnection(peer, ws, 1008, 'Too slow')
    }
  }

  send(frame: object) {
    this.write(new RoomFrame(JSON.stringify(frame)))
  }

  /** Closed by the app (`useChatServer().disconnect`): 4001, see docs/PROTOCOL.md. */
  close() {
    closeConnection(this.peer, this.ws, 4001, 'Disconnected by the server')
  }

  /** One more message read; stop reading the socket while too many wait. */
  received() {
    if (++this.waiting <= MAX_WAITING || this.paused) return
    this.paused = true
    // No way to pause this transport: refuse the flood rather than queue it.
    if (!pauseReading(this.ws)) closeConnection(this.peer, this.ws, 1008, 'Too many messages waiting')
  }

  /** One message answered; read again once the queue is half empty. */
  answered() {
    if (--this.waiting > MAX_WAITING / 2 || !this.paused) return
    this.paused = false
    resumeReading(this.ws)
  }
}

// Each interval's pings go out in slices, a tick every ~100 ms (heartbeatSliceCount): 10,000 pings in one task hold the event loop ~100 ms.
let heartbeatSlices: HeartbeatSlices<WebSocketMember> | undefined
let heartbeat: ReturnType<typeof setInterval> | undefined

/** WebSocket pings: a peer that answered nothing since its last round is gone (found within 2 × interval). */
function startHeartbeat(config: ChatRuntimeConfig) {
  heartbeat ??= setInterval(() => {
    heartbeatSlices!.tick(pingOrDrop)
  }, config.heartbeat.interval / heartbeatSlices!.count)
  heartbeat.unref?.()
}

/** One heartbeat visit: a connection silent since its last ping is dropped, else pinged again. */
function pingOrDrop(member: WebSocketMember) {
  const ws = member.ws
  if (!ws) return
  // A socket we stopped reading (input backpressure) cannot have read its pong: not a sign of death.
  if (!member.alive && !member.paused) {
    ws.terminate()
    return
  }
  member.alive = false
  ws.ping()
}

function memberOf(peer: Peer): WebSocketMember | undefined {
  return (peer.context as { chat?: WebSocketMember }).chat
}

/**
 * Answer a command at once (no queue, no promise): pings, typing, frames that are not valid.
 * Returns the chat message to queue, if the frame is one.
 */
function handleCommand(member: WebSocketMember, text: string | undefined): ChatMessageCommand | undefined {
  if (text === undefined) {
    member.send(errorFrame('bad_request', 'Binary frames are not accepted; send text'))
    return
  }
  const command = parseClientFrame(text)
  // A rooms list takes pings and `read` only: it is in no room.
  if (member.watching && command.type !== 'ping' && command.type !== 'read') {
    member.send(errorFrame('bad_request', 'A rooms list connection takes only `ping` and `read`'))
    return
  }
  switch (command.type) {
    case 'ping':
      member.write(PONG)
      return
    case 'read':
      answerRead(member, command.id, command.room)
      return
    case 'typing':
      useChatHub().typing(member.room, member)
      return
    case 'history':
      answerHistory(member, command.before, command.limit)
      return
    case 'invalid':
      member.send(errorFrame('bad_request', command.reason, command.cid))
      return
  }
  if (command.type === 'message' && command.cid === undefined && !command.message.trim()) {
    member.write(EMPTY)
    return
  }
  return command
}

/** Answer a page of older history; one request at a time per connection (a store read each). */
function answerHistory(member: WebSocketMember, before: number, limit: number) {
  if (member.readingHistory) {
    member.send(errorFrame('bad_request', 'One history request at a time'))
    return
  }
  member.readingHistory = true
  useChatHub().historyPage(member.room, before, limit).then(
    frame => member.send(frame),
    (error) => {
      chatLogger.error('[nuxt-chat] could not read history', error)
      member.send(errorFrame('unavailable', 'History is unavailable right now'))
    },
  ).finally(() => {
    member.readingHistory = false
  })
}

/**
 * Move the member's user's read position (docs/PROTOCOL.md, "Read state"): the `read` frame
 * reaches all their connections in the room (and rooms lists), so only refusals are answered here;
 * reads arriving while one is stored are folded into one (see `readFrom`).
 */
function answerRead(member: WebSocketMember, id: number | undefined, room: string | undefined) {
  // From a rooms list: only a room it lists (a position elsewhere would show a room the user was never admitted to).
  const answer = member.watching ? useChatHub().readFrom(member, room, member.user, id, member) : useChatHub().readFrom(member, member.room, member.user, id)
  answer.then((refused) => {
    if (refused) member.send(refused.error)
  }, error => chatLogger.error('[nuxt-chat] a read command failed', error))
}

/** Send one chat message of a member through the hub and answer it. */
async function handleMessage(member: WebSocketMember, command: ChatMessageCommand, onQueued: () => void) {
  const hub = useChatHub()
  const { cid } = command
  // Held behind an earlier refusal: refused alike, before any token or store, so order holds when the client resends.
  if (member.refusal && cid) {
    if (cid !== member.refusal.cid) {
      member.send(errorFrame(member.refusal.code, `Held: resend "${member.refusal.cid}" first`, cid))
      return
    }
    member.refusal = undefined
  }
  const { message, action } = sendFieldsOf(command)
  if (action) await member.answeredAll
  const result = await hub.send({ room: member.room, user: member.user, sender: member.sender, ip: member.ip, message, cid, action, member, onQueued })
  if (result.error) {
    member.send(result.error)
    if (cid && HOLDING_CODES.has(result.error.code)) member.refusal = result.error
    if (result.error.code === 'rate_limited' && ++member.strikes >= ABUSE_LIMIT) closeConnection(member.peer, member.ws, 1008, 'Rate limit exceeded')
    return
  }
  member.strikes = 0
  // A repeated cid is not broadcast again: only the sender gets the stored frame back (after its replay).
  // No id on this RoomFrame: the replay filter must not swallow the acknowledgement.
  if (result.duplicate) deliverToMember(member, new RoomFrame(JSON.stringify({ ...result.frame, duplicate: true })))
}

/** Admission of an upgrade, kept on the request's context until `open`. */
interface Admitted {
  admission: ChatAdmission
  /** Releases the per-address slot; `undefined` when the address was unknown at upgrade time (counted at `open`). */
  release: (() => void) | undefined
}

/** Answer a refused upgrade with an `error` frame, as the HTTP routes do. */
function refuseUpgrade(status: number, message: string): Response {
  const retryAfter = retryAfterSeconds(status)
  return upgradeRefusal(status, JSON.stringify(errorFrame(refusalCode(status), message)), {
    'content-type': 'application/json',
    ...(retryAfter ? { 'retry-after': String(retryAfter) } : {}),
  })
}

/**
 * Take an admitted connection into the chat (its room, or its rooms list). `undefined` when it was
 * not admitted or is over its address's cap: closed then.
 */
function startMember(context: { chatAdmission?: Admitted }, peer: Peer | undefined, ws: RawWebSocket | undefined, remoteAddress: string | undefined): WebSocketMember | undefined {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  const admitted = context.chatAdmission
  if (!admitted) {
    closeConnection(peer, ws, 1011, 'Not admitted')
    return
  }
  delete context.chatAdmission
  // The address was not visible at upgrade time: count the connection now, never skip the cap
  // (connections whose address nobody knows share one count; wsTransport logged why, once).
  const release = admitted.release ?? holdConnection(remoteAddress || UNKNOWN_ADDRESS, config.maxConnectionsPerIp)
  if (!release) {
    closeConnection(peer, ws, 1008, 'Too many connections from this address')
    return
  }
  capIncomingFrames(ws, config.maxPayload)
  const { admission } = admitted
  const member = new WebSocketMember(peer, ws, admission.user, admission.sender, admission.ip ?? remoteAddress, admission.room, release, config.maxBufferedBytes)
  heartbeatSlices ??= new HeartbeatSlices(heartbeatSliceCount(config.heartbeat.interval))
  member.slice = heartbeatSlices.add(member)
  startHeartbeat(config)
  if (admission.rooms) {
    member.watching = true
    useChatHub().watchRooms(member).catch((error) => {
      chatLogger.error('[nuxt-chat] could not read a rooms list', error)
      member.send(errorFrame('unavailable', 'Your rooms could not be read; reconnect later'))
      // Not left open with no list: closed, the client's backoff tries again.
      useChatHub().unwatchRooms(member)
      closeConnection(peer, ws, 1011, 'Rooms list unavailable')
    })
    return member
  }
  useChatHub().join(admission.room, member, admission.since, admission.nameRefused).catch(error => chatLogger.error('[nuxt-chat] join failed', error))
  return member
}

/** One data frame read (`undefined`: a binary one). */
function receive(member: WebSocketMember, text: string | undefined) {
  member.alive = true
  // Commands are answered at once; a connection's messages are checked one after another and handed to the store in the
  // order sent (it stores them in that order); the next starts once this one is handed over.
  const command = handleCommand(member, text)
  if (!command) return
  member.received()
  member.chain = member.chain.then(() => new Promise<void>((handed) => {
    member.answeredAll = handleMessage(member, command, handed).catch((error) => {
      chatLogger.error('[nuxt-chat] message handling failed', error)
    }).finally(() => {
      member.answered()
      handed()
    })
  }))
}

/** The connection closed: out of the heartbeat, its address's count and its room. */
function endMember(member: WebSocketMember) {
  heartbeatSlices?.delete(member, member.slice)
  member.release()
  if (member.watching) useChatHub().unwatchRooms(member)
  else useChatHub().leave(member.room, member)
}

/** A chat socket served directly (Nitro 2, a `ChatSocket`): `this` in its listeners, its member in `member`. Shared listeners, no closure per connection. */
interface ServedSocket {
  member: WebSocketMember
  on: ((event: 'message', listener: (this: ServedSocket, data: Buffer, isBinary: boolean) => void) => void)
    & ((event: 'pong' | 'close', listener: (this: ServedSocket) => void) => void)
    & ((event: 'error', listener: (this: ServedSocket, error: Error) => void) => void)
}

function onSocketMessage(this: ServedSocket, data: Buffer, isBinary: boolean) {
  receive(this.member, isBinary ? undefined : data.toString())
}
function onSocketPong(this: ServedSocket) {
  this.member.alive = true
}
function onSocketClose(this: ServedSocket) {
  endMember(this.member)
}
function onSocketError(this: ServedSocket, error: Error) {
  chatLogger.debug('[nuxt-chat] socket error', error)
}

// Nitro 2: admitted upgrades are served on their `ws` socket, without a crossws Peer (../utils/wsServer.ts).
serveChatSockets((socket, context, remoteAddress) => {
  const served = socket as unknown as ServedSocket
  // First: a socket closed at once (over its address's cap) may still report an error.
  served.on('error', onSocketError)
  const member = startMember(context, undefined, socket as unknown as RawWebSocket, remoteAddress)
  if (!member) return true
  transportStats.leanConnections++
  served.member = member
  served.on('message', onSocketMessage)
  served.on('pong', onSocketPong)
  served.on('close', onSocketClose)
  return true
})

/** The chat's crossws hooks; ./wsEndpoint.ts mounts them on the route the way the app's Nitro wants. */
export default {
  async upgrade(request) {
    const config = useRuntimeConfig().chat as ChatRuntimeConfig
    try {
      const socket = upgradeSocket(request)
      const admission = await admitToChat(request.url, request.headers, socket)
      let release: (() => void) | undefined
      if (admission.ip || !config.maxConnectionsPerIp) {
        release = holdConnection(admission.ip, config.maxConnectionsPerIp)
        if (!release) throw new ChatRefusal(429, 'Too many connections from this address')
        // Also released when the TCP socket closes: a handshake that fails after this hook (or a client gone meanwhile) never reaches `close`.
        if (config.maxConnectionsPerIp && socket?.destroyed) release()
        else if (config.maxConnectionsPerIp) socket?.once('close', release)
      }
      const chatAdmission = { admission, release } satisfies Admitted
      // crossws 0.3 keeps `request.context` for the peer; 0.4 merges the `context` the hook returns.
      const context = (request as unknown as { context?: Record<string, unknown> }).context
      if (context) context.chatAdmission = chatAdmission
      // (h3 1 types the hook's result as `ResponseInit`, which crossws 0.3 reads only for `headers`.)
      return { context: { chatAdmission } } as ResponseInit
    }
    catch (error) {
      if (error instanceof ChatRefusal) throw refuseUpgrade(error.status, error.message)
      chatLogger.error('[nuxt-chat] upgrade failed', error)
      throw refuseUpgrade(500, 'Internal error')
    }
  },

  open(peer) {
    const context = peer.context as { chatAdmission?: Admitted, chat?: WebSocketMember }
    releaseUpgradeRequest(peer)
    const ws = rawWebSocket(peer)
    const member = startMember(context, peer, ws, peer.remoteAddress)
    if (!member) return
    watchSocket(ws, member)
    context.chat = member
  },

  message(peer, message) {
    const member = memberOf(peer)
    if (member) receive(member, nextFrameIsBinary(member) ? undefined : message.text())
  },

  close(peer) {
    const member = memberOf(peer)
    if (member) endMember(member)
  },

  error(peer, error) {
    chatLogger.debug('[nuxt-chat] socket error', error)
  },
} satisfies Partial<Hooks>
