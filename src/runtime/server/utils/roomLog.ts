/** The room log: one ordered, durable list of messages per room, behind one small interface. */

import { reactorsOf, replyExcerpt, THREAD_SUMMARY_USERS, type ChatFile, type ChatMentionAll, type ChatMessageBase, type ChatStreamCut } from '../../shared/protocol'
import type { RoomDirectory } from './roomMembers'
import type { PushLog } from './roomLog.push'

/** A message as the log stores it. */
export interface StoredMessage extends ChatMessageBase {
  id: number
  guest?: true
  /** An event about another message (revision 3): `edit` (its new text) or `delete`; absent for a message. */
  kind?: StoredEventKind
  /** The message an `edit` or `delete` is about. */
  target?: number
  /** A deleted message, or an edit of one: its text is gone from the store. */
  deleted?: true
  /** A message: who reacted with what (emoji → user ids), when anyone did. */
  reactions?: Record<string, string[]>
  /** A message: the number of its latest change (revision 5); absent when it never changed. */
  rev?: number
}

/** Where a message stands in the room's sequence: its id, or the number of its latest change (revision 5). */
export const sequenceOf = (message: StoredMessage): number => Math.max(message.id, message.rev ?? 0)

/** `reaction` events keep `+emoji` (added) or `-emoji` (taken back) as their text. */
export type StoredEventKind = 'edit' | 'delete' | 'reaction'

/** What the hub hands the log to store. */
export interface AppendInput {
  room: string
  user: string
  /** Who sent it (user id or guest id): kept as the message's `uid`, and the `cid` de-duplication scope. */
  sender: string
  /** The sender is a guest. */
  guest?: boolean
  message: string
  ts: number
  cid?: string
  /** Store a change of message `target` instead of a message; a `reaction`'s `message` is the emoji (the store decides whether it is added or taken back). */
  kind?: StoredEventKind
  target?: number
  /** A message: the id of the room's message it answers (checked by the send pipeline; the excerpt is read when served). */
  replyTo?: number
  /** A message: the member ids its `@name`s named (docs/PROTOCOL.md, "Mentions"). */
  mentions?: string[]
  /** A message: an owner's or moderator's `@room` / `@here`. */
  mentionsAll?: ChatMentionAll
  /** A thread reply: its parent's id (checked by the send pipeline), and whether it is also in the room's main timeline. */
  thread?: number
  alsoInRoom?: boolean
  /** A message: its attachments, checked by the send pipeline (docs/PROTOCOL.md, "Attachments"). */
  files?: ChatFile[]
  /** A message that is an open stream from the start (docs/PROTOCOL.md, "Streaming messages"): the instance writing it; `ts` is its first heartbeat. */
  streamOwner?: string
  /** An `edit` that is a stream's final text (docs/PROTOCOL.md, "Streaming messages"): the message is not marked `edited` by it. */
  endsStream?: true
}

export interface AppendResult {
  message: StoredMessage
  /** True when `cid` was already stored for this sender: nothing new was written. */
  duplicate: boolean
}

/** Retention of one room: it counts and ages messages; a room keeps its last number when every message goes. */
export interface RetentionPolicy {
  /** Keep at most this many messages per room (0: no count limit). */
  max: number
  /** Drop messages older than this many milliseconds (0: keep regardless of age). */
  maxAge: number
}

/** A signed-in user's read position in a room (docs/PROTOCOL.md, "Read state"). */
export interface ReadState {
  room: string
  /** The id up to which the user has read. */
  read: number
  /** Live messages from others with an id in (`read`, min(`upTo`, `read` + `READ_SCAN`)], at most `MAX_UNREAD`. */
  unread: number
  /** The room's newest id when `unread` was counted. */
  upTo: number
  /** Live messages from others above `read` that mention the user (or `@room` / `@here`), at most `MAX_UNREAD`. */
  mentions: number
  /** The room's newest live message, when the state was read with it. */
  last?: StoredMessage
}

