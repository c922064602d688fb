// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { Socket } from 'node:net'
import type { Hooks, Peer } from 'crossws'
import { serveChatSockets, transportOfPeer, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, isMemberCommand, parseClientFrame, PONG_FRAME, type ChatClientCommand, type ChatErrorFrame, type ChatMemberCommand } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal, refusalCode, type ChatAdmission } from '../utils/access'
import { ChatLimitRefusal, limitRefusalFrame, limitSubjectOf, type LimitRefusal } from '../utils/chatLimits'
import { ConnectionHold, holdConnection } from '../utils/connectionCaps'
import { headersArrived } from '../utils/incomingSockets'
import { admitToChat, retryAfterSeconds } from '../utils/httpAdmission'
import { deliverToMember } from '../utils/roomDelivery'
import { RoomFrame } from '../transport/frame'
import { chatLogger, useChatHub } from '../utils/useChatHub'
import { answerStop } from '../utils/streamStop'
import { sendFieldsOf } from '../utils/sendPipeline'
import type { ChatSocketHandlers, ChatTransport } from '../transport/chatTransport'
import { upgradeRefusal, upgradeSocket, type UpgradeSocket } from '../transport/internals'
import type { PeerTransport } from '../transport/peerTransport'
import { addToHeartbeat, handleInOrder, removeFromHeartbeat, WebSocketMember } from '../utils/wsMember'
import { commandOf, greetConnection, handleRoomMessage, MultiRoomMember } from '../utils/wsRooms'
import { PROTOCOL_V2 } from '../../shared/protocolV2'

/** The per-address key of connections whose client address crossws does not show. */
const UNKNOWN_ADDRESS = 'unknown'
// A sender who keeps hammering after being told to slow down is closed (1008).
const ABUSE_LIMIT = 50
// Refusals that hold every later message with a cid on the connection (docs/PROTOCOL.md, "Acknowledgements and order").
const HOLDING_CODES: ReadonlySet<ChatErrorFrame['code']> = new Set(['rate_limited', 'unavailable'])
// One pong for everyone: a flood of pings queues references to the same bytes.
const PONG = new RoomFrame(JSON.stringify(PONG_FRAME))
// Likewise for blank raw text, the cheapest frame to flood with: answered at once, from shared bytes.
const EMPTY = new RoomFrame(JSON.stringify(errorFrame('empty', 'Message is empty')))

type ChatMessageCommand = Extract<ChatClientCommand, { type: 'message' | 'edit' | 'delete' | 'reaction' }>

/** The transport a crossws Peer got at `open` (its `member` is the chat's connection, when admitted). */
function transportOf(peer: Peer): PeerTransport<WebSocketMember> | undefined {
  return (peer.context as { chat?: PeerTransport<WebSocketMember> }).chat
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
      answerHistory(member, command.before, command.limit, command.thread)
      return
    case 'stop':
      // Answered only when refused: the stream's end reaches everyone as its final `edit`.
      void answerStop(member.room, command.id, member.user, limitSubjectOf(member)).then(error => error && member.send(error))
      return
    case 'invalid':
      member.send(errorFrame('bad_request', command.reason, command.cid))
      return
  }
  if (isMemberCommand(command)) {
    answerModeration(member, command)
    return
  }
  if (command.type === 'message' && command.cid === undefined && !command.message.trim()) {
    member.write(EMPTY)
    return
  }
  return command
}

/** Run a moderation command in the member's room (docs/PROTOCOL.md, "Moderation commands"): the `member` frame, or the refusal. */
function answerModeration(member: WebSocketMember, command: ChatMemberCommand) {
  useChatHub().moderate(member.room, command, member.user, limitSubjectOf(member)).then(
    result => member.send('frame' in result ? result.frame : result.error),
    (error) => {
      chatLogger.error('[nuxt-chat] a moderation command failed', error)
      member.send(errorFrame('unavailable', 'The change could not be made; try again'))
    },
  )
}

