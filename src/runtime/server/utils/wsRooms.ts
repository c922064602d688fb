// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
/**
 * Protocol version 2 on a WebSocket (docs/PROTOCOL.md, "Version 2"): one connection, many rooms.
 * The connection is admitted once (a `WebSocketMember`: one slot, one heartbeat); each room it
 * joins is a `RoomSubscription`, the `Member` the hub's rooms hold, joined through the same
 * `hub.join` a version 1 connection takes.
 */
import { useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, isMemberCommand, PONG_FRAME, type ChatErrorFrame, type ChatMemberCommand, type ChatUser } from '../../shared/protocol'
import { parseClientFrameV2, type ChatAckFrame, type ChatMembersFrame, type ChatCaughtUpFrame, type ChatClientCommandV2, type ChatHelloFrame, type ChatJoinedFrame, type ChatJoinRefusalCode, type ChatJoinRefusedFrame, type ChatLeftFrame } from '../../shared/protocolV2'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal, identifiedIdProblem, refusalCode, type ChatAdmission } from './access'
import { ChatLimitRefusal, limitRefusalFrame, limitSubjectOf, type LimitRefusal } from './chatLimits'
import type { ConnectionHold } from './connectionCaps'
import { checkGuestName } from './names'
import { BANNED_REASON, MEMBERSHIP_ENDED } from './hub'
import { directRoomId } from './roomMembers'
import { deliverToMember, type Member, type Membership } from './roomDelivery'
import { RoomFrame } from '../transport/frame'
import { sendFieldsOf } from './sendPipeline'
import { chatLogger, useChatHub } from './useChatHub'
import { answerStop } from './streamStop'
import type { ChatTransport } from '../transport/chatTransport'
import { WebSocketMember } from './wsMember'

// A sender who keeps hammering after being told to slow down is closed (1008), as on version 1.
const ABUSE_LIMIT = 50
// Refusals that hold later messages with a cid, per room (docs/PROTOCOL.md, "Acknowledgements and order").
const HOLDING_CODES: ReadonlySet<ChatErrorFrame['code']> = new Set(['rate_limited', 'unavailable'])
const PONG = new RoomFrame(JSON.stringify(PONG_FRAME))
const NO_ROOMS: readonly RoomSubscription[] = Object.freeze([])

type SendCommandV2 = Extract<ChatClientCommandV2, { type: 'message' | 'edit' | 'delete' | 'reaction' }>

/** What only some subscriptions hold, and only for a while: one slot on each subscription instead of three. */
class SubscriptionRareState {
  // Set in the constructor: in-object slots.
  declare ref: string | undefined
  declare typingAt: number | undefined
  declare refusal: ChatErrorFrame | undefined

  constructor(ref: string | undefined) {
    this.ref = ref
    this.typingAt = undefined
    this.refusal = undefined
  }
}

/** One room of a version 2 connection: what the hub's room holds, writing through the connection. */
export class RoomSubscription implements Member {
  declare readonly connection: MultiRoomMember
  declare readonly room: string
  declare heldDuringReplay: RoomFrame[] | null
  declare replayedTo: number
  /** Left, refused or disconnected: nothing more is written for it. */
  declare ended: boolean
  /** Its join is being admitted: it holds the room's place, and nothing of the room is reached through it but `leave`. */
  declare joining: boolean
  /** Its join's ref, last typing and held refusal, made when one is set (three rooms of 10,000 connections: 720 KB less). */
  declare private rareState: SubscriptionRareState | undefined

  constructor(connection: MultiRoomMember, room: string, ref: string | undefined) {
    this.connection = connection
    this.room = room
    this.heldDuringReplay = null
    this.replayedTo = 0
    this.ended = false
    this.joining = true
    this.rareState = ref ? new SubscriptionRareState(ref) : undefined
  }

  /** The `join` command's ref, echoed in `joined`, `caught_up` and `join_refused`; dropped once caught up. */
  get ref(): string | undefined {
    return this.rareState?.ref
  }

  /** Caught up: its ref is not kept (nor the rare state, when that was all it held). */
  caughtUp() {
    const rare = this.rareState
    if (!rare) return
    if (rare.typingAt === undefined && rare.refusal === undefined) this.rareState = undefined
    else rare.ref = undefined
  }

