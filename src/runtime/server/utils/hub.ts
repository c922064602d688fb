import type { Hookable } from 'hookable'
import type { ConsolaInstance } from 'consola'
import { randomBytes } from 'node:crypto'
import { errorFrame, isValidRoom, systemFrame, systemFrameOf, type ChatErrorFrame, type ChatHistoryFrame, type ChatMessageFrame, type ChatMemberCommand, type ChatMemberFrame, type ChatStoredFrame, type ChatTypingFrame, type ChatUser } from '../../shared/protocol'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import type { ChatBus, BusEvent } from './bus'
import { parseUsers, createRoomPresence, type RoomPresence } from './presence'
import { createPresenceQueries, usersOf } from './presenceQueries'
import { createRoomDelivery, messageFrame, type Member, type RoomDelivery } from './roomDelivery'
import { RoomFrame } from '../transport/frame'
import type { ReadPosition, ReadState, RoomLog } from './roomLog'
import { createListAdmission } from './listAdmission'
import { createReadState, type ReadStateHub, type RoomsWatcher } from './readState'
import { createSendLimiter, createSendPipeline, type AllowSend, type ClaimFiles, type SendInput, type SendResult } from './sendPipeline'
import { ChatLimitRefusal, createChatLimits, limitRefusalFrame, limitSubjectOf, type LimitRefusal, type LimitSubject } from './chatLimits'
import { MEMBERS_LISTED } from '../../shared/protocolV2'
import { askToJoin, ChatRefusal, identifiedIdProblem, refusalCode, type ChatAdmission } from './access'
import { createRoomListing } from './roomListing'
import { createMentionResolver, type FoundMentions } from './mentions'
import { createRoomSearch, type RoomSearch } from './roomSearch'
import { createChatStreams, type ChatStreams } from './streams'
import { createRoomAccess, NOT_ALLOWED, type RoomAccessDecision, type RoomNeed } from './roomAccess'
import { actionRefusal, createRoomModeration, memberFrame, SERVER_ACTOR, type ModerationResult } from './roomModeration'
import { cleanRoomFields, directRoomId, isMembership, mayUpdate, memberIdProblem, membershipOf, roomFieldsProblem, type RoomMember, type RoomRecord } from './roomMembers'

export { deliverToMember, messageFrame, type Member } from './roomDelivery'
export { RoomFrame } from '../transport/frame'
export type { SendInput, SendResult } from './sendPipeline'

/** What server code gives to make a room (`useChatServer().createRoom`). */
export interface ChatRoomInput {
  /** The room's name. @default `room-` and 16 random base64url characters */
  id?: string
  /** @default the id */
  title?: string
  /** @default '' */
  topic?: string
  /** @default 'public' */
  visibility?: 'public' | 'private'
  /** The user who owns it (an `owner` member, and `createdBy`). */
  owner?: string
  /** Users to add as `member`s. */
  members?: string[]
}

/** The fields of a room record its members may change. */
type RecordFields = Partial<Pick<RoomRecord, 'title' | 'topic' | 'visibility'>>

/** Close code and reasons of a connection whose membership ended (docs/PROTOCOL.md, "Admission"). */
export const MEMBERSHIP_ENDED = 4003
export const REMOVED_REASON = 'Removed from the room'
export const BANNED_REASON = 'Banned from the room'
/** How often connections let in unchecked (the store down since boot) are checked again (ms). */
const RECHECK_UNCHECKED = 1000
/** Members a room record's creation takes at most. */
const MAX_INITIAL_MEMBERS = 1000

/** A room as this instance sees it: its ordered delivery to local members, and its presence. */
interface Room {
  name: string
  delivery: RoomDelivery
  presence: RoomPresence
  /** Joins and leaves not told yet, told to the room at once (see `batchOf`). */
  batch?: PresenceBatch
  /** When the room was last told a batch (`performance.now()`). */
  toldAt: number
  /** Until the other instances answered who is here (a room new to this instance): its first batch waits. */
  heard?: Promise<void>
  /** Its members as of the last version 2 join, when it is small enough for "Seen by" (docs/PROTOCOL.md). */
  seenMembers?: Set<string>
}

/**
 * The joins and leaves of one event-loop turn in a room: a storm of newcomers costs each member
 * one `join` frame and one `presence_diff` per turn, not one per newcomer.
 */
interface PresenceBatch {
  /** Connections waiting for their full list (no diff reaches them before it), with their replay cursors. */
  newcomers: Map<Member, Newcomer>
  /** Users whose first connection here arrived (by id), and whose last one went. */
  joined: Map<string, ChatUser>
  left: Map<string, ChatUser>
  /** Settles once the batch was told (newcomers then get their replay). */
  told: Promise<void>
  tell: () => void
  /** Told at the end of this turn (not after a window or the other instances). */
  thisTurn: boolean
}

/** A connection of a batch, from its join until its replay is sent. */
interface Newcomer {
  since: number | undefined
  /** Joining makes the signed-in user's read position (see `ChatAdmission.createsReadPosition`). */
  createsPosition: boolean
  /** Set when the batch is told: settles once its replay (and what arrived meanwhile) was written. */
  replayed?: Promise<void>
  /** Its output is held until its full list is written (`Member.holdOutput`). */
  held?: boolean
  /** The membership clock at its admission (see `endedSince`). */
  admittedAt: number
}

/** What ended a person's connections to a room: how it ends their joins admitted before it. */
interface Ending {
  /** The membership clock when it came. */
  at: number
  /** The close code and reason their connections got (none: the app's `disconnect`). */
  code?: number
  reason?: string
}

/** What a join made (its first read position, its plain membership), kept a while: a removal heard meanwhile undoes it. */
interface JoinMade {
  /** When it was made: past `JOIN_UNDO_WINDOW` a removal no longer undoes it. */
  at: number
  member?: RoomMember
}

export interface ChatHubOptions {
  config: ChatRuntimeConfig
  store: RoomLog
  bus: ChatBus
  hooks: Hookable<ChatRuntimeHooks>
  logger: ConsolaInstance
  /** The rate limit of the send pipeline; by default a token bucket per person and one per client address. */
  allowSend?: AllowSend
  /** Attachments: reserve a message's uploads (../files/fileRecords.ts); absent: messages with `files` are refused. */
  claimFiles?: ClaimFiles
}

const TYPING_THROTTLE = 1000
/** Room names known to have messages (no new-room check for them): a bound, so a flood of names cannot grow it. */
const MAX_KNOWN_ROOMS = 10_000
/** A big room is told of joins and leaves at most once per this many ms: a storm costs each member a few frames, not one per turn. */
const PRESENCE_WINDOW = 50
/** Members from which a room is big: telling it costs a frame per member; a small room is told at the end of every turn. */
const PRESENCE_WINDOW_FROM = 10
const RECOVERY_RECHECK = 1000
/** How a stored delete's frame starts (`eventFrame` writes `type` first): other stored frames are not parsed for it. */
const DELETE_FRAME_START = '{"type":"delete"'

/** The message a delete heard on the bus names, if the frame is one. */
function parseDeleteTarget(text: string): number | undefined {
  try {
    const change = JSON.parse(text) as ChatStoredFrame
    return change.type === 'delete' && Number.isSafeInteger(change.target) ? change.target : undefined
  }
  catch {
    return undefined
  }
}
/** Rooms of at most this many members tell who has read what (docs/PROTOCOL.md, "Seen by"). */
export const SEEN_BY_MAX_MEMBERS = 50
/** Endings (and record changes) kept for joins under way, at most; the oldest go first (a join lasts moments). */
const MAX_ENDINGS = 10_000
/** How long what a join made stays undoable by a removal heard from another instance (ms): the bus tells within a second. */
const JOIN_UNDO_WINDOW = 5000

