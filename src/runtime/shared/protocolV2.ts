/**
 * Protocol version 2 (docs/PROTOCOL.md, "Version 2"): one connection, many rooms. Its frames and
 * commands, and the parser both the server and the client use.
 */
import { parseSearchRequest, type ChatSearchRequest, type ChatSearchResultsFrame } from './search'
import { isIdInRange, isMemberCommandType, isStorableText, isValidCid, isValidRoom, MEMBER_COMMANDS, parseCursor, parseHistoryRequest, parseMemberCommand, parseReadCommand, parseSendCommand, type ChatClientCommand, type ChatErrorCode, type ChatLimitName, type ChatLimitScope, type ChatMemberCommand, type ChatMemberRole, type ChatUser } from './protocol'

/** The WebSocket subprotocol a client offers (first) to speak version 2. */
export const PROTOCOL_V2 = 'nuxt-chat.2'

/** The first frame on a version 2 connection. */
export interface ChatHelloFrame {
  type: 'hello'
  version: 2
  me: ChatUser
  limits: { maxLength: number, maxRooms: number }
  /** On an SSE stream: its id, for the POSTs that carry its commands (docs/PROTOCOL.md, "Version 2 over SSE"). */
  stream?: string
}

/** A `join` was accepted: the room's presence list, read state and replay follow, then `caught_up`. */
export interface ChatJoinedFrame {
  type: 'joined'
  room: string
  ref?: string
  me: ChatUser
  /** The person's role in the room (absent: no membership). */
  role?: ChatMemberRole
  /** Muted in the room until then (epoch ms). */
  mutedUntil?: number
}

/** The replay of a `join` was sent: every later frame of the room is live. */
export interface ChatCaughtUpFrame {
  type: 'caught_up'
  room: string
  ref?: string
}

/** Why a `join` was refused (that room only: the connection stays). */
export type ChatJoinRefusalCode = ChatErrorCode | 'too_many_rooms'

export interface ChatJoinRefusedFrame {
  type: 'join_refused'
  room: string
  ref?: string
  code: ChatJoinRefusalCode
  message: string
  /** `rate_limited`: whose count refused, which limit, and whole seconds until a retry can pass (as on an `error` frame). */
  scope?: ChatLimitScope
  limit?: ChatLimitName
  retryAfter?: number
}

/** A subscription ended: the client left, the app disconnected the user from the room, or their membership ended (removed, banned, or the room became private). */
export interface ChatLeftFrame {
  type: 'left'
  room: string
  ref?: string
  reason: 'left' | 'disconnected' | 'removed' | 'banned'
}

/** The answer to a command with a `ref` whose own answer carries none. */
export interface ChatAckFrame {
  type: 'ack'
  ref: string
  room?: string
  id?: number
  /** A `rooms` command replaced by a later one before its list was read: its list is never sent. */
  superseded?: true
}

/** Frames only version 2 sends (the rest are version 1's, with `room`, and `ref` where answered). */
/** A joined room's members by name, for `@` completion (docs/PROTOCOL.md, "Rooms and members, version 2"). */
export interface ChatMembersFrame {
  type: 'members'
  room: string
  ref?: string
  /** At most `MEMBERS_LISTED`, not banned; `name` as the store keeps it (`''` when not known yet). */
  members: { uid: string, name: string }[]
}

/** Members a `members` answer lists at most. */
export const MEMBERS_LISTED = 500

/** Who of a small room's members has read up to where (docs/PROTOCOL.md, "Seen by"): all of them after a join, one as they read. */
export interface ChatSeenFrame {
  type: 'seen'
  room: string
  /** Member id → the id up to which they have read (0: nothing yet). */
  seen: Record<string, number>
}

export type ChatServerFrameV2 = ChatHelloFrame | ChatJoinedFrame | ChatCaughtUpFrame | ChatJoinRefusedFrame | ChatLeftFrame | ChatAckFrame | ChatSeenFrame | ChatSearchResultsFrame | ChatMembersFrame

type RoomCommand<C> = C & { room: string, ref?: string }