/** Whose position in which room. */
export interface ReadPosition {
  uid: string
  room: string
}

/** What `joinRead` did. */
export interface JoinedRead {
  /** The position was made now (the user was not in the room). */
  created: boolean
  /** Rooms whose positions went to keep the user within `max`. */
  evicted: string[]
}

/** Unread counts stop here (the count of matching rows; the rows scanned are bounded by `READ_SCAN`). */
export const MAX_UNREAD = 1000

/** Messages an unread count scans at most above the position, and a room's last message is looked for among: own and deleted messages do not count but cost a row each. */
export const READ_SCAN = 10_000

/** Most members one message mentions by name (docs/PROTOCOL.md, "Mentions"). */
export const MAX_MENTIONS = 50
/** The user id a mention row of `@room` / `@here` is kept under: no user's (ids are never empty). */
export const MENTION_ALL_UID = ''

/** Different emojis one message can carry, and reactions one person can put on one message (enforced by the store, atomically per message). */
export const MAX_EMOJIS_PER_MESSAGE = 20
export const MAX_REACTIONS_PER_PERSON = 5

/** The log of every room, with the rooms' records and members (./roomMembers.ts). */
export interface RoomLog extends RoomDirectory, PushLog {
  /**
   * Store a message or a change; the log assigns its number (strictly increasing within a room,
   * never reused). A change (`kind`) is checked and applied to its target atomically per message
   * (one conditional statement, or one transaction): the target must be a live message (else
   * `RoomLogRefusal` `not_found`); an `edit` gives it its text (unless a newer edit did), a
   * `delete` removes its text and that of its edits, a `reaction` adds `sender`'s emoji (stored
   * as `+emoji`) or takes it back (`-emoji`) within `MAX_EMOJIS_PER_MESSAGE` and
   * `MAX_REACTIONS_PER_PERSON` (else `RoomLogRefusal` `rejected`). The target's `rev` becomes
   * the change's number.
   */
  append: (input: AppendInput) => Promise<AppendResult>
  /**
   * Messages (never changes) with their current state, in the order of `sequenceOf`. With
   * `after` undefined: the last `limit` messages of the room. Else the newest `limit` messages
   * after `after`, and the `limit` most recently changed messages at or below it with `rev > after`.
   */
  replaySince: (room: string, after: number | undefined, limit: number) => Promise<StoredMessage[]>
  /**
   * The newest `limit` messages (never changes) with `id < before`, oldest first (older history, a
   * page at a time): of the room's main timeline (thread replies only when also in the room), or
   * with `thread`, that thread's replies.
   */
  before: (room: string, before: number, limit: number, thread?: number) => Promise<StoredMessage[]>
  /** Messages and changes numbered `after < id < before`, in order (fills a delivery gap). */
  between: (room: string, after: number, before: number) => Promise<StoredMessage[]>
  /** What `sender` stored with `cid` in the room, if anything (the de-duplication an append does, without appending). */
  byCid: (room: string, sender: string, cid: string) => Promise<StoredMessage | undefined>
  /** One stored message (not a change) by id. */
  message: (room: string, id: number) => Promise<StoredMessage | undefined>
  /** The newest number of the room (message or change), 0 when it never had one; it stays when retention removes every message. */
  lastId: (room: string) => Promise<number>
  /** Apply retention to one room, deleting at most `limit` messages (default 1000) and `limit` of the changes it allows; resolves to how many rows went. */
  prune: (room: string, policy: RetentionPolicy, limit?: number) => Promise<number>
  /** Move `uid`'s existing read position in `room` forward to `id` (at most the room's newest id; absent: the newest); resolves to the position stored, undefined when they have none (a read never creates one). */
  markRead: (room: string, uid: string, id?: number) => Promise<number | undefined>
  /** Delete `uid`'s read position in `room`; true when there was one. */
  forgetRead: (room: string, uid: string) => Promise<boolean>
  /**
   * Create `uid`'s read position in `room` at its newest id unless there is one. With `max`
   * (> 0), a created one leaves at most `max` positions to `uid`: the least recently moved others
   * go, with a plain membership of a public room (joined or spoken in) that goes with them; a
   * kept membership (a role above `member`, a private room) neither goes nor counts. `movedAt`:
   * when the position counts as last moved (default now; 0 for one another person's invite made,
   * so the person's own rooms outlast it under the cap).
   */
  joinRead: (room: string, uid: string, max?: number, movedAt?: number) => Promise<JoinedRead>
  /**
   * Delete up to `limit` read positions not moved for `maxAge` ms in rooms whose newest message is
   * older than that too, or that hold none (retention emptied or removed them), with their plain
   * memberships of public rooms (never a kept one, as `joinRead`); resolves to those that went.
   */
  pruneReads: (maxAge: number, limit: number) => Promise<ReadPosition[]>
  /** `uid`'s read position in `room` with its unread count (and the newest live message with `withLast`); undefined when they have none. */
  readState: (room: string, uid: string, withLast?: boolean) => Promise<ReadState | undefined>
  /** Rooms where `uid` has a read position, most recently moved first, at most `limit`. */
  readRooms: (uid: string, limit: number) => Promise<string[]>
  /** The read position of each of `room`'s members (not banned; 0: none); undefined when it has none or more than `limit` ("Seen by"). */
  memberReads: (room: string, limit: number) => Promise<Map<string, number> | undefined>
  /**
   * Rooms `uid` is a member of (not banned): their rooms list. Most recently active first (their
   * position last moved, else when they joined), at most `limit`.
   */
  memberRooms: (uid: string, limit: number) => Promise<string[]>
  /** Up to `limit` room names after `after`, in name order (all rooms, a page at a time). */
  rooms: (after: string | undefined, limit: number) => Promise<string[]>
  /**
   * Live messages (never changes, never deleted ones) of `query.rooms` holding every word, by
   * their current text, newest first in the store's order, a page at a time (docs/PROTOCOL.md,
   * "Search"). A cursor this store did not make throws `RoomLogInputError`.
   */
  search: (query: SearchQuery) => Promise<SearchPage>
  /** Store an open stream's text so far and its owner's heartbeat; false when it is no longer `owner`'s open stream, or was deleted. */
  streamCheckpoint: (room: string, id: number, owner: string, text: string, beat: number) => Promise<boolean>
  /** Close `owner`'s open stream of message `id` (with `incomplete`: it was cut), atomically: true for the one caller that closed it. */
  streamEnd: (room: string, id: number, owner: string, incomplete?: ChatStreamCut) => Promise<boolean>
  /** Up to `limit` open streams whose owner's last heartbeat is before `beat`: a dead instance's. */
  staleStreams: (beat: number, limit: number) => Promise<OpenStream[]>
  close: () => Promise<void>
}