/**
 * The chat hub: the room index of this instance, wiring ordered delivery, presence, the send
 * pipeline and the bridge to other instances. Transports (WebSocket, SSE, POST) only parse
 * requests and call it.
 */
/**
 * The chat hub of one server instance: every room's connections, their delivery, presence and
 * read state, admission, moderation and the server API's calls, over one room log and one bus.
 */
export interface ChatHub {
  /**
   * Add a connection to a room: its greeting at once; at the end of the turn the full presence
   * list (the others get the turn's `join` and `presence_diff`), then the replay (messages after
   * `since`, or the last `replay` ones), then everything live, each once. A signed-in user's read
   * position is made only with `createsPosition`. `admittedAt`: the admission's `admittedAt` (absent: now); what ended the
   * person's connections to the room since (removed, banned, disconnected, the room made private) ends this join too, and it keeps nothing it made.
   */
  join: (name: string, member: Member, since: number | undefined, nameRefused?: string, createsPosition?: boolean, admittedAt?: number) => Promise<void>
  /** Remove a connection; the last connection of a user tells the room, at the end of the turn, that they left. */
  leave: (name: string, member: Member) => void
  /** Store a message, edit, delete or reaction after admission, limits and hooks, and deliver it. */
  send: (input: SendInput) => Promise<SendResult>
  /** May `user` read or send in `room` now (docs/PROTOCOL.md, "Admission")? At once when cached, else a promise. */
  access: (room: string, user: ChatUser, need: RoomNeed) => RoomAccessDecision | Promise<RoomAccessDecision>
  /**
   * The admission of a request to its room, after `chat:identify`: makes the direct room of a
   * `?dm=` request, then asks `access`; throws `ChatRefusal` (403 `forbidden`, 503) when refused.
   */
  admitToRoom: (admission: ChatAdmission) => Promise<void>
  /** The `seen` frame of a small room's members' read positions, for a version 2 join; undefined in a room without members or with too many. */
  seenFrame: (room: string) => Promise<RoomFrame | undefined>
  /** Run a moderation command in `room` as `actor` (absent: the app's server code), counted against `subject`'s messages. */
  moderate: (room: string, command: ChatMemberCommand, actor?: ChatUser, subject?: LimitSubject) => Promise<ModerationResult>
  /** Make (or find) the direct room of two users; both are its members (a membership either lost is given back). */
  directRoom: (userA: string, userB: string) => Promise<RoomRecord>
  /** The two people of a direct room (docs/PROTOCOL.md, "Direct messages"); empty for any other room. */
  directPair: (room: string) => Promise<readonly string[]>
  /** Why server code may not write (send, stream) into `room`: a `dm:` room without its direct room's record; undefined when it may. */
  serverWriteRefusal: (room: string) => Promise<{ status: number, error: ChatErrorFrame } | undefined>
  /** A room's members by name, at most `MEMBERS_LISTED`, within `subject`'s history limit (a store read each). */
  limitedMemberNames: (subject: LimitSubject, room: string) => Promise<{ members: { uid: string, name: string }[] } | { refused: LimitRefusal }>
  /** Make a room record with its owner and members, as `actor` (server code by default); throws `ChatRefusal` 400, 403 (the `chat:action` hook) or 409. */
  createRoom: (input: ChatRoomInput, actor?: ChatUser) => Promise<RoomRecord>
  /** A token of the `rooms` limit for a room a person makes (`create`, a new direct room), and the `messages` its `invited` members cost; the refusal when spent. */
  newRoomToken: (subject: LimitSubject, invited?: number) => LimitRefusal | undefined
  /** Change a room's title, topic or visibility as `actor` whom the record rule lets (`allow`) or not, then the `chat:action` hook; undefined when it has no record. */
  updateRoom: (room: string, fields: RecordFields, actor?: ChatUser, allow?: boolean) => Promise<RoomRecord | undefined>
  /** A member's change of a room's record (version 2's `update`): counted as a message, then the record rule and `updateRoom`; the record, or the refusal. */
  updateRoomAs: (room: string, fields: RecordFields, actor: ChatUser, subject: LimitSubject) => Promise<{ record: RoomRecord } | { error: ChatErrorFrame }>
  /** A room's record (undefined: none, a public room). */
  roomRecord: (room: string) => Promise<RoomRecord | undefined>
  /** A page of a room's members (banned ones included), in id order. */
  members: (room: string, after: string | undefined, limit: number) => Promise<RoomMember[]>
  /** Tell the others in the room that `member` is typing (at most once a second per connection). */
  typing: (name: string, member: Member) => void
  /** Everyone online in a room, on every instance (asking the others when no member is here). */
  presence: (name: string) => Promise<ChatUser[]>
  /** The newest `limit` stored messages of a room before id `before`, oldest first. */
  history: (name: string, before: number, limit: number, thread?: number) => Promise<ChatStoredFrame[]>
  /** A page of older history as the `history` frame a client asked for (one more row read tells whether older ones exist). */
  historyPage: (name: string, before: number, limit: number, thread?: number) => Promise<ChatHistoryFrame>
  /** A page of older history for `subject`, within its history limits: the frame as JSON text, or the refusal; its bytes are charged once served. */
  limitedHistoryPage: (subject: LimitSubject, name: string, before: number, limit: number, thread?: number) => Promise<{ text: string } | { refused: LimitRefusal }>
  /** May `subject` open a rooms list (or join the room its `create` made, whose `rooms` token paid the join) now? Refused while its history byte budget is spent. */
  replayRefusal: (subject: LimitSubject) => LimitRefusal | undefined
  /** May `subject` join a room now? Takes a token of `joins` (nothing when refused), refused while those or its history byte budget are spent. */
  joinRefusal: (subject: LimitSubject) => LimitRefusal | undefined
  /** A `read` POST (or a guest's command) within the reads limit: the refusal when over it. */
  readRefusal: (subject: LimitSubject) => LimitRefusal | undefined
  /** Take a token of the person's (and a guest's address's) `messages` limit for an upload (docs/PROTOCOL.md, "Attachments"); the refusal when spent. */
  uploadRefusal: (subject: LimitSubject) => LimitRefusal | undefined
  /** Up to `limit` stored room names after `after`, in name order. */
  storedRooms: (after: string | undefined, limit: number) => Promise<string[]>
  /** Close a user's connections to a room, here and on every other instance; how many were here. */
  disconnect: (name: string, userId: string) => number
  /** Move a signed-in user's read position in a room forward (absent `id`: to the newest); all their connections learn it. */
  markRead: ReadStateHub['markRead']
  /** The `read` command of a connection: the `read` frame, or why it was refused. */
  read: ReadStateHub['read']
  /** The same from a WebSocket connection: one in flight per connection, later ones folded (docs/PROTOCOL.md, "Read state"). */
  readFrom: ReadStateHub['readFrom']
  /** Read positions another part deleted (retention): their users' rooms lists, here and on every instance, drop the rooms. */
  readsPruned: (positions: ReadPosition[]) => void
  /** Delete a user's read position in a room; their rooms lists on every instance drop the room. */
  forget: (name: string, userId: string) => Promise<boolean>
  /** A user's read position and unread count in a room; undefined when they have none. */
  readStateOf: (name: string, userId: string) => Promise<ReadState | undefined>
  /** Start a rooms list; its first list (up to 100 rooms' last messages) is history served to `subject`, charged to its byte budget. */
  watchRooms: (watcher: RoomsWatcher, subject: LimitSubject, ref?: string) => Promise<void>
  /** End a rooms list. */
  unwatchRooms: (watcher: RoomsWatcher) => void
  /** `name` as this instance's room of that name holds it (one string per room for every connection's key), else `name` itself. */
  roomName: (name: string) => string
  /** Signed-in users' names in a room on every instance (a guest may not take a look-alike); asks the others when the room is new here. */
  signedInNames: (name: string) => Promise<string[]>
  /** Search the rooms `user` may read (docs/PROTOCOL.md, "Search"); with an asker, within its history limits and the app's `chat:join` per room. */
  search: RoomSearch
  /** Streaming messages (./streams.ts): start, stop, catch up. */
  streams: ChatStreams
  /** Stop the timers, the bus and the store (once). */
  close: () => Promise<void>
}