/** What a version 2 client sends: JSON objects only, each room command naming its room. */
export type ChatClientCommandV2
  = | { type: 'join', room: string, since?: number, ref?: string }
    | { type: 'leave', room: string, ref?: string }
    | { type: 'rooms', ref?: string }
    | { type: 'ping', ref?: string }
    | RoomCommand<{ type: 'typing' }>
    | RoomCommand<{ type: 'members' }>
    | RoomCommand<{ type: 'history', before: number, limit: number, thread?: number }>
    | RoomCommand<{ type: 'read', id?: number }>
    | RoomCommand<{ type: 'stop', id: number }>
    | RoomCommand<Extract<ChatClientCommand, { type: 'message' | 'edit' | 'delete' | 'reaction' }>>
    | ChatCreateCommand
    | { type: 'dm', user: string, ref?: string }
    | ChatSearchCommand
    | RoomCommand<ChatMemberCommand>
    | RoomCommand<ChatUpdateCommand>

/** Find messages in the rooms the person may read (docs/PROTOCOL.md, "Search"); `room` here is a filter, not a joined room. */
export type ChatSearchCommand = { type: 'search', ref?: string } & ChatSearchRequest

/** Make a room: the sender owns it, `members` are in it (docs/PROTOCOL.md, "Rooms and members, version 2"). */
export interface ChatCreateCommand {
  type: 'create'
  title: string
  topic?: string
  visibility: 'public' | 'private'
  members?: string[]
  ref?: string
}

/** Change a room's record (at least one field). */
export interface ChatUpdateCommand {
  type: 'update'
  title?: string
  topic?: string
  visibility?: 'public' | 'private'
}

/** Members a client's `create` names at most. */
export const MAX_CREATE_MEMBERS = 100
const MAX_TITLE = 200
const MAX_TOPIC = 1000

/** A command that could not be read: why, and what of it could be (to name it in the error). */
export interface InvalidCommandV2 {
  type: 'invalid'
  reason: string
  ref?: string
  room?: string
  cid?: string
}

/**
 * Turn one version 2 text frame into a command, or say why it is not one: raw text, JSON that is
 * not an object, an unknown `type`, a room command without a valid `room`, bad fields.
 */
export function parseClientFrameV2(text: string): ChatClientCommandV2 | InvalidCommandV2 {
  let data: unknown
  try {
    data = JSON.parse(text)
  }
  catch {
    data = undefined
  }
  if (data === undefined) return { type: 'invalid', reason: 'Version 2 takes JSON commands only (raw text has no room)' }
  if (!data || typeof data !== 'object' || Array.isArray(data)) return { type: 'invalid', reason: 'A command must be a JSON object' }
  const command = data as Record<string, unknown>
  if (command.ref !== undefined && !isValidCid(command.ref)) return { type: 'invalid', reason: '`ref` must be 1-64 characters from [A-Za-z0-9._:-]' }
  const ref = command.ref as string | undefined
  const withRef = ref === undefined ? {} : { ref }
  const type = command.type
  if (type === 'ping' || type === 'rooms') return { type, ...withRef }
  if (type === 'create') {
    const created = parseCreateCommand(command)
    return typeof created === 'string' ? { type: 'invalid', reason: created, ...withRef } : { ...created, ...withRef }
  }
  if (type === 'dm') {
    const problem = userIdProblem(command.user)
    return problem ? { type: 'invalid', reason: problem, ...withRef } : { type, user: command.user as string, ...withRef }
  }
  if (type === 'search') {
    const parsed = parseSearchRequest(command)
    return typeof parsed === 'string' ? { type: 'invalid', reason: parsed, ...withRef } : { type, ...parsed, ...withRef }
  }
  if (!ROOM_COMMANDS.has(type as string)) return { type: 'invalid', reason: `Unknown command \`${typeof type === 'string' ? type.slice(0, 32) : typeof type}\``, ...withRef }
  const cid = isValidCid(command.cid) ? command.cid : undefined
  if (!isValidRoom(command.room)) return { type: 'invalid', reason: '`room` must be 1-64 characters from [A-Za-z0-9._:-]', ...withRef, ...(cid ? { cid } : {}) }
  const room = command.room
  const invalid = (reason: string): InvalidCommandV2 => ({ type: 'invalid', reason, room, ...withRef, ...(cid ? { cid } : {}) })
  if (isMemberCommandType(type)) {
    const parsed = parseMemberCommand(command)
    return typeof parsed === 'string' ? invalid(parsed) : { ...parsed, room, ...withRef }
  }
  switch (type) {
    case 'join': {
      if (command.since !== undefined && parseCursor(command.since) === undefined) return invalid('`since` must be a cursor: an integer from 0')
      const since = parseCursor(command.since)
      return { type, room, ...(since === undefined ? {} : { since }), ...withRef }
    }
    case 'leave':
    case 'typing':
    case 'members':
      return { type, room, ...withRef }
    case 'history': {
      const request = parseHistoryRequest(command.before, command.limit)
      if (command.thread !== undefined && !isIdInRange(command.thread)) return invalid('`thread` must be a message id')
      return typeof request === 'string' ? invalid(request) : { type, room, ...request, ...(command.thread === undefined ? {} : { thread: command.thread as number }), ...withRef }
    }
    case 'read': {
      const read = parseReadCommand({ id: command.id })
      return typeof read === 'string' ? invalid(read) : { ...read, room, ...withRef }
    }
    case 'stop':
      return isIdInRange(command.id) ? { type, room, id: command.id, ...withRef } : invalid('`id` must be a message id')
    case 'update': {
      const parsed = parseRecordFields(command, false)
      return typeof parsed === 'string' ? invalid(parsed) : { type, ...parsed, room, ...withRef }
    }
    default: {
      const parsed = parseSendCommand(command)
      return typeof parsed === 'string' ? invalid(parsed) : { ...parsed, room, ...withRef }
    }
  }
}