/** An open stream as the store holds it (`staleStreams`). */
export interface OpenStream {
  room: string
  id: number
  owner: string
  /** Its author, and the text checkpointed so far. */
  user: string
  uid: string
  message: string
}

/** What the log searches: the rooms were checked for the person already. */
export interface SearchQuery {
  /** Folded words (`searchWords`): a message must hold them all. */
  words: string[]
  /** The same words as typed, joined by spaces (PostgreSQL's parser folds them itself). */
  text: string
  /** The rooms to search (at least one). */
  rooms: string[]
  /** Only this sender (`uid`). */
  author?: string
  /** Only messages with `ts < before`. */
  before?: number
  /** Only messages with `ts >= after`. */
  after?: number
  /** The previous page's `cursor`. */
  cursor?: string
  limit: number
}

/** A page of search hits, and where the next one starts (absent: no more). */
export interface SearchPage {
  messages: StoredMessage[]
  cursor?: string
}

/** PostgreSQL indexes (and searches) the first this many characters of a message: a tsvector holds at most 1 MB. */
export const SEARCH_INDEXED_TEXT = 100_000

/** A store's position in its search order as an opaque cursor (base64url JSON). */
export function encodeSearchCursor(position: (string | number)[]): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url')
}

/** A cursor `encodeSearchCursor` made with this shape (`kinds`: `s` string, `n` integer); else `RoomLogInputError`. */
export function decodeSearchCursor(cursor: string, kinds: string): (string | number)[] {
  let position: unknown
  try {
    position = JSON.parse(Buffer.from(cursor, 'base64url').toString())
  }
  catch {
    position = undefined
  }
  const fits = Array.isArray(position) && position.length === kinds.length
    && position.every((value, index) => kinds[index] === 'n' ? Number.isSafeInteger(value) : typeof value === 'string' && value.length <= 64)
  if (!fits) throw new RoomLogInputError('`cursor` must be the `cursor` of a previous page')
  return position as (string | number)[]
}