/** Answer a page of older history; one request at a time per connection (a store read each). */
function answerHistory(member: WebSocketMember, before: number, limit: number, thread?: number) {
  const rare = member.rare()
  if (rare.readingHistory) {
    member.send(errorFrame('bad_request', 'One history request at a time'))
    return
  }
  rare.readingHistory = true
  useChatHub().limitedHistoryPage(limitSubjectOf(member), member.room, before, limit, thread).then(
    page => 'refused' in page ? member.send(limitRefusalFrame(page.refused)) : member.write(new RoomFrame(page.text)),
    (error) => {
      chatLogger.error('[nuxt-chat] could not read history', error)
      member.send(errorFrame('unavailable', 'History is unavailable right now'))
    },
  ).finally(() => {
    rare.readingHistory = false
  })
}

/**
 * Move the member's user's read position (docs/PROTOCOL.md, "Read state"): the `read` frame
 * reaches all their connections in the room (and rooms lists), so only refusals are answered here;
 * reads arriving while one is stored are folded into one (see `readFrom`).
 */
function answerRead(member: WebSocketMember, id: number | undefined, room: string | undefined) {
  // A guest's reads are refused without a store read, so never folded: counted here (signed-in ones as they reach the store).
  const refused = member.user.guest ? useChatHub().readRefusal(limitSubjectOf(member)) : undefined
  if (refused) {
    member.send(limitRefusalFrame(refused))
    return
  }
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
  const rare = member.rare()
  if (rare.refusal && cid) {
    if (cid !== rare.refusal.cid) {
      // The held refusal's limit, scope and wait too: the client learns why it is held.
      member.send({ ...rare.refusal, message: `Held: resend "${rare.refusal.cid}" first`, cid })
      return
    }
    rare.refusal = undefined
  }
  const { message, action, replyTo, thread, alsoInRoom, files } = sendFieldsOf(command)
  if (action) await rare.answeredAll
  const result = await hub.send({ room: member.room, user: member.user, sender: member.sender, ip: member.ip, message, cid, action, replyTo, thread, alsoInRoom, files, member, onQueued })
  if (result.error) {
    member.send(result.error)
    if (cid && HOLDING_CODES.has(result.error.code)) rare.refusal = result.error
    if (result.error.code === 'rate_limited' && ++rare.strikes >= ABUSE_LIMIT) member.close(1008, 'Rate limit exceeded')
    return
  }
  rare.strikes = 0
  // A repeated cid is not broadcast again: only the sender gets the stored frame back (after its replay).
  // No id on this RoomFrame: the replay filter must not swallow the acknowledgement.
  if (result.duplicate) deliverToMember(member, new RoomFrame(JSON.stringify({ ...result.frame, duplicate: true })))
}

/**
 * Does the upgrade ask for protocol version 2? Its first offered subprotocol is `nuxt-chat.2`, the one the
 * server answers (see `upgrade`), so the client is told the version it gets.
 */
function offersVersion2(headers: Headers): boolean {
  const offered = headers.get('sec-websocket-protocol')
  return offered !== null && offered.split(',', 1)[0]!.trim() === PROTOCOL_V2
}

/** Admission of an upgrade, kept on the request's context until `open`. */
interface Admitted {
  admission: ChatAdmission
  /** The per-address slot; `undefined` when the address was unknown at upgrade time (counted at `open`). */
  hold: ConnectionHold | undefined
  /** Until the connection opens, the TCP socket's `close` also releases the slot, with this listener. */
  socket?: UpgradeSocket
  onSocketClose?: () => void
}

/** Answer a refused upgrade with an `error` frame, as the HTTP routes do. */
function refuseUpgrade(status: number, message: string): Response {
  return upgradeRefusalOf(status, errorFrame(refusalCode(status), message))
}

/** Answer an upgrade a limit refused: `429` with the `rate_limited` frame naming the limit and scope. */
function refuseLimitedUpgrade(refusal: LimitRefusal): Response {
  return upgradeRefusalOf(429, limitRefusalFrame(refusal))
}