const ROOM_COMMANDS = new Set(['join', 'leave', 'typing', 'members', 'history', 'read', 'message', 'edit', 'delete', 'reaction', 'update', 'stop', ...MEMBER_COMMANDS])

/** Why `user` is not a user id one may name (a signed-in user's: not a guest's), if it is not. */
function userIdProblem(user: unknown): string | undefined {
  if (typeof user !== 'string' || !user || user.length > 256) return '`user` must be a user id (1-256 characters)'
  if (user.startsWith('guest:')) return '`user` must be a signed-in user\'s id, not a guest\'s'
  return undefined
}

/** A record's `title`, `topic` and `visibility` as given; `required`: a new room's title and visibility must be. */
function parseRecordFields(command: Record<string, unknown>, required: boolean): Omit<ChatUpdateCommand, 'type'> | string {
  const { title, topic, visibility } = command
  if ((required || title !== undefined) && !isStorableText(title, MAX_TITLE)) return `\`title\` must be text of at most ${MAX_TITLE} characters, without NUL or lone surrogates`
  if (topic !== undefined && !isStorableText(topic, MAX_TOPIC)) return `\`topic\` must be text of at most ${MAX_TOPIC} characters, without NUL or lone surrogates`
  if ((required || visibility !== undefined) && visibility !== 'public' && visibility !== 'private') return '`visibility` must be public or private'
  if (title === undefined && topic === undefined && visibility === undefined) return 'Give at least one of `title`, `topic`, `visibility`'
  return {
    ...(title !== undefined ? { title: title as string } : {}),
    ...(topic !== undefined ? { topic: topic as string } : {}),
    ...(visibility !== undefined ? { visibility: visibility as 'public' | 'private' } : {}),
  }
}

function parseCreateCommand(command: Record<string, unknown>): Omit<ChatCreateCommand, 'ref'> | string {
  const fields = parseRecordFields(command, true)
  if (typeof fields === 'string') return fields
  const { members } = command
  if (members !== undefined) {
    if (!Array.isArray(members) || members.length > MAX_CREATE_MEMBERS) return `\`members\` must be a list of at most ${MAX_CREATE_MEMBERS} user ids`
    if (members.some(uid => userIdProblem(uid))) return '`members` must be signed-in users\' ids (1-256 characters each)'
  }
  return { type: 'create', title: fields.title!, visibility: fields.visibility!, ...(fields.topic !== undefined ? { topic: fields.topic } : {}), ...(members ? { members: [...new Set(members as string[])] } : {}) }
}
