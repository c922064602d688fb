/**
 * The nuxt-chat wire protocol (docs/PROTOCOL.md), shared by the server and `useChat()`.
 * Pure functions only: this file is imported on both sides.
 */

/** A participant as the room sees them. */
export interface ChatUser {
  /** The server's id for them: the app's user id, or `guest:` + 22 characters for a guest. */
  id: string
  name: string
  /** A peer the app did not identify; never set for a signed-in user. */
  guest?: true
}

/** A stored chat message, live or replayed. */
/**
 * What a message is everywhere: on the wire (`ChatMessageFrame`), in the store (`StoredMessage`)
 * and in the client's log (`ChatMessage`), each of which adds its own fields.
 */
export interface ChatMessageBase {
  room: string
  /** The sender's display name at the time of sending. */
  user: string
  message: string
  /** Milliseconds since the epoch, server clock. */
  ts: number
  /** The client's id for the message: a resend with it is stored once. */
  cid?: string
  /** The sender's id (absent on messages stored before nuxt-chat 0.2). */
  uid?: string
  /** The sender was a guest. */
  guest?: boolean
  /** The id of the message's latest edit: it was edited. */
  edited?: number
  /** The message it answers, with an excerpt of that message's current text (docs/PROTOCOL.md, "Replies"). */
  replyTo?: ChatReplyTo
  /** The user ids of the members its `@name`s named, resolved by the server when it was sent (docs/PROTOCOL.md, "Mentions"). */
  mentions?: string[]
  /** An owner's or moderator's `@room` (every member) or `@here` (every member online). */
  mentionsAll?: ChatMentionAll
  /** A thread reply: its parent's id (docs/PROTOCOL.md, "Threads"). Kept out of the room's main timeline unless `alsoInRoom`. */
  thread?: number
  /** A thread reply also sent to the room's main timeline. */
  alsoInRoom?: true
  /** A thread's parent: its replies so far, as the store served it (a client applies newer replies itself). */
  replies?: ChatThreadSummary
  /** Its attachments (docs/PROTOCOL.md, "Attachments"). */
  files?: ChatFile[]
  /** A message still being written by a stream (docs/PROTOCOL.md, "Streaming messages"): `delta` frames make it grow. */
  streaming?: true
  /** A streamed message that was cut: why (docs/PROTOCOL.md, "Streaming messages"). */
  incomplete?: ChatStreamCut
}

/** An attachment as an upload answers it and a message carries it (docs/PROTOCOL.md, "Attachments"). */
export interface ChatFile {
  /** 22 characters from `[A-Za-z0-9_-]`. */
  id: string
  /** The name the uploader gave (at most `MAX_FILE_NAME_LENGTH` characters). */
  name: string
  /** Bytes. */
  size: number
  /** The MIME type read from the file's bytes. */
  type: string
  /** Images: their size in pixels, read from the bytes. */
  width?: number
  height?: number
  /** Images: a small preview the uploader's browser made (at most `MAX_PREVIEW_SIDE` pixels a side, `MAX_PREVIEW_BYTES`), a `data:` URL of a PNG, JPEG or WebP checked by its bytes. */
  preview?: string
}

/** A preview's largest side, in pixels, and its largest size, in bytes (before base64). */
export const MAX_PREVIEW_SIDE = 64
export const MAX_PREVIEW_BYTES = 4096

/** Longest attachment name, in UTF-16 code units. */
export const MAX_FILE_NAME_LENGTH = 255

/** Image types a browser may show inline: every other attachment is served as a download. */
export const INLINE_IMAGE_TYPES: readonly string[] = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']

/** Is `value` an attachment id: 22 characters from `[A-Za-z0-9_-]`? */
export function isFileId(value: unknown): value is string {
  return typeof value === 'string' && /^[\w-]{22}$/.test(value)
}