function upgradeRefusalOf(status: number, frame: ChatErrorFrame): Response {
  const retryAfter = frame.retryAfter ?? retryAfterSeconds(status)
  return upgradeRefusal(status, JSON.stringify(frame), {
    'content-type': 'application/json',
    ...(retryAfter ? { 'retry-after': String(retryAfter) } : {}),
  })
}

/**
 * Take an admitted connection into the chat (its room, or its rooms list). `undefined` when it was
 * not admitted or is over its address's cap: closed then.
 */
function startMember(socket: ChatTransport, context: { chatAdmission?: Admitted }, remoteAddress: string | undefined): WebSocketMember | undefined {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  const admitted = context.chatAdmission
  if (!admitted) {
    socket.closeWith(1011, 'Not admitted')
    return
  }
  delete context.chatAdmission
  // Open: its `close` releases the slot from now on, so the TCP socket's listener (a closure and an event entry each) goes.
  if (admitted.socket && admitted.onSocketClose) admitted.socket.removeListener?.('close', admitted.onSocketClose)
  // The address was not visible at upgrade time: count the connection now, never skip the cap
  // (connections whose address nobody knows share one count; ../transport/internals.ts logged why, once).
  const hold = admitted.hold ?? holdConnection(limitSubjectOf({ ...admitted.admission, ip: remoteAddress || UNKNOWN_ADDRESS }), config)
  if (!(hold instanceof ConnectionHold)) {
    socket.closeWith(1008, limitRefusalFrame(hold).message)
    return
  }
  const { admission } = admitted
  if (admission.version === 2) {
    // Version 2: the person is in; rooms come with `join` commands.
    const connection = new MultiRoomMember(socket, admission.user, admission.ip ?? remoteAddress, hold, config.maxBufferedBytes, admission.data)
    addToHeartbeat(connection, config.heartbeat.interval)
    greetConnection(connection, config, admission.nameRefused)
    return connection
  }
  const member = new WebSocketMember(socket, admission.user, admission.ip ?? remoteAddress, admission.room, hold, config.maxBufferedBytes)
  if (admission.deltas) member.rare().takesDeltas = true
  addToHeartbeat(member, config.heartbeat.interval)
  if (admission.rooms) {
    member.request = admission.request
    member.data = admission.data
    useChatHub().watchRooms(member, limitSubjectOf(member)).catch((error) => {
      chatLogger.error('[nuxt-chat] could not read a rooms list', error)
      member.send(errorFrame('unavailable', 'Your rooms could not be read; reconnect later'))
      // Not left open with no list: closed, the client's backoff tries again.
      useChatHub().unwatchRooms(member)
      member.close(1011, 'Rooms list unavailable')
    })
    return member
  }
  useChatHub().join(admission.room, member, admission.since, admission.nameRefused, admission.createsReadPosition, admission.admittedAt).catch(error => chatLogger.error('[nuxt-chat] join failed', error))
  return member
}

/** One data frame read (`undefined`: a binary one). */
function receive(member: WebSocketMember, text: string | undefined) {
  member.alive = true
  // Commands are answered at once; a connection's messages are checked one after another and handed to the store in the
  // order sent (it stores them in that order); the next starts once this one is handed over.
  let handle: (handed: () => void) => Promise<void>
  try {
    if (member instanceof MultiRoomMember) {
      const send = commandOf(member, text)
      if (!send) return
      handle = handed => handleRoomMessage(member, send.subscription, send.command, handed)
    }
    else {
      const command = handleCommand(member, text)
      if (!command) return
      handle = handed => handleMessage(member, command, handed)
    }
  }
  catch (error) {
    // A frame this code failed on (a bug) is answered and logged; it never reaches the process's uncaught handler.
    chatLogger.error('[nuxt-chat] a frame could not be handled', error)
    member.send(errorFrame('bad_request', 'This frame could not be handled'))
    return
  }
  void handleInOrder(member, handle)
}

/** The connection closed: out of the heartbeat, its address's count and its room. */
function endMember(member: WebSocketMember) {
  removeFromHeartbeat(member)
  member.hold.release()
  if (member instanceof MultiRoomMember) member.endAll()
  else if (member.watching) useChatHub().unwatchRooms(member)
  else useChatHub().leave(member.room, member)
}