  /** Last typing broadcast (the hub's throttle). */
  get typingAt(): number | undefined {
    return this.rareState?.typingAt
  }

  set typingAt(at: number | undefined) {
    if (at !== undefined || this.rareState) (this.rareState ??= new SubscriptionRareState(undefined)).typingAt = at
  }

  /** A message refused for now in this room: later ones with a cid are refused alike until it comes again. */
  get refusal(): ChatErrorFrame | undefined {
    return this.rareState?.refusal
  }

  set refusal(refusal: ChatErrorFrame | undefined) {
    if (refusal !== undefined || this.rareState) (this.rareState ??= new SubscriptionRareState(undefined)).refusal = refusal
  }

  get user(): ChatUser {
    return this.connection.user
  }

  get sender(): string {
    return this.connection.user.id
  }

  get ip(): string | undefined {
    return this.connection.ip
  }

  write(frame: RoomFrame) {
    if (!this.ended) this.connection.write(frame)
  }

  holdOutput(): boolean {
    return !this.ended && this.connection.holdOutput()
  }

  releaseOutput() {
    this.connection.releaseOutput()
  }

  /** Version 2 is told who has read what in small rooms. */
  get seesReads(): boolean {
    return true
  }

  /** Version 2 knows `delta` frames. */
  get takesDeltas(): boolean {
    return true
  }

  /** Version 2 opens a join with `joined`, not the seed's welcome. */
  greeting(room: string, membership: Membership): RoomFrame {
    const frame: ChatJoinedFrame = { type: 'joined', room, me: this.user, ...membership }
    if (this.ref) frame.ref = this.ref
    return new RoomFrame(JSON.stringify(frame))
  }

  /** The app disconnected the user from this room (`useChatServer().disconnect`), or their membership ended: this room ends, the connection stays. */
  close(code?: number, reason?: string) {
    this.connection.end(this, code !== MEMBERSHIP_ENDED ? 'disconnected' : reason === BANNED_REASON ? 'banned' : 'removed')
  }
}

/** A version 2 connection: the person admitted once, and the rooms it follows. */
export class MultiRoomMember extends WebSocketMember {
  /**
   * Its rooms, in join order: an array of exactly their number, replaced on each join and leave (a few rooms
   * per connection: a scan costs less than a map's table each, and a growing array's spare slots).
   */
  declare private rooms: readonly RoomSubscription[]
  /** It follows the user's rooms list (the `rooms` command). */
  declare listing: boolean
  constructor(socket: ChatTransport, user: ChatUser, ip: string | undefined, hold: ConnectionHold, maxBufferedBytes: number, data?: Record<string, unknown>) {
    super(socket, user, ip, '', hold, maxBufferedBytes)
    this.rooms = NO_ROOMS
    this.listing = false
    // What `chat:identify` set as `ctx.data`, given to each room's `chat:join` (kept in the rare state: most apps set none).
    this.data = data
  }

  /** In no room itself; a rooms list only after the `rooms` command. */
  override get watching(): boolean {
    return this.listing
  }

  /** Its subscription of `room` (under way or joined), if any. */
  subscriptionOf(room: string): RoomSubscription | undefined {
    for (const subscription of this.rooms) if (subscription.room === room) return subscription
    return undefined
  }

  /** How many rooms it follows or is joining. */
  get roomCount(): number {
    return this.rooms.length
  }

  /** Taken when its join starts, so joins under way count against the bound. */
  subscribe(subscription: RoomSubscription) {
    // `concat` and `slice` allocate the exact length: a spread or push would leave a dozen spare slots with every connection.
    this.rooms = this.rooms.concat(subscription)
  }

  /** Forget `subscription` (left, refused or ended). */
  unsubscribe(subscription: RoomSubscription) {
    const rooms = this.rooms
    const at = rooms.indexOf(subscription)
    if (at < 0) return
    this.rooms = rooms.length === 1 ? NO_ROOMS : rooms.slice(0, at).concat(rooms.slice(at + 1))
  }

  /** End one room's subscription (left, or disconnected by the app) and tell the client. */
  end(subscription: RoomSubscription, reason: ChatLeftFrame['reason'], ref?: string) {
    if (subscription.ended || this.subscriptionOf(subscription.room) !== subscription) return
    subscription.ended = true
    this.unsubscribe(subscription)
    useChatHub().leave(subscription.room, subscription)
    const left: ChatLeftFrame = { type: 'left', room: subscription.room, reason }
    if (ref) left.ref = ref
    this.send(left)
  }