/** Why a streamed message was cut short. */
export type ChatStreamCut = 'stopped' | 'error' | 'too_long' | 'rate_limited' | 'interrupted'

/** Text appended to a streaming message (docs/PROTOCOL.md, "Streaming messages"): not stored, outside the room's order. */
export interface ChatDeltaFrame {
  type: 'delta'
  room: string
  /** The streaming message. */
  id: number
  /** Where `text` goes in the message's text (UTF-16 code units): 0 with the whole text so far on a catch-up. */
  offset: number
  text: string
  /** The writer's name and id. */
  user: string
  uid: string
  message: ''
}

/** Apply a delta to the text a client holds: the new text, or `undefined` when it leaves a gap (nothing to apply). */
export function applyDelta(text: string, delta: Pick<ChatDeltaFrame, 'offset' | 'text'>): string | undefined {
  if (delta.offset > text.length) return undefined
  const end = delta.offset + delta.text.length
  // Already held (a repeat, or a catch-up behind what arrived live): keep what is there.
  if (end <= text.length) return text
  return text.slice(0, delta.offset) + delta.text
}

/** What a thread's parent shows of its replies. */
export interface ChatThreadSummary {
  count: number
  /** The newest reply's id and time. */
  lastId: number
  lastTs: number
  /** The last people who answered (user ids, newest first, at most `THREAD_SUMMARY_USERS`). */
  users: string[]
}

/** People a thread summary names. */
export const THREAD_SUMMARY_USERS = 3

/** What a reply shows of the message it answers. */
export interface ChatReplyTo {
  id: number
  /** The original's author's name (`""` once retention removed it). */
  user: string
  uid?: string
  /** The first `REPLY_EXCERPT_LENGTH` code points of the original's current text (empty once deleted). */
  excerpt: string
  /** The original was deleted (or retention removed it). */
  deleted?: true
}

/** `@room` or `@here` from an owner or moderator. */
export type ChatMentionAll = 'room' | 'here'

/** Code points of the original a reply's excerpt keeps. */
export const REPLY_EXCERPT_LENGTH = 100

/** A reply's excerpt of `text`: its first `REPLY_EXCERPT_LENGTH` code points (as SQL's `substr` counts them). */
export function replyExcerpt(text: string): string {
  if (text.length <= REPLY_EXCERPT_LENGTH) return text
  let end = 0
  for (let count = 0; count < REPLY_EXCERPT_LENGTH && end < text.length; count++) end += text.codePointAt(end)! > 0xFFFF ? 2 : 1
  return text.slice(0, end)
}

export interface ChatMessageFrame extends ChatMessageBase {
  type: 'message'
  /** An answer to a repeated cid, outside the room's order: never moves a resume cursor (revision 2). */
  duplicate?: true
  /** Strictly increasing within a room; assigned by the store. */
  id: number
  guest?: true
  /** A tombstone (revision 3): the message was deleted; `message` is empty. Clients do not show it. */
  deleted?: true
  /** Who reacted with what (revision 3): emoji → user ids; absent when nobody did. */
  reactions?: Record<string, string[]>
  /**
   * Replayed frames only (revision 5): the room's number up to which this state is current. A
   * client moves its resume cursor to it (it may skip numbers) and lets the state replace an older
   * one it holds for the same id.
   */
  rev?: number
}

/**
 * A stored event about message `target` (revision 3): `edit` carries the new text, `delete`
 * removes the message. Numbered in the room's id sequence like messages, replayed in place.
 */
export interface ChatEventFrame extends Omit<ChatMessageFrame, 'type' | 'edited' | 'reactions'> {
  type: 'edit' | 'delete'
  /** The message it is about. `user` / `uid`: who made the change; `message`: an edit's new text (empty once the message was deleted, then `deleted` is set), a delete's notice for clients that only show text. */
  target: number
  /** An edit that ended a stream: its final text (docs/PROTOCOL.md, "Streaming messages"). */
  ended?: true
}