export function createChatHub({ config, store, bus, hooks, logger, allowSend, claimFiles }: ChatHubOptions): ChatHub {
  const rooms = new Map<string, Room>()
  // Newcomers' replays from memory, unless retention by age may delete what memory still holds.
  const { max, maxAge } = config.history
  const recent = maxAge > 0 || (max > 0 && max < config.replay) ? 0 : config.replay
  const limits = createChatLimits(config)
  const limiter = allowSend ? undefined : createSendLimiter(config, limits)
  /** Rooms seen with messages, least recently added first. */
  const roomsWithMessages = new Set<string>()
  /** Rooms with messages stored while the bus was down: the others must be told to catch up. */
  const unpublished = new Set<string>()
  const presenceQueries = createPresenceQueries({ bus, wait: config.presenceWait })
  let closed = false
  const listAdmission = createListAdmission({ hooks, logger })
  const access = createRoomAccess({ store, logger })
  /**
   * Membership changes racing joins (docs/PROTOCOL.md, "Admission"): a join is admitted, then runs
   * (replay, first read position) over several turns. Whatever ends a person's connections to a room
   * (removed, banned, the app's `disconnect`, here or heard from another instance) is stamped with
   * this clock, and so is a record change: a join admitted before it ends as those connections did,
   * and keeps nothing it made (see `endedSince`, `joinedFirst`, `undoJoin`).
   */
  let membershipClock = 0
  /** The last ending per `room\nuid`. */
  const endings = new Map<string, Ending>()
  /** The clock of each room's last record change. */
  const recordChanges = new Map<string, number>()
  /** What joins made lately, per `room\nuid`: a removal that another instance (or a slower store answer) tells later undoes it. */
  const joinsMade = new Map<string, JoinMade>()

  /** The key of a person in a room, in `endings` and `joinsMade`. */
  const memberKey = (room: string, uid: string) => `${room}\n${uid}`

  function stamp<T>(map: Map<string, T>, key: string, value: T) {
    map.delete(key)
    if (map.size >= MAX_ENDINGS) map.delete(map.keys().next().value!)
    map.set(key, value)
  }

  /** What ended `uid`'s connections to `room` after `admittedAt`, if anything did. */
  function endedSince(room: string, uid: string, admittedAt: number): Ending | undefined {
    const ending = endings.get(memberKey(room, uid))
    return ending && ending.at > admittedAt ? ending : undefined
  }

  /** A join admitted at `admittedAt` whose person's connections to the room ended since, or whose room's record changed (and the admission now refuses): it ends as they did. */
  function endIfOvertaken(name: string, member: Member, admittedAt: number) {
    const ending = endedSince(name, member.user.id, admittedAt)
    if (ending) return member.close?.(ending.code, ending.reason)
    if ((recordChanges.get(name) ?? 0) <= admittedAt) return
    void Promise.resolve(access.decide(name, member.user, 'read')).then((decision) => {
      if (!decision.allowed && decision.code === 'forbidden') member.close?.(MEMBERSHIP_ENDED, NOT_ALLOWED)
    })
  }

  /** Undo what a join made once its person's connections to the room ended after its admission: its plain membership (while the row is still that one), its read position. */
  async function undoJoin(room: string, uid: string, made: JoinMade) {
    const key = memberKey(room, uid)
    if (joinsMade.get(key) === made) joinsMade.delete(key)
    const stored = made.member && await store.member(room, uid)
    if (stored && !stored.banned && stored.role === 'member' && stored.mutedUntil === undefined && stored.joinedAt === made.member!.joinedAt) {
      await store.deleteMember(room, uid)
      // Told as the removal it undoes: caches, connections and rooms lists on every instance, and the position with it.
      membershipChanged(memberFrame(room, uid, undefined, true))
      return
    }
    await store.forgetRead(room, uid)
    access.forget(room, uid)
    readState.unlistHere(room, uid)
    bus.publish({ kind: 'forget', room, uid })
  }
  /** A room's members' names, a direct room's two people's only: whom `@name` reaches and `members` lists. */
  async function memberNamesOf(room: string, limit: number) {
    const names = await store.memberNames(room, limit)
    if (!room.startsWith('dm:')) return names
    const pair = await access.pair(room)
    return names.filter(({ uid }) => pair.includes(uid))
  }
  const listing = createRoomListing({ store, recordOf: access.record, memberOf: access.member, pairOf: access.pair, logger })
  const mentions = createMentionResolver({ store: { memberNames: memberNamesOf } })
  const search = createRoomSearch({ store, access, listAdmission, limits, logger })
  const readState = createReadState({
    store,
    bus,
    logger,
    membersOf: name => rooms.get(name)?.delivery.members,
    maxReadPositions: config.maxReadPositions,
    tellsSeen: (room, uid) => rooms.get(room)?.seenMembers?.has(uid) ?? false,
    admitListed(watcher, room) {
      const listed = listAdmission.admitted(watcher, room)
      const decided = access.decide(room, watcher.user, 'read')
      // Both known at once (the usual case): no promise, so live entries stay in order.
      if (typeof listed === 'boolean' && !(decided instanceof Promise)) return listed && decided.allowed
      return Promise.all([listed, decided]).then(([admitted, decision]) => admitted && decision.allowed)
    },
    allowNewPosition(member) {
      const refused = limits.take('rooms', limitSubjectOf({ sender: member.sender, ip: member.ip, user: member.user }))
      return refused && limitRefusalFrame(refused)
    },
    describe: listing.describe,
    nameHeard: listing.heard,
    async isMember(room, uid) {
      if (!isMembership(await access.member(room, uid))) return false
      return !room.startsWith('dm:') || (await access.pair(room)).includes(uid)
    },
    // Choosing to join a room (docs/PROTOCOL.md, "Rooms list"): a plain membership unless they have one, if the room still admits them
    // (a private room's members come by invite only) and the join still stands: a join its person's removal overtook keeps nothing it made.
    async joinedFirst(room, uid, stands) {
      const made: JoinMade = { at: Date.now() }
      // Bounded by `stamp`; aged out when read (no timer per join).
      stamp(joinsMade, memberKey(room, uid), made)
      if (!stands()) return undoJoin(room, uid, made).then(() => false)
      const decided = access.decide(room, { id: uid, name: uid }, 'read')
      // (Decided at once when cached, as after an admission: no later than before.)
      if (!(decided instanceof Promise ? await decided : decided).allowed) return undoJoin(room, uid, made).then(() => false)
      const member: RoomMember = { room, uid, role: 'member', joinedAt: Date.now() }
      if (await moderation.add(member)) made.member = member
      if (stands()) return true
      await undoJoin(room, uid, made)
      return false
    },
    evicted: (room, uid) => access.forget(room, uid),
    allowStoredRead(connection, user) {
      const refused = limits.take('reads', limitSubjectOf({ sender: user.id, ip: (connection as Partial<Member>).ip, user }))
      return refused && { status: 429, error: limitRefusalFrame(refused) }
    },
  })

  function rememberRoomWithMessages(name: string) {
    if (roomsWithMessages.has(name)) return
    if (roomsWithMessages.size >= MAX_KNOWN_ROOMS) roomsWithMessages.delete(roomsWithMessages.values().next().value!)
    roomsWithMessages.add(name)
  }

  /** Per unknown room, the last new-room check asked: checks of one room run in arrival order. */
  const newRoomChecks = new Map<string, Promise<LimitRefusal | undefined>>()

  /**
   * A message to a room with no messages makes a new room: limited per person and address
   * (docs/PROTOCOL.md, "Limits"). Checks of one room are chained, so its first messages reach
   * the store in the order they arrived and only the first takes a token.
   */
  function newRoomRefusal(input: SendInput): Promise<LimitRefusal | undefined> | undefined {
    if (roomsWithMessages.has(input.room)) return undefined
    const check = (newRoomChecks.get(input.room) ?? Promise.resolve(undefined)).then(() => checkNewRoom(input))
    newRoomChecks.set(input.room, check)
    void check.finally(() => {
      if (newRoomChecks.get(input.room) === check) newRoomChecks.delete(input.room)
    })
    return check
  }

  async function checkNewRoom(input: SendInput): Promise<LimitRefusal | undefined> {
    if (roomsWithMessages.has(input.room)) return undefined
    let last: number
    try {
      last = await store.lastId(input.room)
    }
    catch {
      // The append that follows meets the same store and answers `unavailable` itself.
      return undefined
    }
    // Another message made the room meanwhile (its first is on its way): not new.
    if (last > 0 || roomsWithMessages.has(input.room)) {
      rememberRoomWithMessages(input.room)
      return undefined
    }
    const refused = limits.take('rooms', limitSubjectOf(input))
    // Its first message is on its way: the ones behind it make no new room (one token per room, not per message).
    if (!refused) rememberRoomWithMessages(input.room)
    return refused
  }

  function roomOf(name: string): Room {
    const known = rooms.get(name)
    if (known) return known
    const room: Room = { name, delivery: createRoomDelivery({ room: name, store, logger, recent }), presence: createRoomPresence(name), toldAt: -Infinity }
    rooms.set(name, room)
    // A newcomer's first list is the whole room: what the other instances have (asked for a name check just before, or now).
    const query = presenceQueries.ask(name)
    if (query) {
      for (const [origin, users] of query.answers) room.presence.heardFrom(origin, users, Date.now() + 3 * config.presenceInterval)
      if (!query.settled) {
        room.heard = query.done.then(() => {
          room.heard = undefined
        })
      }
    }
    return room
  }

  /** Tell the room who joined and left, if anyone did; newcomers waiting for their full list are skipped. */
  function broadcastPresenceDiff(room: Room) {
    const text = room.presence.diffFrame()
    if (text !== undefined) room.delivery.broadcast(new RoomFrame(text), room.batch?.newcomers)
  }

  function announcePresence(name: string, room: Room) {
    // One instance: nobody to tell (and 500 rooms' lists serialised every few seconds for nothing).
    if (bus.alone) return
    bus.publish({ kind: 'presence', room: name, frame: JSON.stringify(room.presence.localUsers()) })
  }

  /** Rooms with a batch to tell at the end of this turn. */
  let batched: Room[] = []

  /**
   * The room's batch of joins and leaves: told after this turn's I/O callbacks (all upgrades read
   * in one poll); in a big room told less than `PRESENCE_WINDOW` ago (a storm), once that
   * window has passed.
   */
  function batchOf(room: Room): PresenceBatch {
    if (room.batch) return room.batch
    let tell!: () => void
    const told = new Promise<void>(resolve => tell = resolve)
    const wait = room.delivery.members.size < PRESENCE_WINDOW_FROM ? 0 : room.toldAt + PRESENCE_WINDOW - performance.now()
    const batch: PresenceBatch = { newcomers: new Map(), joined: new Map(), left: new Map(), told, tell, thisTurn: !room.heard && wait <= 0 }
    room.batch = batch
    // Members wait in their batch (live frames held) until the other instances answered.
    if (room.heard) void room.heard.then(() => tellBatch(room))
    else if (wait > 0) setTimeout(() => tellBatch(room), wait).unref?.()
    else if (batched.push(room) === 1) setImmediate(tellBatches)
    return batch
  }

  function tellBatches() {
    const ready = batched
    batched = []
    for (const room of ready) tellBatch(room)
  }

  /**
   * Tell a room its batch: one `join` and one `leave` frame for the users that came and went
   * (to the room's members but the newcomers, and to the other instances), one diff, then
   * every newcomer the same full list and at once its replay: from memory, both leave in the
   * same write (a store read makes the replay follow later).
   */
  function tellBatch(room: Room) {
    const batch = room.batch!
    room.toldAt = performance.now()
    const { name, delivery } = room
    const { newcomers } = batch
    for (const [event, users] of [['join', batch.joined], ['leave', batch.left]] as const) {
      if (!users.size) continue
      const text = JSON.stringify(systemFrameOf(event, name, [...users.values()]))
      delivery.broadcast(new RoomFrame(text), newcomers)
      bus.publish({ kind: 'system', room: name, frame: text })
    }
    if (batch.joined.size || batch.left.size) announcePresence(name, room)
    broadcastPresenceDiff(room)
    room.batch = undefined
    // One list for every newcomer of the turn: serialised and framed once.
    const full = new RoomFrame(room.presence.fullFrame())
    for (const [member, newcomer] of newcomers) {
      member.write(full)
      // A signed-in user's read state, once after the welcome and full list (held while the replay is being sent).
      void readState.joined(name, member, newcomer.createsPosition, () => !endedSince(name, member.user.id, newcomer.admittedAt))
      try {
        // The replay is history served: charged to the newcomer's byte budget (checked at admission, `replayRefusal`; a store read waits its turn, `replayTurn`).
        const subject = limitSubjectOf(member)
        newcomer.replayed = delivery.replay(member, newcomer.since, config, bytes => limits.chargeHistoryBytes(subject, bytes), () => limits.replayTurn(subject))
      }
      catch (error) {
        // Its join fails (and is logged) as before; the other newcomers still get theirs.
        newcomer.replayed = Promise.reject(error)
      }
      if (newcomer.held) member.releaseOutput!()
    }
    batch.tell()
    // Forgotten only once its leaves are told: a join meanwhile reuses it, so nothing stale is announced after that join.
    if (delivery.members.size === 0) rooms.delete(name)
  }

  /**
   * Add a connection to a room: welcome (and `name_refused` when its name wish was refused) at
   * once; at the end of the turn the full presence list (the others get the turn's `join` and
   * `presence_diff`), then the replay (messages after `since`, or the last `replay` ones), then
   * everything live, each once. A signed-in user's read position is made only with `createsPosition`.
   */
  async function join(name: string, member: Member, since: number | undefined, nameRefused?: string, createsPosition = false, admittedAt = membershipClock) {
    const room = roomOf(name)
    room.delivery.add(member)
    // A new name here: the rooms whose names index holds the user read it again (once it is stored).
    listing.seen(member.user)?.then(() => mentions.nameChanged(member.user.id, member.user.name))
    // The admission just decided (cached): the membership is known at once; else it follows as a `member` frame.
    const decided = access.decide(name, member.user, 'read')
    const membership = decided instanceof Promise || !decided.allowed ? {} : membershipOf(decided.member)
    member.write(member.greeting?.(name, membership) ?? new RoomFrame(JSON.stringify({ ...systemFrame('welcome', name, member.user), ...membership })))
    if (decided instanceof Promise) {
      void decided.then((decision) => {
        if (decision.allowed && membershipOf(decision.member).role) member.write(new RoomFrame(JSON.stringify(memberFrame(name, member.user.id, decision.member))))
      })
    }
    if (nameRefused) member.write(new RoomFrame(JSON.stringify(errorFrame('name_refused', nameRefused))))
    const batch = batchOf(room)
    const newcomer: Newcomer = { since, createsPosition, admittedAt }
    batch.newcomers.set(member, newcomer)
    // Its welcome waits for its full list (and a replay from memory) this turn: one write for the client, not two.
    if (batch.thisTurn && member.holdOutput?.()) newcomer.held = true
    // Back within the same turn: neither left nor joined.
    if (room.presence.connect(member.user) && !batch.left.delete(member.user.id)) batch.joined.set(member.user.id, member.user)
    // In the room from here on, where endings reach it; one that came since its admission ends it now.
    endIfOvertaken(name, member, admittedAt)
    await batch.told
    // Gone before its batch was told: no replay.
    await newcomer.replayed
    // Open streams' text so far, after the replay (docs/PROTOCOL.md, "Streaming messages").
    if (room.delivery.members.has(member)) streams.caughtUp(name, member)
  }

  /** Remove a connection; the last connection of a user tells the room, at the end of the turn, that they left. */
  function leave(name: string, member: Member) {
    const room = rooms.get(name)
    if (!room || !room.delivery.remove(member)) return
    const batch = batchOf(room)
    // Gone before its batch was told: it still joined, so a signed-in user's position is made (no frames for it).
    const newcomer = batch.newcomers.get(member)
    if (newcomer && batch.newcomers.delete(member)) {
      if (newcomer.held) member.releaseOutput!()
      void readState.joined(name, member, newcomer.createsPosition, () => !endedSince(name, member.user.id, newcomer.admittedAt))
    }
    // Gone within the turn it came: never announced.
    if (room.presence.disconnect(member.user) && !batch.joined.delete(member.user.id)) batch.left.set(member.user.id, member.user)
  }

  const sendChecked = createSendPipeline({
    config,
    store,
    hooks,
    logger,
    allowSend: allowSend ?? limiter!.allowSend,
    newRoomRefusal,
    claimFiles,
    // `@room` / `@here`: owners and moderators (set by the admission) and the app's server code.
    resolveMentions: (input, text) => mentions.resolve(input.room, text, input.sender, input.moderator === true || input.fromServer === true),
    onMentioned: (frame, found) => void tellMentioned(frame, found).catch(error => logger.error('[nuxt-chat] could not tell the members mentioned', error)),
    onStored: fanOut,
  })

  /** Deliver a stored message or change here, to the rooms lists and to the other instances, then call `chat:stored`. */
  function fanOut(frame: ChatStoredFrame, text: string) {
    rememberRoomWithMessages(frame.room)
    rooms.get(frame.room)?.delivery.deliver(frame.id, text)
    if (frame.type === 'delete') streams.messageDeleted(frame.room, frame.target)
    if (readState.watches(frame.room)) readState.stored(frame.room, frame)
    if (!bus.publish({ kind: 'message', room: frame.room, id: frame.id, frame: text })) unpublished.add(frame.room)
    // After delivery, on a later turn: a slow or failing hook never holds a message back.
    setImmediate(() => {
      Promise.resolve(hooks.callHook('chat:stored', { room: frame.room, frame })).catch((error: unknown) => logger.error('[nuxt-chat] the chat:stored hook failed', error))
    })
  }

  // Streaming messages of AI members and bots (docs/PROTOCOL.md, "Streaming messages").
  const streams = createChatStreams({
    config,
    store,
    bus,
    logger,
    fanOut,
    broadcast: (name, frame) => rooms.get(name)?.delivery.broadcast(frame),
    broadcastDelta: (name, frame) => rooms.get(name)?.delivery.broadcastDelta(frame),
    async isModerator(room, user) {
      const decision = await access.decide(room, user, 'read')
      return decision.allowed && decision.moderator
    },
  })

  /**
   * Call `chat:mention` once per member a stored message mentions (never its sender): those it
   * names, and for `@room` every member, for `@here` every member online. After delivery, like `chat:stored`.
   */
  async function tellMentioned(frame: ChatMessageFrame, found: FoundMentions) {
    const uids = new Set(found.uids)
    if (found.all) {
      const index = await mentions.indexOf(frame.room)
      const online = found.all === 'here' ? new Set((await presenceOf(frame.room)).map(user => user.id)) : undefined
      for (const uid of index.uids) if (!online || online.has(uid)) uids.add(uid)
    }
    if (frame.uid !== undefined) uids.delete(frame.uid)
    await new Promise(resolve => setImmediate(resolve))
    for (const uid of uids) {
      Promise.resolve(hooks.callHook('chat:mention', { room: frame.room, uid, frame })).catch((error: unknown) => logger.error('[nuxt-chat] the chat:mention hook failed', error))
    }
  }

  /** Why the app's server code may not write into `room`: a `dm:` room that is not yet the two people's direct room (nobody could read it, and it would wait for them). */
  async function serverWriteRefusal(room: string): Promise<{ status: number, error: ChatErrorFrame } | undefined> {
    if (!room.startsWith('dm:')) return undefined
    try {
      if ((await access.record(room))?.kind === 'dm') return undefined
    }
    catch (error) {
      logger.error('[nuxt-chat] could not read a room\'s record', error)
      return { status: 503, error: errorFrame('unavailable', 'The room could not be checked; try again') }
    }
    return { status: 404, error: errorFrame('not_found', `Room "${room}" is no direct room yet: make it with directRoom first`) }
  }

  /** Every message goes through the room's admission first (membership, ban, mute), but the app's own server code's. */
  function send(input: SendInput): Promise<SendResult> {
    if (input.fromServer) {
      if (!input.room.startsWith('dm:')) return sendChecked(input)
      return serverWriteRefusal(input.room).then(refused => refused ? { status: refused.status, error: { ...refused.error, ...(input.cid ? { cid: input.cid } : {}) } } : sendChecked(input))
    }
    // Deleting one's own message is no speaking: a muted member may.
    const need: RoomNeed = input.action?.kind === 'delete' ? 'read' : 'send'
    const decided = access.decide(input.room, input.user, need)
    return decided instanceof Promise ? decided.then(decision => sendDecided(input, decision)) : sendDecided(input, decided)
  }

  function sendDecided(input: SendInput, decision: RoomAccessDecision): Promise<SendResult> {
    if (!decision.allowed) {
      const error = errorFrame(decision.code, decision.message, input.cid)
      if (decision.mutedUntil !== undefined) error.mutedUntil = decision.mutedUntil
      return Promise.resolve({ status: decision.status, error })
    }
    const sent = sendChecked(decision.moderator ? { ...input, moderator: true } : input)
    // Speaking in a public room (with a record or without) makes a signed-in person its member (docs/PROTOCOL.md, "Rooms and members").
    if (isMembership(decision.member) || input.user.guest || input.action) return sent
    return sent.then((result) => {
      if (result.frame && !result.duplicate) speakerJoined(input.room, input.user.id).catch(error => logger.error('[nuxt-chat] could not store a membership', error))
      return result
    })
  }

  /** A signed-in person's message was stored: their membership unless they have one (a room without a record: its admission did not read it; cached). */
  async function speakerJoined(room: string, uid: string) {
    if (isMembership(await access.member(room, uid))) return
    await moderation.add({ room, uid, role: 'member', joinedAt: Date.now() })
  }

  /** Close this instance's connections of `userId` in a room (with `code` and `reason`, else 4001); how many there were. */
  function disconnectHere(name: string, userId: string, code?: number, reason?: string): number {
    // Before the connections close: their joins' read state (a leave makes it) sees it.
    stamp(endings, memberKey(name, userId), { at: ++membershipClock, code, reason })
    let count = 0
    for (const member of rooms.get(name)?.delivery.members ?? []) {
      if (member.user.id !== userId || !member.close) continue
      member.close(code, reason)
      count++
    }
    return count
  }

  /** A membership that goes on changed: the person's own connections to the room learn it (nobody else: docs/PROTOCOL.md, "Moderation commands"). */
  function tellMember(frame: ChatMemberFrame) {
    let text: RoomFrame | undefined
    for (const member of rooms.get(frame.room)?.delivery.members ?? []) {
      if (member.user.id === frame.uid) member.write(text ??= new RoomFrame(JSON.stringify(frame)))
    }
    readState.memberChanged(frame.room, frame.uid)
  }

  /** A membership (`uid` set) or a room record (`uid` empty) changed, here or on another instance: caches, connections, rooms lists. */
  function membershipChangedHere(frame: ChatMemberFrame) {
    access.forget(frame.room, frame.uid)
    // Whom `@name` can reach changed: the room's names are read again when next needed.
    if (frame.uid) mentions.forgetRoom(frame.room)
    if (frame.uid && !frame.removed) tellMember(frame)
    // Lists showing the room show its record: read them again; joins admitted before it are asked again.
    if (!frame.uid) {
      readState.resync(frame.room)
      stamp(recordChanges, frame.room, ++membershipClock)
    }
    // A record changed (a public room made private): who is here is asked again.
    if (!frame.uid && rooms.has(frame.room)) void recheckRoom(frame.room).then(pending => pending && recheckLater(frame.room), error => logger.error('[nuxt-chat] could not check a room\'s connections', error))
    if (!frame.uid || !frame.removed) return
    disconnectHere(frame.room, frame.uid, MEMBERSHIP_ENDED, frame.banned ? BANNED_REASON : REMOVED_REASON)
    readState.unlistHere(frame.room, frame.uid)
    // A join that made its membership (or position) as this removal was stored elsewhere, its write last: undone.
    const key = memberKey(frame.room, frame.uid)
    const made = joinsMade.get(key)
    if (!made) return
    if (Date.now() - made.at > JOIN_UNDO_WINDOW) joinsMade.delete(key)
    else undoJoin(frame.room, frame.uid, made).catch(error => logger.error('[nuxt-chat] could not undo a join\'s membership', error))
  }

  /** Tell every instance; a membership that ended takes the person's read position with it (their lists drop the room for good). */
  function membershipChanged(frame: ChatMemberFrame) {
    membershipChangedHere(frame)
    bus.publish({ kind: 'member', room: frame.room, frame: JSON.stringify(frame) })
    if (frame.uid && frame.removed) store.forgetRead(frame.room, frame.uid).catch(error => logger.error('[nuxt-chat] could not delete a read position', error))
  }

  /** Rooms with connections let in while the store had never answered: checked again every second until it does. */
  const unchecked = new Set<string>()
  let recheckTimer: ReturnType<typeof setInterval> | undefined

  function recheckLater(room: string) {
    unchecked.add(room)
    recheckTimer ??= setInterval(() => void recheck(), RECHECK_UNCHECKED)
    recheckTimer.unref?.()
  }

  /** Close this instance's connections to a room that its admission now refuses; true when some could not be checked. */
  async function recheckRoom(name: string): Promise<boolean> {
    let pending = false
    for (const member of [...rooms.get(name)?.delivery.members ?? []]) {
      const decision = await access.decide(name, member.user, 'read')
      if (!decision.allowed && decision.code === 'forbidden') member.close?.(MEMBERSHIP_ENDED, NOT_ALLOWED)
      else if (!decision.allowed || decision.unchecked) pending = true
    }
    return pending
  }

  /** Close the connections the store, now answering, says should not be there. */
  async function recheck() {
    for (const name of [...unchecked]) {
      if (!await recheckRoom(name)) unchecked.delete(name)
    }
    if (!unchecked.size && recheckTimer) {
      clearInterval(recheckTimer)
      recheckTimer = undefined
    }
  }

  const moderation = createRoomModeration({ store, hooks, logger, changed: membershipChanged, added: (room, uid) => void readState.memberAdded(room, uid) })

  /** Make (or find) the direct room of two users; both are its members: a membership either lost (server code's `forget`, a row deleted) is given back. */
  async function directRoom(userA: string, userB: string): Promise<RoomRecord> {
    // Whom a direct room can be with: no id `chat:identify` may name (a guest's, `server`, none a membership holds).
    for (const uid of [userA, userB]) {
      const problem = identifiedIdProblem(uid)
      if (problem) throw new ChatRefusal(400, problem)
    }
    if (userA === userB) throw new ChatRefusal(400, 'A direct room needs two different users')
    const id = directRoomId(userA, userB)
    const known = await access.record(id)
    if (known) {
      // The id is the pair's only if its record is theirs: a record of another kind would let others in (data from before server code was refused there).
      if (known.kind !== 'dm') {
        logger.error(`[nuxt-chat] room "${id}" holds the id of a direct room but is not theirs (kind "${known.kind}"): delete its record and members to let the two open it`)
        throw new ChatRefusal(409, `Room "${id}" is not a direct room of these two people`)
      }
      const now = Date.now()
      // Read from the store, not the cache (another instance's `forget` may be a moment old): a mute-only row
      // becomes the membership and keeps its mute; a ban row stays (no store replaces one).
      for (const uid of [userA, userB]) {
        if (!isMembership(await store.member(id, uid))) await moderation.add({ room: id, uid, role: 'member', joinedAt: now })
      }
      return known
    }
    const now = Date.now()
    const record: RoomRecord = { id, title: '', topic: '', visibility: 'private', kind: 'dm', createdBy: userA, createdAt: now }
    // Both sides may open it at once, on two instances: every step is "unless it is there", and the
    // members go first, so whoever sees the record sees both of them (a `dm:` room without one admits nobody).
    for (const uid of [userA, userB]) await moderation.add({ room: id, uid, role: 'member', joinedAt: now })
    await store.createRoom(record)
    membershipChanged({ type: 'member', room: id, uid: '' })
    // Their memberships were told before the record existed, when a list could not show the room: told again now.
    for (const uid of [userA, userB]) membershipChanged(memberFrame(id, uid, { room: id, uid, role: 'member', joinedAt: now }))
    return await store.roomRecord(id) ?? record
  }

  /** Ask the `chat:action` hook about a record change; throws `ChatRefusal` 403 (refused) or 503 (the hook failed). */
  async function checkRecordAction(context: Parameters<typeof actionRefusal>[1], refused: string) {
    const refusal = await actionRefusal(hooks, context, logger, refused)
    if (refusal) throw new ChatRefusal(refusal.status, refusal.error.message)
  }

  /**
   * Change a room's title, topic or visibility, as `actor` (server code by default) whom the record
   * rule lets (`allow`) or not, then the `chat:action` hook; undefined when it has no record.
   */
  async function updateRoom(room: string, given: RecordFields, actor = SERVER_ACTOR, allow = true): Promise<RoomRecord | undefined> {
    const problem = roomFieldsProblem(given)
    if (problem) throw new ChatRefusal(400, problem)
    const fields = cleanRoomFields(given)
    if (room.startsWith('dm:') && fields.visibility === 'public') throw new ChatRefusal(400, 'A direct room stays private')
    await checkRecordAction({ room, user: actor, action: 'update', fields: { ...fields }, allow }, fields.visibility === undefined ? 'You may not change this room' : 'Only owners change who may enter')
    if (!await store.updateRoom(room, fields)) return undefined
    membershipChanged({ type: 'member', room, uid: '' })
    return store.roomRecord(room)
  }

  /** Make a room record with its owner and members, as `actor` (server code by default); throws `ChatRefusal` 400 (fields), 403 (the `chat:action` hook) or 409 (the room has one). */
  async function createRoom(input: ChatRoomInput, actor = SERVER_ACTOR): Promise<RoomRecord> {
    const id = input.id ?? `room-${randomBytes(12).toString('base64url')}`
    if (!isValidRoom(id)) throw new ChatRefusal(400, 'id must be 1-64 characters of [A-Za-z0-9._:-]')
    if (id.startsWith('dm:')) throw new ChatRefusal(400, '`dm:` rooms are direct rooms: see directRoom')
    if (input.members !== undefined && !Array.isArray(input.members)) throw new ChatRefusal(400, '`members` must be a list of user ids')
    const given = { title: input.title ?? id, topic: input.topic ?? '', visibility: input.visibility ?? 'public' }
    const problem = roomFieldsProblem(given) ?? [input.owner, ...input.members ?? []].filter(uid => uid !== undefined).map(memberIdProblem).find(Boolean)
    if (problem) throw new ChatRefusal(400, problem)
    if ((input.members?.length ?? 0) > MAX_INITIAL_MEMBERS) throw new ChatRefusal(400, `at most ${MAX_INITIAL_MEMBERS} members at creation`)
    const fields = cleanRoomFields(given)
    await checkRecordAction({ room: id, user: actor, action: 'create', fields: { ...fields }, members: [...input.members ?? []], allow: true }, 'You may not make a room')
    const now = Date.now()
    const record: RoomRecord = { id, ...fields, kind: 'room', createdBy: input.owner ?? null, createdAt: now }
    if (!await store.createRoom(record)) throw new ChatRefusal(409, `Room "${id}" exists`)
    if (input.owner) await moderation.add({ room: id, uid: input.owner, role: 'owner', joinedAt: now })
    for (const uid of input.members ?? []) await moderation.add({ room: id, uid, role: 'member', joinedAt: now })
    membershipChanged({ type: 'member', room: id, uid: '' })
    return record
  }

  /** Everyone online in a room, on every instance (asking the others when no member is here). */
  async function presenceOf(name: string): Promise<ChatUser[]> {
    const room = rooms.get(name)
    if (room) {
      await room.heard
      return room.presence.online()
    }
    const query = presenceQueries.ask(name)
    if (!query) return []
    await query.done
    return usersOf(query)
  }

  /** Signed-in users' names in a room on every instance (a guest may not take a look-alike); asks the others when the room is new here. */
  async function signedInNamesOf(name: string): Promise<string[]> {
    const room = rooms.get(name)
    if (!room) return (await presenceOf(name)).filter(user => !user.guest).map(user => user.name)
    await room.heard
    return room.presence.signedInNames()
  }

  /** Tell the others in the room that `member` is typing (at most once a second per connection). */
  function typing(name: string, member: Member) {
    const room = rooms.get(name)
    const now = Date.now()
    if (!room || (member.typingAt && now - member.typingAt < TYPING_THROTTLE)) return
    member.typingAt = now
    const frame: ChatTypingFrame = { type: 'typing', room: name, user: member.user.name, uid: member.user.id, message: '' }
    if (member.user.guest) frame.guest = true
    const text = JSON.stringify(frame)
    room.delivery.broadcast(new RoomFrame(text), member)
    bus.publish({ kind: 'typing', room: name, frame: text })
  }

  // ---- other instances ----

  bus.onEvent((event: BusEvent, origin: string) => {
    if (event.kind === 'presence') presenceQueries.heard(event.room, origin, parseUsers(event.frame))
    // Rooms lists follow rooms this instance may have no member in.
    if (event.kind === 'member') {
      const frame = parseMemberEvent(event.room, event.frame)
      if (frame) membershipChangedHere(frame)
      return
    }
    if (event.kind === 'read') readState.heard(event.frame)
    else if (event.kind === 'forget' || event.kind === 'disconnect') readState.unlistHere(event.room, event.uid)
    else if (event.kind === 'message' && readState.watches(event.room)) readState.heardStored(event.room, event.frame)
    else if (event.kind === 'sync') readState.resync(event.room)
    // A position forgotten or evicted may have taken its membership along.
    if (event.kind === 'forget') access.forget(event.room, event.uid)
    // A stream's message deleted elsewhere: stopped here if this instance runs it, even with nobody in the room here.
    if (event.kind === 'message' && event.frame.startsWith(DELETE_FRAME_START) && streams.streaming(event.room)) {
      const target = parseDeleteTarget(event.frame)
      if (target !== undefined) streams.messageDeleted(event.room, target)
    }
    const room = rooms.get(event.room)
    // Asked about a room with nobody here: say so, so the asker need not wait out the bound.
    if (!room && event.kind === 'presence?') bus.publish({ kind: 'presence', room: event.room, frame: '[]' })
    if (!room) return
    switch (event.kind) {
      case 'disconnect':
        disconnectHere(event.room, event.uid)
        break
      case 'message':
        room.delivery.deliver(event.id, event.frame)
        break
      case 'system':
      case 'typing':
        room.delivery.broadcast(new RoomFrame(event.frame))
        break
      case 'presence':
        room.presence.heardFrom(origin, parseUsers(event.frame), Date.now() + 3 * config.presenceInterval)
        broadcastPresenceDiff(room)
        break
      case 'presence?':
        announcePresence(event.room, room)
        break
      case 'sync':
        room.delivery.catchUp(event.id + 1)
        break
    }
  })

  function catchUp() {
    for (const [name, room] of rooms) {
      store.lastId(name).then(id => room.delivery.catchUp(id + 1), error => logger.error('[nuxt-chat] catch-up failed', error))
    }
  }

  // After an outage: catch every local room up from the shared store (again a moment later:
  // the bus may report ready before it has resubscribed), and tell the other instances which
  // rooms got messages here that the bus dropped.
  bus.onRecover(() => {
    catchUp()
    readState.resync()
    // Joins and leaves went unheard both ways meanwhile: tell who is here, ask who is there.
    for (const [name, room] of rooms) {
      announcePresence(name, room)
      bus.publish({ kind: 'presence?', room: name })
    }
    setTimeout(catchUp, RECOVERY_RECHECK).unref?.()
    for (const name of unpublished) {
      store.lastId(name).then((id) => {
        if (bus.publish({ kind: 'sync', room: name, id })) unpublished.delete(name)
      }, error => logger.error('[nuxt-chat] catch-up failed', error))
    }
  })

  // Presence heartbeat: re-announce local users, expire instances that went quiet.
  const presenceTimer = setInterval(() => {
    for (const [name, room] of rooms) {
      announcePresence(name, room)
      broadcastPresenceDiff(room)
    }
    limits.sweep()
  }, config.presenceInterval)
  presenceTimer.unref?.()

  async function historyPage(name: string, before: number, limit: number, thread?: number): Promise<ChatHistoryFrame> {
    const rows = await store.before(name, before, limit + 1, thread)
    const more = rows.length > limit
    const messages = (more ? rows.slice(1) : rows).map(messageFrame)
    return { type: 'history', room: name, before, ...(thread === undefined ? {} : { thread }), messages, more, user: 'server', message: `${messages.length} older messages` }
  }

  return {
    join,
    leave,
    roomName: name => rooms.get(name)?.name ?? name,
    send,
    access: (room: string, user: ChatUser, need: RoomNeed) => access.decide(room, user, need),
    async seenFrame(name: string): Promise<RoomFrame | undefined> {
      let positions: Map<string, number> | undefined
      try {
        // Only rooms with a record tell "Seen by" (their record is cached since the join's admission): no store read for the others.
        positions = await access.record(name) ? await store.memberReads(name, SEEN_BY_MAX_MEMBERS) : undefined
        // A direct room's "Seen by" is its two people's.
        const pair = positions && name.startsWith('dm:') ? await access.pair(name) : undefined
        if (pair) positions = new Map([...positions!].filter(([uid]) => pair.includes(uid)))
      }
      catch (error) {
        // "Seen by" is a nicety: a store failure here never fails the join.
        logger.error('[nuxt-chat] could not read who has read what', error)
      }
      const room = rooms.get(name)
      if (room) room.seenMembers = positions && new Set(positions.keys())
      return positions && new RoomFrame(JSON.stringify({ type: 'seen', room: name, seen: Object.fromEntries(positions) }))
    },
    async admitToRoom(admission: ChatAdmission): Promise<void> {
      if (admission.rooms) return
      // Stamped before the hook: a removal while it runs overtakes this join (see `endedSince`).
      admission.admittedAt = membershipClock
      // The app first, before a direct room is made: its hook is the only one that knows whether the other person exists, or blocks this one.
      await askToJoin(admission.room, admission.user, hooks, admission.data, admission.directWith)
      if (admission.directWith !== undefined) {
        // A direct room made is a new room: the person's and address's `rooms` limit bounds how many a client makes.
        if (!await access.record(admission.room)) {
          const refused = limits.take('rooms', limitSubjectOf(admission))
          if (refused) throw new ChatLimitRefusal(refused)
        }
        await directRoom(admission.user.id, admission.directWith)
      }
      const decision = await access.decide(admission.room, admission.user, 'read')
      if (!decision.allowed) throw new ChatRefusal(decision.status, decision.message)
      if (decision.unchecked) recheckLater(admission.room)
    },
    moderate(room: string, command: ChatMemberCommand, actor?: ChatUser, subject?: LimitSubject): Promise<ModerationResult> {
      // A member's commands count as messages: a flood of them costs store reads and hook calls.
      const refused = subject && limits.take('messages', subject)
      if (refused) return Promise.resolve({ status: 429, error: limitRefusalFrame(refused) })
      return moderation.act(room, command, actor)
    },
    directRoom,
    directPair: access.pair,
    serverWriteRefusal,
    async limitedMemberNames(subject: LimitSubject, room: string) {
      const refused = limits.take('history', subject)
      return refused ? { refused } : { members: await memberNamesOf(room, MEMBERS_LISTED) }
    },
    createRoom,
    newRoomToken(subject: LimitSubject, invited = 0): LimitRefusal | undefined {
      return limits.takeNewRoom(subject, invited)
    },
    updateRoom,
    async updateRoomAs(room: string, fields: RecordFields, actor: ChatUser, subject: LimitSubject): Promise<{ record: RoomRecord } | { error: ChatErrorFrame }> {
      const refused = limits.take('messages', subject)
      if (refused) return { error: limitRefusalFrame(refused) }
      if (actor.guest || room.startsWith('dm:')) return { error: errorFrame('forbidden', 'You may not change this room') }
      let member: RoomMember | undefined
      try {
        member = await store.member(room, actor.id)
      }
      catch (error) {
        logger.error('[nuxt-chat] could not read a room\'s members', error)
        return { error: errorFrame('unavailable', 'The room could not be read; try again') }
      }
      try {
        const record = await updateRoom(room, fields, actor, mayUpdate(member, fields))
        return record ? { record } : { error: errorFrame('not_found', 'This room has no record to change') }
      }
      catch (error) {
        if (error instanceof ChatRefusal) return { error: errorFrame(refusalCode(error.status), error.message) }
        logger.error('[nuxt-chat] could not change a room', error)
        return { error: errorFrame('unavailable', 'The change could not be stored; try again') }
      }
    },
    roomRecord: (room: string) => store.roomRecord(room),
    members: (room: string, after: string | undefined, limit: number): Promise<RoomMember[]> => store.members(room, after, limit),
    typing,
    presence: presenceOf,
    history: async (name: string, before: number, limit: number, thread?: number): Promise<ChatStoredFrame[]> => (await store.before(name, before, limit, thread)).map(messageFrame),
    historyPage,
    async limitedHistoryPage(subject: LimitSubject, name: string, before: number, limit: number, thread?: number): Promise<{ text: string } | { refused: LimitRefusal }> {
      const refused = limits.take('history', subject)
      if (refused) return { refused }
      const text = JSON.stringify(await historyPage(name, before, limit, thread))
      limits.chargeHistoryBytes(subject, Buffer.byteLength(text))
      return { text }
    },
    replayRefusal(subject: LimitSubject): LimitRefusal | undefined {
      return limits.replayRefusal(subject)
    },
    joinRefusal(subject: LimitSubject): LimitRefusal | undefined {
      return limits.takeJoin(subject)
    },
    readRefusal(subject: LimitSubject): LimitRefusal | undefined {
      return limits.take('reads', subject)
    },
    uploadRefusal(subject: LimitSubject): LimitRefusal | undefined {
      return limits.take('messages', subject)
    },
    storedRooms: (after: string | undefined, limit: number) => store.rooms(after, limit),
    disconnect(name: string, userId: string): number {
      bus.publish({ kind: 'disconnect', room: name, uid: userId })
      readState.unlistHere(name, userId)
      return disconnectHere(name, userId)
    },
    markRead: (name: string, user: ChatUser, id?: number) => readState.markRead(name, user, id),
    read: readState.read,
    readFrom: readState.readFrom,
    readsPruned(positions: ReadPosition[]) {
      for (const { uid, room } of positions) {
        access.forget(room, uid)
        readState.unlistHere(room, uid)
        bus.publish({ kind: 'forget', room, uid })
      }
    },
    async forget(name: string, userId: string): Promise<boolean> {
      // The membership goes too (a ban stays, a mute until it ends): else the room would come back to their next list.
      await moderation.end(name, userId)
      access.forget(name, userId)
      const had = await readState.forget(name, userId)
      bus.publish({ kind: 'forget', room: name, uid: userId })
      return had
    },
    readStateOf: (name: string, userId: string) => store.readState(name, userId),
    async watchRooms(watcher: RoomsWatcher, subject: LimitSubject, ref?: string): Promise<void> {
      const bytes = await readState.watch(watcher, ref)
      if (bytes) limits.chargeHistoryBytes(subject, bytes)
    },
    unwatchRooms: (watcher: RoomsWatcher) => readState.unwatch(watcher),
    signedInNames: signedInNamesOf,
    search,
    streams,
    async close() {
      if (closed) return
      closed = true
      streams.close()
      clearInterval(presenceTimer)
      if (recheckTimer) clearInterval(recheckTimer)
      await bus.close()
      await store.close()
    },
  }
}

/** A `member` bus event's frame, checked (another instance wrote it, but the channel is shared). */
function parseMemberEvent(room: string, text: string): ChatMemberFrame | undefined {
  try {
    const frame = JSON.parse(text) as ChatMemberFrame
    return frame && frame.type === 'member' && frame.room === room && typeof frame.uid === 'string' ? frame : undefined
  }
  catch {
    return undefined
  }
}