  /** The connection closed: out of every room and the rooms list. */
  endAll() {
    const hub = useChatHub()
    const rooms = this.rooms
    this.rooms = NO_ROOMS
    for (const subscription of rooms) {
      subscription.ended = true
      hub.leave(subscription.room, subscription)
    }
    if (this.listing) hub.unwatchRooms(this)
  }
}

/** The first frame of a version 2 connection (and why its name wish was refused, if it was); an SSE stream's names its id. */
export function greetConnection(connection: MultiRoomMember, config: ChatRuntimeConfig, nameRefused: string | undefined, stream?: string) {
  const hello: ChatHelloFrame = { type: 'hello', version: 2, me: connection.user, limits: { maxLength: config.maxLength, maxRooms: config.maxRoomsPerConnection } }
  if (stream) hello.stream = stream
  connection.send(hello)
  if (nameRefused) connection.send(errorFrame('name_refused', nameRefused))
}

/** An error frame naming the room and echoing the ref, when known. */
function errorOf(frame: ChatErrorFrame, room?: string, ref?: string): ChatErrorFrame & { room?: string, ref?: string } {
  return { ...frame, ...(room ? { room } : {}), ...(ref ? { ref } : {}) }
}

/**
 * Answer one version 2 frame (`undefined`: a binary one) at once, or return the send command to
 * queue (messages are checked and stored one after another, as on version 1).
 */
export function commandOf(connection: MultiRoomMember, text: string | undefined): { command: SendCommandV2, subscription: RoomSubscription } | undefined {
  if (text === undefined) {
    connection.send(errorFrame('bad_request', 'Binary frames are not accepted; send text'))
    return
  }
  const command = parseClientFrameV2(text)
  switch (command.type) {
    case 'invalid':
      connection.send(errorOf(errorFrame('bad_request', command.reason, command.cid), command.room, command.ref))
      return
    case 'ping':
      if (command.ref) connection.send({ ...PONG_FRAME, ref: command.ref })
      else connection.write(PONG)
      return
    case 'join':
      void join(connection, command.room, command.since, command.ref)
      return
    case 'rooms':
      watchRooms(connection, command.ref)
      return
    case 'read':
      answerRead(connection, command.room, command.id, command.ref)
      return
    case 'create':
      void createAndJoin(connection, command)
      return
    case 'dm':
      openDirect(connection, command.user, command.ref)
      return
    case 'update':
      answerUpdate(connection, command)
      return
    case 'search':
      answerSearch(connection, command)
      return
  }
  if (isMemberCommand(command)) {
    answerModeration(connection, command)
    return
  }
  const subscription = connection.subscriptionOf(command.room)
  if (!subscription || (subscription.joining && command.type !== 'leave')) {
    connection.send(errorOf(errorFrame('not_found', `Not in room "${command.room}": join it first`, 'cid' in command ? command.cid : undefined), command.room, command.ref))
    return
  }
  switch (command.type) {
    case 'leave':
      connection.end(subscription, 'left', command.ref)
      return
    case 'typing':
      useChatHub().typing(command.room, subscription)
      if (command.ref) acknowledge(subscription, command.ref)
      return
    case 'history':
      answerHistory(connection, command.room, command.before, command.limit, command.ref, command.thread)
      return
    case 'members':
      answerMembers(connection, command.room, command.ref)
      return
    case 'stop':
      void answerStop(command.room, command.id, subscription.user, limitSubjectOf(connection)).then((error) => {
        if (error) connection.send(errorOf(error, command.room, command.ref))
        else if (command.ref) acknowledge(subscription, command.ref, command.id)
      })
      return
  }
  if (command.type === 'message' && command.cid === undefined && !command.message.trim()) {
    connection.send(errorOf(errorFrame('empty', 'Message is empty'), command.room, command.ref))
    return
  }
  return { command, subscription }
}