/** A stored reaction (revision 3): `uid` added (`on`) or took back its `emoji` on message `target`; `message` is the emoji. */
export interface ChatReactionFrame extends Omit<ChatMessageFrame, 'type' | 'edited' | 'reactions' | 'deleted'> {
  type: 'reaction'
  target: number
  emoji: string
  on: boolean
}

/** Every frame that stands for a stored row of a room's log. */
export type ChatStoredFrame = ChatMessageFrame | ChatEventFrame | ChatReactionFrame

export interface ChatSystemFrame {
  type: 'system'
  event: 'welcome' | 'join' | 'leave'
  room: string
  user: 'server'
  message: string
  /** The peer this frame is about (the newcomer for `welcome`; the first of `peers`). */
  peer?: ChatUser
  /** `join` / `leave` of several users in one server turn (revision 4): all of them, in order. */
  peers?: ChatUser[]
  /** `welcome`: the newcomer's role in the room (absent: no membership). */
  role?: ChatMemberRole
  /** `welcome`: muted in the room until then (epoch ms). */
  mutedUntil?: number
}

export interface ChatPresenceFrame {
  type: 'presence'
  room: string
  users: ChatUser[]
  user: 'server'
  message: string
}

/** Who joined and who left since the last presence frame: apply `leaves`, then `joins`. */
export interface ChatPresenceDiffFrame {
  type: 'presence_diff'
  room: string
  joins: ChatUser[]
  leaves: ChatUser[]
  /** Users online after this change. */
  count: number
  user: 'server'
  message: string
}

export interface ChatTypingFrame {
  type: 'typing'
  room: string
  /** Display name of who is typing. */
  user: string
  /** User id of who is typing. */
  uid: string
  guest?: true
  message: ''
}

export interface ChatPongFrame {
  type: 'pong'
  user: 'server'
  message: 'pong'
}

export type ChatErrorCode = 'too_long' | 'empty' | 'rate_limited' | 'bad_request' | 'rejected' | 'unavailable' | 'unauthorized' | 'forbidden' | 'name_refused' | 'not_found' | 'muted'

export interface ChatErrorFrame {
  type: 'error'
  code: ChatErrorCode
  user: 'server'
  message: string
  cid?: string
  /** `rate_limited` (revision 6): whose count refused, the person's or the client address's. */
  scope?: ChatLimitScope
  /** `rate_limited` (revision 6): which limit refused. */
  limit?: ChatLimitName
  /** `rate_limited` (revision 6): whole seconds until a retry can pass (HTTP also sends `Retry-After`). */
  retryAfter?: number
  /** `muted`: until when (epoch ms). */
  mutedUntil?: number
}

/** The roles of a room's members, highest first. */
export type ChatMemberRole = 'owner' | 'moderator' | 'member'

/** A moderation command's answer (docs/PROTOCOL.md, "Moderation commands"): the person's membership as it now is (`role` absent: none). */
export interface ChatMemberFrame {
  type: 'member'
  room: string
  uid: string
  role?: ChatMemberRole
  mutedUntil?: number
  banned?: true
  /** The membership ended (removed or banned): their connections to the room end. */
  removed?: true
}

/** The moderation commands (docs/PROTOCOL.md, "Moderation commands"): one list for both versions, the server and its hooks. */
export const MEMBER_COMMANDS = ['invite', 'remove', 'mute', 'ban', 'unban', 'role'] as const
export type ChatMemberAction = typeof MEMBER_COMMANDS[number]
/** A moderation command, acting on `user` in the connection's room. */
export type ChatMemberCommand = { type: Exclude<ChatMemberAction, 'mute' | 'role'>, user: string } | { type: 'mute', user: string, until?: number } | { type: 'role', user: string, role: ChatMemberRole }

/** Whether a command's `type` names a moderation command. */
export function isMemberCommandType(type: unknown): type is ChatMemberAction {
  return (MEMBER_COMMANDS as readonly unknown[]).includes(type)
}