/** A value the store must not hold (NUL, a lone surrogate, a bad `cid`, too long): the sender's fault, not the database's. */
export class RoomLogInputError extends Error {
  readonly code = 'bad_request'
}

// NUL (PostgreSQL refuses it in text) and lone surrogates (not valid UTF-8) cannot be stored as text.
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
/** Room names and cids (docs/PROTOCOL.md, "Endpoints" and "cid de-duplication"): 1-64 of `[A-Za-z0-9._:-]`. */
const KEY = /^[\w.:-]{1,64}$/
/** Longest message body any store accepts, whatever `maxLength` says (UTF-16 code units). */
export const MAX_STORED_TEXT = 1_000_000
const MAX_STORED_NAME = 256

/** Throw `RoomLogInputError` unless every field of `input` can be stored as it is. */
export function checkAppendInput(input: AppendInput): void {
  const text = (field: string, value: unknown, max: number) => {
    if (typeof value !== 'string' || value.length > max || UNSTORABLE.test(value)) {
      throw new RoomLogInputError(`\`${field}\` cannot be stored (NUL, lone surrogate or longer than ${max})`)
    }
  }
  if (typeof input.room !== 'string' || !KEY.test(input.room)) throw new RoomLogInputError('`room` must be 1-64 characters of [A-Za-z0-9._:-]')
  if (input.cid !== undefined && (typeof input.cid !== 'string' || !KEY.test(input.cid))) throw new RoomLogInputError('`cid` must be 1-64 characters of [A-Za-z0-9._:-]')
  text('user', input.user, MAX_STORED_NAME)
  text('sender', input.sender, MAX_STORED_NAME)
  text('message', input.message, MAX_STORED_TEXT)
  if (!Number.isSafeInteger(input.ts)) throw new RoomLogInputError('`ts` must be an integer')
  if (input.replyTo !== undefined && (input.kind !== undefined || !Number.isSafeInteger(input.replyTo) || input.replyTo < 1)) throw new RoomLogInputError('`replyTo` must be a message id, on a message')
  if (input.mentions !== undefined && (!Array.isArray(input.mentions) || input.mentions.length > MAX_MENTIONS || input.mentions.some(uid => typeof uid !== 'string' || !uid || uid.length > MAX_STORED_NAME || UNSTORABLE.test(uid)))) throw new RoomLogInputError(`\`mentions\` must be at most ${MAX_MENTIONS} user ids`)
  if (input.mentionsAll !== undefined && input.mentionsAll !== 'room' && input.mentionsAll !== 'here') throw new RoomLogInputError('`mentionsAll` must be room or here')
  if (input.thread !== undefined && (input.kind !== undefined || !Number.isSafeInteger(input.thread) || input.thread < 1)) throw new RoomLogInputError('`thread` must be a message id, on a message')
  if (input.alsoInRoom && input.thread === undefined) throw new RoomLogInputError('`alsoInRoom` is for thread replies')
  if (input.streamOwner !== undefined && (input.kind !== undefined || typeof input.streamOwner !== 'string' || !input.streamOwner || input.streamOwner.length > MAX_STORED_NAME)) throw new RoomLogInputError('`streamOwner` must be an instance id, on a message')
  if (input.kind !== undefined && (!['edit', 'delete', 'reaction'].includes(input.kind) || !Number.isSafeInteger(input.target) || input.target! < 1)) throw new RoomLogInputError('an event needs a `kind` (edit, delete, reaction) and a positive `target`')
}