/** A joined room's members by name (for `@` completion): a store read, counted as a history page. */
function answerMembers(connection: MultiRoomMember, room: string, ref: string | undefined) {
  useChatHub().limitedMemberNames(limitSubjectOf(connection), room).then(
    (answer) => {
      if ('refused' in answer) return connection.send(errorOf(limitRefusalFrame(answer.refused), room, ref))
      const frame: ChatMembersFrame = { type: 'members', room, members: answer.members }
      if (ref) frame.ref = ref
      connection.send(frame)
    },
    (error) => {
      chatLogger.error('[nuxt-chat] could not read a room\'s members', error)
      connection.send(errorOf(errorFrame('unavailable', 'The members could not be read; try again'), room, ref))
    },
  )
}

/** `ack` in the room's order (after the frames the hub wrote for the command). */
function acknowledge(subscription: RoomSubscription, ref: string, id?: number) {
  const ack: ChatAckFrame = { type: 'ack', ref, room: subscription.room }
  if (id !== undefined) ack.id = id
  deliverToMember(subscription, new RoomFrame(JSON.stringify(ack)))
}

/** `join_refused` for that room only; a limit's refusal (`limited`) says which count refused and when to retry, as `rate_limited` does everywhere. */
function refuseJoin(connection: MultiRoomMember, room: string, ref: string | undefined, code: ChatJoinRefusalCode, message: string, limited?: LimitRefusal) {
  const frame: ChatJoinRefusedFrame = { type: 'join_refused', room, code, message }
  if (limited) Object.assign(frame, { scope: limited.scope, limit: limited.limit, retryAfter: limited.retryAfter })
  if (ref) frame.ref = ref
  connection.send(frame)
}

/** A join a limit refused: `join_refused` `rate_limited`, with the refusal's fields. */
function refuseLimitedJoin(connection: MultiRoomMember, room: string, ref: string | undefined, refusal: LimitRefusal) {
  refuseJoin(connection, room, ref, 'rate_limited', limitRefusalFrame(refusal).message, refusal)
}

/**
 * Join a room: the room's admission for this person (the app's `chat:identify` with the room, as
 * a version 1 upgrade asks it; a guest's name against the room's signed-in names), then the
 * hub's join (where per-room policies apply): `joined`, presence, read state, replay, `caught_up`.
 * `made`: the room a `create` just made, whose `rooms` token paid for its join.
 */
async function join(connection: MultiRoomMember, room: string, since: number | undefined, ref: string | undefined, directWith?: string, made = false) {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  // Refused for free: a room the connection follows already costs no token.
  if (connection.subscriptionOf(room)) return refuseJoin(connection, room, ref, 'bad_request', `Already in room "${room}"`)
  if (connection.roomCount >= config.maxRoomsPerConnection) {
    return refuseJoin(connection, room, ref, 'too_many_rooms', `At most ${config.maxRoomsPerConnection} rooms per connection: leave one first`)
  }
  const hub = useChatHub()
  // A token of `joins` (and room in the byte budget for the replay), before any hook, store write or presence: churning joins is refused here.
  const spent = made ? hub.replayRefusal(limitSubjectOf(connection)) : hub.joinRefusal(limitSubjectOf(connection))
  if (spent) return refuseLimitedJoin(connection, room, ref, spent)
  // Taken now, so joins under way count against the bound and a second join of the room is refused.
  // The room's name as the hub already holds it: one string per room, not one per connection that joins it.
  const subscription = new RoomSubscription(connection, hub.roomName(room), ref)
  connection.subscribe(subscription)
  const refuse = (code: ChatJoinRefusalCode, message: string, limited?: LimitRefusal) => {
    if (connection.subscriptionOf(room) === subscription) connection.unsubscribe(subscription)
    subscription.ended = true
    refuseJoin(connection, room, ref, code, message, limited)
  }
  // Its `admittedAt` (set by the admission): a removal, ban or disconnect of the person before the join ends ends it too.
  const admission: ChatAdmission = { room, user: connection.user, sender: connection.sender, ip: connection.ip, createsReadPosition: false, ...(connection.data && { data: connection.data }), ...(directWith === undefined ? {} : { directWith }) }
  try {
    const refusal = await roomRefusal(connection, admission, config)
    // Left (or closed) while the app was asked.
    if (subscription.ended || connection.subscriptionOf(room) !== subscription) return
    if (refusal) return refuse(refusal.code, refusal.message, refusal.limited)
    subscription.joining = false
    await hub.join(subscription.room, subscription, since, undefined, true, admission.admittedAt)
    // Echoed in `joined` already, and in `caught_up` below: not kept with every room of every connection.
    subscription.caughtUp()
    if (subscription.ended) return
    const seen = await hub.seenFrame(room)
    if (seen) subscription.write(seen)
    if (subscription.ended) return
    const caughtUp: ChatCaughtUpFrame = { type: 'caught_up', room }
    if (ref) caughtUp.ref = ref
    connection.send(caughtUp)
  }
  catch (error) {
    if (error instanceof ChatRefusal) {
      if (!subscription.ended) hub.leave(room, subscription)
      return refuse(refusalCode(error.status), error.message)
    }
    chatLogger.error('[nuxt-chat] join failed', error)
    if (!subscription.ended) hub.leave(room, subscription)
    refuse('unavailable', 'The room could not be joined; try again')
  }
}