/** The chat's one set of socket handlers, on every platform: the lean `ws` path calls them directly, crossws's hooks below through a Peer's transport. */
const chatSocketHandlers: ChatSocketHandlers<WebSocketMember> = {
  open: startMember,
  message: receive,
  pong(member) {
    member.alive = true
  },
  close: endMember,
  error(error) {
    chatLogger.debug('[nuxt-chat] socket error', error)
  },
}

// Nitro 2: admitted upgrades are served on their `ws` socket, without a crossws Peer or listeners (../transport/leanServer.ts).
serveChatSockets(chatSocketHandlers)

/** The chat's crossws hooks; ./wsEndpoint.ts mounts them on the route the way the app's Nitro wants. */
export default {
  async upgrade(request) {
    const config = useRuntimeConfig().chat as ChatRuntimeConfig
    try {
      const socket = upgradeSocket(request)
      // Its headers are here, whoever listens to the server's upgrades.
      if (socket) headersArrived(socket as unknown as Socket)
      // A version 1 upgrade joins its room: metered (with its replay's byte budget) in the admission, before `chat:join`; version 2 per join.
      const admission = await admitToChat(request.url, request.headers, socket, offersVersion2(request.headers) ? 2 : undefined, true)
      // A rooms list's first list is history served: refused while the byte budget is spent.
      const spent = admission.rooms ? useChatHub().replayRefusal(limitSubjectOf(admission)) : undefined
      if (spent) throw new ChatLimitRefusal(spent)
      const chatAdmission: Admitted = { admission, hold: undefined }
      if (admission.ip || !config.maxConnectionsPerIp) {
        const hold = holdConnection(limitSubjectOf(admission), config)
        if (!(hold instanceof ConnectionHold)) throw new ChatLimitRefusal(hold)
        chatAdmission.hold = hold
        // Also released when the TCP socket closes: a handshake that fails after this hook (or a client gone meanwhile) never reaches `close`.
        if (socket?.destroyed) hold.release()
        else if (socket) {
          chatAdmission.socket = socket
          chatAdmission.onSocketClose = () => hold.release()
          socket.once('close', chatAdmission.onSocketClose)
        }
      }
      // crossws 0.3 keeps `request.context` for the peer; 0.4 merges the `context` the hook returns.
      const context = (request as unknown as { context?: Record<string, unknown> }).context
      if (context) context.chatAdmission = chatAdmission
      // (h3 1 types the hook's result as `ResponseInit`, which crossws 0.3 reads only for `headers`.) Version 2's subprotocol:
      // crossws 0.4 answers the one the hook names (its `ws` chooses none); under 0.3, `ws` answers the first offered.
      return { context: { chatAdmission }, ...(admission.version === 2 && { protocol: PROTOCOL_V2 }) } as ResponseInit
    }
    catch (error) {
      if (error instanceof ChatLimitRefusal) throw refuseLimitedUpgrade(error.refusal)
      if (error instanceof ChatRefusal) throw refuseUpgrade(error.status, error.message)
      chatLogger.error('[nuxt-chat] upgrade failed', error)
      throw refuseUpgrade(500, 'Internal error')
    }
  },

  open(peer) {
    const transport = transportOfPeer<WebSocketMember>(peer, (useRuntimeConfig().chat as ChatRuntimeConfig).maxPayload)
    const context = peer.context as { chatAdmission?: Admitted, chat?: PeerTransport<WebSocketMember> }
    context.chat = transport
    transport.member = chatSocketHandlers.open(transport, context, peer.remoteAddress)
  },

  message(peer, message) {
    const transport = transportOf(peer)
    if (transport?.member) chatSocketHandlers.message(transport.member, transport.nextFrameIsBinary() ? undefined : message.text())
  },

  close(peer) {
    const member = transportOf(peer)?.member
    if (member) chatSocketHandlers.close(member)
  },

  error(_peer, error) {
    chatSocketHandlers.error(error)
  },
} satisfies Partial<Hooks>