/** Whether a parsed command is a moderation command (narrows it). */
export function isMemberCommand<T extends { type: string }>(command: T): command is Extract<T, { type: ChatMemberAction }> {
  return isMemberCommandType(command.type)
}

/** Whose count a `rate_limited` refusal came from (docs/PROTOCOL.md, "Refusals"). */
export type ChatLimitScope = 'person' | 'address'
/** Which limit a `rate_limited` refusal came from. */
export type ChatLimitName = 'messages' | 'history' | 'reads' | 'rooms' | 'joins' | 'connections'

/**
 * A page of older history, to the connection that asked only (revision 3): the newest stored
 * messages with an id below `before`, oldest first. Outside the room's order: it never moves a
 * resume cursor. `more`: older messages exist.
 */
export interface ChatHistoryFrame {
  type: 'history'
  room: string
  before: number
  /** A thread's page: its parent's id. */
  thread?: number
  /** Messages and, since revision 3, the edit / delete events among them, in id order. */
  messages: ChatStoredFrame[]
  more: boolean
  user: 'server'
  message: string
}

/** A signed-in user's read position in a room (revision 3, "Read state"), to every connection of theirs in the room. */
export interface ChatReadFrame {
  type: 'read'
  room: string
  /** Whose position it is. */
  uid: string
  /** The id up to which they have read. */
  read: number
  /** Live messages from others with an id in (`read`, `upTo`], at most 1000. */
  unread: number
  /** The room's newest id when `unread` was counted: a client adds the messages it receives above it. */
  upTo: number
  user: 'server'
  message: string
}

/** One room of a user's rooms list (revision 3, "Rooms list"). */
export interface ChatRoomState {
  room: string
  read: number
  unread: number
  upTo: number
  /** The room's newest live message. */
  last?: ChatMessageFrame
  /** A room with a record: its title (a direct room: the other member's name, or id). */
  title?: string
  kind?: 'room' | 'dm'
  visibility?: 'public' | 'private'
  /** A direct room: the other member's user id. */
  with?: string
  /** The user's role in the room, where they are a member. */
  role?: ChatMemberRole
  /** Unread messages that mention the user (docs/PROTOCOL.md, "Mentions"), at most 1000. */
  mentions?: number
}

/** The whole rooms list, first on a `?rooms` connection. */
export interface ChatRoomsFrame {
  type: 'rooms'
  /** Version 2: the `rooms` command's ref. */
  ref?: string
  rooms: ChatRoomState[]
  user: 'server'
  message: string
}

/** One entry of the rooms list changed (or was added). */
export interface ChatRoomFrame extends ChatRoomState {
  type: 'room'
  /** The room left the list (the user's position is gone, or the app disconnected them from it). */
  removed?: true
  user: 'server'
  message: string
}

/** Every frame a server sends. */
export type ChatServerFrame = ChatDeltaFrame | ChatMessageFrame | ChatEventFrame | ChatReactionFrame | ChatSystemFrame | ChatPresenceFrame | ChatPresenceDiffFrame | ChatTypingFrame | ChatPongFrame | ChatErrorFrame | ChatHistoryFrame | ChatReadFrame | ChatRoomsFrame | ChatRoomFrame | ChatMemberFrame

/** What a client may send over WebSocket (raw text is a `message`). */
export type ChatClientCommand
  = | { type: 'message', message: string, cid?: string, replyTo?: number, thread?: number, alsoInRoom?: true, files?: string[] }
    | { type: 'ping' }
    | { type: 'typing' }
    | { type: 'history', before: number, limit: number, thread?: number }
    | { type: 'edit', target: number, message: string, cid?: string }
    | { type: 'delete', target: number, cid?: string }
    | { type: 'reaction', target: number, emoji: string, cid?: string }
    | { type: 'read', id?: number, room?: string }
    | { type: 'stop', id: number }
    | ChatMemberCommand