/** Why this connection's person may not join `room`, if they may not. */
async function roomRefusal(connection: MultiRoomMember, admission: ChatAdmission, config: ChatRuntimeConfig): Promise<{ code: ChatJoinRefusalCode, message: string, limited?: LimitRefusal } | undefined> {
  const { room } = admission
  try {
    // The app's `chat:join` hook, then the room's own admission (members, bans, private rooms; docs/PROTOCOL.md, "Admission"), as for a version 1 upgrade.
    await useChatHub().admitToRoom(admission)
  }
  catch (error) {
    if (!(error instanceof ChatRefusal)) throw error
    // A direct room the `rooms` limit would not make: when to retry, as for a join's own limit.
    return { code: refusalCode(error.status), message: error.message, ...(error instanceof ChatLimitRefusal && { limited: error.refusal }) }
  }
  if (connection.user.guest) {
    // After the admission: who is in a room the guest may not enter is none of their business.
    // The name passed the reserved names when the connection was admitted: a join compares it with the room's
    // signed-in names only, and a room with none needs none of the name's skeletons (~20 µs a join).
    const signedIn = await useChatHub().signedInNames(room)
    const checked = signedIn.length ? checkGuestName(connection.user.name, config.reservedNames ?? [], signedIn) : undefined
    if (checked && 'refused' in checked) return { code: 'name_refused', message: checked.refused }
  }
  return undefined
}

type CreateCommand = Extract<ChatClientCommandV2, { type: 'create' }>
type ModerationCommand = Extract<ChatClientCommandV2, { type: ChatMemberCommand['type'] }>
type UpdateCommand = Extract<ChatClientCommandV2, { type: 'update' }>

/** `create`: a room the sender owns (a token of the `rooms` limit, its `members` invites), then joined as by `join`. */
async function createAndJoin(connection: MultiRoomMember, command: CreateCommand) {
  const { ref, title, topic, visibility, members } = command
  if (connection.user.guest) return connection.send(errorOf(errorFrame('unauthorized', 'Sign in to make a room: guests have none'), undefined, ref))
  const hub = useChatHub()
  const refused = hub.newRoomToken(limitSubjectOf(connection), new Set(members).size)
  if (refused) return connection.send(errorOf(limitRefusalFrame(refused), undefined, ref))
  let room: string
  try {
    room = (await hub.createRoom({ title, topic, visibility, owner: connection.user.id, members }, connection.user)).id
  }
  catch (error) {
    if (error instanceof ChatRefusal) return connection.send(errorOf(errorFrame(refusalCode(error.status), error.message), undefined, ref))
    chatLogger.error('[nuxt-chat] could not make a room', error)
    return connection.send(errorOf(errorFrame('unavailable', 'The room could not be made; try again'), undefined, ref))
  }
  await join(connection, room, undefined, ref, undefined, true)
}

/** `dm`: the direct room with `user`, made on first use by the admission (as `?dm=`), then joined. */
function openDirect(connection: MultiRoomMember, user: string, ref: string | undefined) {
  if (connection.user.guest) return connection.send(errorOf(errorFrame('unauthorized', 'Sign in to open a direct room: guests have none'), undefined, ref))
  // Nobody a direct room can be with (`server`, a guest, an id no membership holds): refused before the hook, nothing made.
  const problem = identifiedIdProblem(user)
  if (problem) return connection.send(errorOf(errorFrame('bad_request', `Invalid dm: ${problem}`), undefined, ref))
  if (user === connection.user.id) return connection.send(errorOf(errorFrame('bad_request', 'A direct room needs two different users'), undefined, ref))
  void join(connection, directRoomId(connection.user.id, user), undefined, ref, user)
}