/** The store refused a change for what it found, atomically: its target is gone (`not_found`) or a reaction bound is reached (`rejected`). */
export class RoomLogRefusal extends Error {
  constructor(readonly code: 'not_found' | 'rejected', message: string) {
    super(message)
  }
}

/** Why the store refuses a change of `target` given the target's state (undefined: it may go ahead); `reaction`: the emoji. */
export function changeRefusal(target: StoredMessage | undefined, input: AppendInput): RoomLogRefusal | undefined {
  if (!target || target.kind || target.deleted) return new RoomLogRefusal('not_found', `No message ${input.target} in this room`)
  if (input.kind !== 'reaction') return undefined
  const reactions = target.reactions ?? {}
  const reactors = reactorsOf(reactions, input.message)
  if (reactors?.includes(input.sender)) return undefined
  if (!reactors && Object.keys(reactions).length >= MAX_EMOJIS_PER_MESSAGE) return new RoomLogRefusal('rejected', `At most ${MAX_EMOJIS_PER_MESSAGE} different reactions per message`)
  const mine = Object.values(reactions).filter(users => users.includes(input.sender)).length
  if (mine >= MAX_REACTIONS_PER_PERSON) return new RoomLogRefusal('rejected', `At most ${MAX_REACTIONS_PER_PERSON} reactions per person on one message`)
  return undefined
}

/** A thread summary's people: the distinct senders of its replies, newest first (`senders` newest first), at most `THREAD_SUMMARY_USERS`. */
export function lastRepliers(senders: string[]): string[] {
  return [...new Set(senders)].slice(0, THREAD_SUMMARY_USERS)
}

/** The message an append stored, as the log gives it back. */
export function storedMessage(id: number, input: AppendInput, text = input.message): StoredMessage {
  const message: StoredMessage = { id, room: input.room, user: input.user, message: text, ts: input.ts }
  if (input.cid !== undefined) message.cid = input.cid
  if (input.sender) message.uid = input.sender
  if (input.guest) message.guest = true
  // Filled with the original's author and excerpt when served (`fillReplies`).
  if (input.replyTo !== undefined) message.replyTo = { id: input.replyTo, user: '', excerpt: '', deleted: true }
  if (input.mentions?.length) message.mentions = input.mentions
  if (input.mentionsAll) message.mentionsAll = input.mentionsAll
  if (input.thread !== undefined) message.thread = input.thread
  if (input.thread !== undefined && input.alsoInRoom) message.alsoInRoom = true
  if (input.files?.length) message.files = input.files
  if (input.streamOwner !== undefined) message.streaming = true
  if (input.kind) {
    message.kind = input.kind
    message.target = input.target
  }
  return message
}

/** What a reply shows of its original (`undefined`: gone, deleted or removed by retention). */
export function replyOf(id: number, original: Pick<StoredMessage, 'user' | 'uid' | 'message' | 'deleted'> | undefined): NonNullable<StoredMessage['replyTo']> {
  if (!original || original.deleted) return { id, user: original?.user ?? '', ...(original?.uid === undefined ? {} : { uid: original.uid }), excerpt: '', deleted: true }
  return { id, user: original.user, ...(original.uid === undefined ? {} : { uid: original.uid }), excerpt: replyExcerpt(original.message) }
}