/** Largest id or cursor a client may send and the server accepts, over WebSocket and HTTP alike (docs/PROTOCOL.md, "Ids and cursors"). */
export const MAX_ID = Number.MAX_SAFE_INTEGER

/** Is `value` an id a client may send: an integer from `min` (1 for a message id, 0 for a cursor) to `MAX_ID`? */
export function isIdInRange(value: unknown, min = 1): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= MAX_ID
}

/** Latest time a client or server code may give (epoch ms): the latest a JavaScript `Date` holds (docs/PROTOCOL.md, "Times"). */
export const MAX_TIME = 8_640_000_000_000_000

/** Is `value` a time one may give: an integer of epoch ms from 0 to `MAX_TIME` (every one makes a valid `Date`)? */
export function isTimeInRange(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_TIME
}

/** What a time field that is not a time is told (docs/PROTOCOL.md, "Times"). */
export const timeProblem = (field: string) => `\`${field}\` must be a time in epoch milliseconds: an integer from 0 to ${MAX_TIME}`

/** An id written in decimal (query string, header, bus line): at most 16 digits and at most `MAX_ID`; `undefined` otherwise. */
export function parseIdText(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined
  const id = Number(text)
  return id <= MAX_ID ? id : undefined
}

/** Messages in one page of older history: at most this many, 50 when not asked. */
export const HISTORY_PAGE_MAX = 200
export const HISTORY_PAGE_DEFAULT = 50

/**
 * Parse a history request's `before` and `limit` (command fields or query parameters): `before`
 * a positive integer (absent: the newest), `limit` 1 to `HISTORY_PAGE_MAX`. A string saying why, if not.
 */
export function parseHistoryRequest(before: unknown, limit: unknown): { before: number, limit: number } | string {
  const number = (value: unknown) => typeof value === 'string' ? parseIdText(value) ?? value : value
  const at = before === undefined ? MAX_ID : number(before)
  const size = limit === undefined ? HISTORY_PAGE_DEFAULT : number(limit)
  if (!isIdInRange(at)) return `\`before\` must be an integer from 1 to ${MAX_ID}`
  if (!Number.isSafeInteger(size) || (size as number) < 1 || (size as number) > HISTORY_PAGE_MAX) return `\`limit\` must be an integer from 1 to ${HISTORY_PAGE_MAX}`
  return { before: at as number, limit: size as number }
}

/** The room a client joins without `?room=` (the seed's topic). */
export const DEFAULT_ROOM = 'chat'
// Room names and cids: storable and comparable the same everywhere (no NUL, no lone surrogates).
const KEY_PATTERN = /^[\w.:-]{1,64}$/

/** Is `room` a valid room name (1–64 of `[A-Za-z0-9._:-]`)? */
export function isValidRoom(room: unknown): room is string {
  return typeof room === 'string' && KEY_PATTERN.test(room)
}

/** Parse a `since` cursor; anything that is not an integer from 0 to `MAX_ID` means "no cursor". */
export function parseCursor(value: unknown): number | undefined {
  if (typeof value === 'number') return isIdInRange(value, 0) ? value : undefined
  return typeof value === 'string' ? parseIdText(value) : undefined
}

/** Is `cid` a usable client id (1–64 characters from `[A-Za-z0-9._:-]`)? */
export function isValidCid(cid: unknown): cid is string {
  return typeof cid === 'string' && KEY_PATTERN.test(cid)
}

export type ParsedClientFrame = ChatClientCommand | { type: 'invalid', reason: string, cid?: string }

/**
 * Turn one text frame into a command. Text that is not a JSON command is a chat message
 * (the seed page sends raw text), the exact text `ping` is a ping, and a JSON object
 * without a known `type` is ordinary text.
 */