/** A moderation command in a room (joined or not), through the same `hub.moderate` as version 1: `ack`, or the refusal. */
function answerModeration(connection: MultiRoomMember, command: ModerationCommand) {
  const { room, ref, ...memberCommand } = command
  useChatHub().moderate(room, memberCommand as ChatMemberCommand, connection.user, limitSubjectOf(connection)).then(
    (result) => {
      if (!('frame' in result)) connection.send(errorOf(result.error, room, ref))
      else if (ref) connection.send({ type: 'ack', ref, room } satisfies ChatAckFrame)
      else connection.send(result.frame)
    },
    (error) => {
      chatLogger.error('[nuxt-chat] a moderation command failed', error)
      connection.send(errorOf(errorFrame('unavailable', 'The change could not be made; try again'), room, ref))
    },
  )
}

/** `update`: a room's title, topic or visibility, by its owners (and moderators, not visibility). */
function answerUpdate(connection: MultiRoomMember, command: UpdateCommand) {
  const { room, ref, type: _type, ...fields } = command
  useChatHub().updateRoomAs(room, fields, connection.user, limitSubjectOf(connection)).then(
    (result) => {
      if ('error' in result) connection.send(errorOf(result.error, room, ref))
      else if (ref) connection.send({ type: 'ack', ref, room } satisfies ChatAckFrame)
    },
    (error) => {
      chatLogger.error('[nuxt-chat] an update command failed', error)
      connection.send(errorOf(errorFrame('unavailable', 'The change could not be made; try again'), room, ref))
    },
  )
}

/** Connections whose `rooms` command's first list is being read, with its ref: a later `rooms` replaces it. */
const listsBeingRead = new WeakMap<MultiRoomMember, { ref: string | undefined }>()

/** Follow the user's rooms list on this connection (signed-in users only). */
function watchRooms(connection: MultiRoomMember, ref: string | undefined) {
  if (connection.user.guest) return connection.send(errorOf(errorFrame('unauthorized', 'Sign in to follow your rooms: guests have no read state'), undefined, ref))
  const hub = useChatHub()
  const spent = hub.replayRefusal(limitSubjectOf(connection))
  if (spent) return connection.send(errorOf(limitRefusalFrame(spent), undefined, ref))
  // Asked again (a list closed and opened on the client): a fresh full list.
  if (connection.listing) hub.unwatchRooms(connection)
  // One still being read is never sent: its request is answered as replaced, before this one's list.
  const replaced = listsBeingRead.get(connection)
  if (replaced?.ref) connection.send({ type: 'ack', ref: replaced.ref, superseded: true } satisfies ChatAckFrame)
  const request = { ref }
  listsBeingRead.set(connection, request)
  connection.listing = true
  hub.watchRooms(connection, limitSubjectOf(connection), ref).then(
    () => listsBeingRead.get(connection) === request && listsBeingRead.delete(connection),
    (error) => {
      // Replaced meanwhile: answered already, and the list followed now is the later request's.
      if (listsBeingRead.get(connection) !== request) return
      listsBeingRead.delete(connection)
      chatLogger.error('[nuxt-chat] could not read a rooms list', error)
      hub.unwatchRooms(connection)
      connection.listing = false
      connection.send(errorOf(errorFrame('unavailable', 'Your rooms could not be read; try again later'), undefined, ref))
    },
  )
}

/** Move the read position in a joined room, or in a room of the rooms list (docs/PROTOCOL.md, "Read state"). */
function answerRead(connection: MultiRoomMember, room: string, id: number | undefined, ref: string | undefined) {
  const hub = useChatHub()
  const refused = connection.user.guest ? hub.readRefusal(limitSubjectOf(connection)) : undefined
  if (refused) return connection.send(errorOf(limitRefusalFrame(refused), room, ref))
  const joined = connection.subscriptionOf(room)
  const subscription = joined?.joining ? undefined : joined
  if (!subscription && !connection.listing) return connection.send(errorOf(errorFrame('not_found', `Not in room "${room}": join it first`), room, ref))
  const answer = subscription ? hub.readFrom(subscription, room, connection.user, id) : hub.readFrom(connection, room, connection.user, id, connection)
  answer.then((refused) => {
    if (refused) connection.send(errorOf(refused.error, room, ref))
    else if (ref) connection.send({ type: 'ack', ref, room } satisfies ChatAckFrame)
  }, error => chatLogger.error('[nuxt-chat] a read command failed', error))
}