export function parseClientFrame(text: string): ParsedClientFrame {
  if (text === 'ping') return { type: 'ping' }
  // Only text that looks like an object can be a command; skip JSON.parse for everything else.
  if (text.charCodeAt(0) !== 123 /* { */) return { type: 'message', message: text }
  let data: unknown
  try {
    data = JSON.parse(text)
  }
  catch {
    return { type: 'message', message: text }
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) return { type: 'message', message: text }
  const command = data as Record<string, unknown>
  const cid = isValidCid(command.cid) ? command.cid : undefined
  if (isMemberCommandType(command.type)) {
    const parsed = parseMemberCommand(command)
    return typeof parsed === 'string' ? { type: 'invalid', reason: parsed } : parsed
  }
  switch (command.type) {
    case 'ping':
      return { type: 'ping' }
    case 'typing':
      return { type: 'typing' }
    case 'history': {
      const request = parseHistoryRequest(command.before, command.limit)
      if (command.thread !== undefined && !isIdInRange(command.thread)) return { type: 'invalid', reason: '`thread` must be a message id' }
      return typeof request === 'string' ? { type: 'invalid', reason: request } : { type: 'history', ...request, ...(command.thread === undefined ? {} : { thread: command.thread as number }) }
    }
    case 'read': {
      const read = parseReadCommand(command)
      return typeof read === 'string' ? { type: 'invalid', reason: read } : read
    }
    case 'stop':
      return isIdInRange(command.id) ? { type: 'stop', id: command.id } : { type: 'invalid', reason: '`id` must be a message id' }
    case 'message':
    case 'edit':
    case 'delete':
    case 'reaction': {
      const parsed = parseSendCommand(command)
      return typeof parsed === 'string' ? { type: 'invalid', reason: parsed, cid } : parsed
    }
    default:
      return { type: 'message', message: text }
  }
}

const MEMBER_ROLES: readonly string[] = ['owner', 'moderator', 'member']

/** A moderation command's fields (`type` one of them); a string saying what is wrong, if anything. */
export function parseMemberCommand(command: Record<string, unknown>): ChatMemberCommand | string {
  const { type, user, role, until } = command
  if (typeof user !== 'string' || !user || user.length > 256) return '`user` must be a user id (1-256 characters)'
  switch (type) {
    case 'mute':
      if (until !== undefined && !isTimeInRange(until)) return timeProblem('until')
      return until === undefined ? { type, user } : { type, user, until: until as number }
    case 'role':
      if (typeof role !== 'string' || !MEMBER_ROLES.includes(role)) return '`role` must be owner, moderator or member'
      return { type, user, role: role as ChatMemberRole }
    case 'invite':
    case 'remove':
    case 'ban':
    case 'unban':
      return { type, user }
    default:
      return '`type` must be invite, remove, mute, ban, unban or role'
  }
}

/**
 * The fields of a command that stores something (`message`, `edit`, `delete`), from a WebSocket
 * frame or a POST body (`type` absent: `message`); a string saying what is wrong, if anything.
 */
export function parseSendCommand(command: Record<string, unknown>): Extract<ChatClientCommand, { type: 'message' | 'edit' | 'delete' | 'reaction' }> | string {
  const { type = 'message', message, cid, target, emoji } = command
  if (cid !== undefined && !isValidCid(cid)) return '`cid` must be 1-64 characters from [A-Za-z0-9._:-]'
  const withCid = cid === undefined ? {} : { cid }
  if (type !== 'message' && type !== 'edit' && type !== 'delete' && type !== 'reaction') return '`type` must be message, edit, delete or reaction'
  const { replyTo, thread, alsoInRoom } = command
  if (replyTo !== undefined && type !== 'message') return `\`replyTo\` is for messages, not ${type}s`
  if (thread !== undefined && type !== 'message') return `\`thread\` is for messages, not ${type}s`
  if (thread !== undefined && !isIdInRange(thread)) return '`thread` must be a message id'
  if (alsoInRoom !== undefined && (alsoInRoom !== true || thread === undefined)) return '`alsoInRoom` is `true` on a thread reply only'
  const { files } = command
  if (files !== undefined && type !== 'message') return `\`files\` is for messages, not ${type}s`
  if (files !== undefined && (!Array.isArray(files) || !files.length || files.length > MAX_FILES_FIELD || !files.every(isFileId) || new Set(files).size !== files.length)) return `\`files\` must be 1-${MAX_FILES_FIELD} distinct attachment ids`
  if (type === 'reaction') {
    if (!isIdInRange(target)) return '`target` must be a message id'
    if (!isValidEmoji(emoji)) return `\`emoji\` must be 1-${MAX_EMOJI_LENGTH} UTF-16 code units without spaces, control or format characters`
    return { type, target, emoji, ...withCid }
  }
  if (type !== 'delete' && typeof message !== 'string') return '`message` must be a string'
  if (replyTo !== undefined && !isIdInRange(replyTo)) return '`replyTo` must be a message id'
  if (type === 'message') {
    return {
      type,
      message: message as string,
      ...(replyTo === undefined ? {} : { replyTo: replyTo as number }),
      ...(thread === undefined ? {} : { thread: thread as number }),
      ...(alsoInRoom ? { alsoInRoom: true as const } : {}),
      ...(files === undefined ? {} : { files: files as string[] }),
      ...withCid,
    }
  }
  if (typeof target !== 'number' || !Number.isSafeInteger(target) || target < 1) return '`target` must be a message id'
  return type === 'edit' ? { type, target, message: message as string, ...withCid } : { type, target, ...withCid }
}

/** Most ids a `files` field may name (the server's `files.maxFiles` may be lower). */
export const MAX_FILES_FIELD = 100

/** A `read` command (WebSocket frame or POST body): `id` a positive integer or absent (the newest), `room` a room name or absent. */
export function parseReadCommand(command: Record<string, unknown>): Extract<ChatClientCommand, { type: 'read' }> | string {
  const { id, room } = command
  if (id !== undefined && !isIdInRange(id)) return '`id` must be a message id'
  if (room !== undefined && !isValidRoom(room)) return '`room` must be 1-64 characters from [A-Za-z0-9._:-]'
  return { type: 'read', ...(id === undefined ? {} : { id }), ...(room === undefined ? {} : { room }) }
}

/** Longest reaction, in UTF-16 code units (docs/PROTOCOL.md, "Reactions"). */
export const MAX_EMOJI_LENGTH = 32
// Format characters (invisible, bidi overrides) but the zero-width joiner and the tag characters, which emoji sequences use.
const FORMAT_CHARACTER = /(?![\u200D\u{E0020}-\u{E007F}])\p{Cf}/u
/** A joiner first, last or next to another joiner, or tags without a character before them: nothing visible joins. */
const LOOSE_JOINER = /^[\u200D\u{E0020}-\u{E007F}]|\u200D$|\u200D\u200D/u

/** Text a store can hold as given, of at most `max` UTF-16 units: no NUL, no lone surrogate (it would come back as U+FFFD). */
export function isStorableText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length <= max && !value.includes('\0') && value.isWellFormed()
}

/** Is `emoji` a usable reaction: 1-32 UTF-16 code units, well-formed, no white space, control or format characters (revision 5)? */
export function isValidEmoji(emoji: unknown): emoji is string {
  return typeof emoji === 'string' && emoji.length >= 1 && emoji.length <= MAX_EMOJI_LENGTH && emoji.isWellFormed()
    && !/[\s\p{Cc}]/u.test(emoji) && !FORMAT_CHARACTER.test(emoji) && !LOOSE_JOINER.test(emoji)
}