/** A page of older history of a joined room; one request at a time per connection. */
function answerHistory(connection: MultiRoomMember, room: string, before: number, limit: number, ref: string | undefined, thread?: number) {
  const rare = connection.rare()
  if (rare.readingHistory) return connection.send(errorOf(errorFrame('bad_request', 'One history request at a time'), room, ref))
  rare.readingHistory = true
  useChatHub().limitedHistoryPage(limitSubjectOf(connection), room, before, limit, thread).then(
    // The page's JSON with the ref added before its closing brace: no second parse of a large page.
    page => 'refused' in page ? connection.send(errorOf(limitRefusalFrame(page.refused), room, ref)) : connection.write(new RoomFrame(ref ? `${page.text.slice(0, -1)},"ref":${JSON.stringify(ref)}}` : page.text)),
    (error) => {
      chatLogger.error('[nuxt-chat] could not read history', error)
      connection.send(errorOf(errorFrame('unavailable', 'History is unavailable right now'), room, ref))
    },
  ).finally(() => {
    rare.readingHistory = false
  })
}

/** Connections with a search under way: one at a time each, as history pages. */
const searching = new WeakSet<MultiRoomMember>()

/** `search` (docs/PROTOCOL.md, "Search"): the rooms the person may read, within the history limits; `search_results` with the ref, or the refusal. */
function answerSearch(connection: MultiRoomMember, command: Extract<ChatClientCommandV2, { type: 'search' }>) {
  const { type: _type, ref, ...request } = command
  if (searching.has(connection)) return connection.send(errorOf(errorFrame('bad_request', 'One search at a time'), undefined, ref))
  searching.add(connection)
  useChatHub().search(request, connection.user, { subject: limitSubjectOf(connection), ...(connection.data && { data: connection.data }) }).then(
    // The answer's JSON with the ref added before its closing brace, as a history page.
    answer => 'error' in answer ? connection.send(errorOf(answer.error, undefined, ref)) : connection.write(new RoomFrame(ref ? `${answer.text.slice(0, -1)},"ref":${JSON.stringify(ref)}}` : answer.text)),
    (error) => {
      chatLogger.error('[nuxt-chat] a search failed', error)
      connection.send(errorOf(errorFrame('unavailable', 'Search is unavailable right now; try again'), undefined, ref))
    },
  ).finally(() => searching.delete(connection))
}

/** Send one message (or edit, delete, reaction) of a room through the hub and answer it. */
export async function handleRoomMessage(connection: MultiRoomMember, subscription: RoomSubscription, command: SendCommandV2, onQueued: () => void) {
  const hub = useChatHub()
  const { cid, ref, room } = command
  const rare = connection.rare()
  // Held behind an earlier refusal in this room: refused alike, before any token or store.
  if (subscription.refusal && cid) {
    if (cid !== subscription.refusal.cid) {
      connection.send(errorOf({ ...subscription.refusal, message: `Held: resend "${subscription.refusal.cid}" first`, cid }, room, ref))
      return
    }
    subscription.refusal = undefined
  }
  const { message, action, replyTo, thread, alsoInRoom, files } = sendFieldsOf(command)
  if (action) await rare.answeredAll
  const result = await hub.send({ room, user: connection.user, sender: connection.sender, ip: connection.ip, message, cid, action, replyTo, thread, alsoInRoom, files, member: subscription, onQueued })
  if (result.error) {
    connection.send(errorOf(result.error, room, ref))
    if (cid && HOLDING_CODES.has(result.error.code)) subscription.refusal = result.error
    if (result.error.code === 'rate_limited' && ++rare.strikes >= ABUSE_LIMIT) connection.close(1008, 'Rate limit exceeded')
    return
  }
  rare.strikes = 0
  // A repeated cid is not broadcast again: only the sender gets the stored frame back (after its replay).
  if (result.duplicate) deliverToMember(subscription, new RoomFrame(JSON.stringify({ ...result.frame, duplicate: true })))
  if (ref) acknowledge(subscription, ref, result.frame?.id)
}