/** Who reacted with `emoji`: an own key only, as a reaction may be named `constructor` or `__proto__`. */
export function reactorsOf(reactedBy: Record<string, string[]> | undefined, emoji: string): string[] | undefined {
  return reactedBy && Object.hasOwn(reactedBy, emoji) ? reactedBy[emoji] : undefined
}

/** Add `uid` to who reacted with `emoji` on `message`, in a record without a prototype (any emoji is a plain key). */
export function addReactor(message: { reactions?: Record<string, string[]> }, emoji: string, uid: string): void {
  const reactedBy = message.reactions ??= Object.create(null) as Record<string, string[]>
  const users = reactorsOf(reactedBy, emoji)
  if (users) users.push(uid)
  else reactedBy[emoji] = [uid]
}

/** Who reacted with what after `uid` added (`on`) or took back `emoji`; `undefined` when nobody is left. */
export function withReaction(reactedBy: Record<string, string[]> | undefined, emoji: string, uid: string, on: boolean): Record<string, string[]> | undefined {
  const users = (reactorsOf(reactedBy, emoji) ?? []).filter(user => user !== uid)
  if (on) users.push(uid)
  const next = Object.entries({ ...reactedBy, [emoji]: users }).filter(([, list]) => list.length)
  return next.length ? Object.fromEntries(next) : undefined
}

/** Build the `Welcome X!` / `X joined!` / `X left!` frames of the seed. */
export function systemFrame(event: ChatSystemFrame['event'], room: string, peer: ChatUser): ChatSystemFrame {
  const message = event === 'welcome' ? `Welcome ${peer.name}!` : event === 'join' ? `${peer.name} joined!` : `${peer.name} left!`
  return { type: 'system', event, room, user: 'server', message, peer }
}

/** Names shown in a merged join or leave: the first three, then how many more. */
const NAMED_PEERS = 3

/**
 * The `join` / `leave` frame of the users who joined (or left) in one server turn: the seed's
 * `X joined!` for one; for several one frame with `peers` (revision 4), `peer` the first.
 */
export function systemFrameOf(event: 'join' | 'leave', room: string, peers: ChatUser[]): ChatSystemFrame {
  const frame = systemFrame(event, room, peers[0]!)
  if (peers.length === 1) return frame
  const names = peers.slice(0, NAMED_PEERS).map(peer => peer.name)
  const rest = peers.length - names.length
  const list = rest ? `${names.join(', ')} and ${rest} other${rest === 1 ? '' : 's'}` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`
  frame.message = `${list} ${event === 'join' ? 'joined' : 'left'}!`
  frame.peers = peers
  return frame
}

/** Build a presence frame from the users online. */
export function presenceFrame(room: string, users: ChatUser[]): ChatPresenceFrame {
  return { type: 'presence', room, users, user: 'server', message: `${users.length} online` }
}

/** Build a presence_diff frame: who joined and left, and how many are online now. */
export function presenceDiffFrame(room: string, joins: ChatUser[], leaves: ChatUser[], count: number): ChatPresenceDiffFrame {
  return { type: 'presence_diff', room, joins, leaves, count, user: 'server', message: `${count} online` }
}

/** A presence list after a `presence_diff`: leaves removed (by id), then joins added or renamed. */
export function applyPresenceDiff(users: readonly ChatUser[], diff: Pick<ChatPresenceDiffFrame, 'joins' | 'leaves'>): ChatUser[] {
  const byId = new Map(users.map(user => [user.id, user]))
  for (const user of diff.leaves) byId.delete(user.id)
  for (const user of diff.joins) byId.set(user.id, user)
  return [...byId.values()]
}

/** Build an error frame. */
export function errorFrame(code: ChatErrorCode, message: string, cid?: string): ChatErrorFrame {
  return cid ? { type: 'error', code, user: 'server', message, cid } : { type: 'error', code, user: 'server', message }
}

/** The answer to a ping. */
export const PONG_FRAME: ChatPongFrame = Object.freeze({ type: 'pong', user: 'server', message: 'pong' })
