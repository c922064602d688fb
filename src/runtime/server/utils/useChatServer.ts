// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ./nitroV2.ts or ./nitroV3.ts for the app's Nitro.
import { httpError, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, type ChatEventFrame, type ChatMemberCommand, type ChatMemberFrame, type ChatMemberRole, type ChatMessageFrame, type ChatStoredFrame, type ChatUser } from '../../shared/protocol'
import { parseSearchRequest, type ChatSearchResultsFrame } from '../../shared/search'
import { ChatRefusal, refusalCode } from './access'
import type { ChatRoomInput } from './hub'
import type { RoomMember, RoomRecord } from './roomMembers'
import { useChatHub } from './useChatHub'
import type { ChatRuntimeConfig } from '../../types'
import { storeFile } from '../files/chatFiles'
import { ChatStreamRefusal, type ChatStreamHandle, type ChatStreamOptions } from './streams'
import { isStreamSource, type ChatStreamSourceInput } from './streamSource'
import { aiMessagesOf, type ChatAiMessage, type ChatAiMessagesOptions } from './aiMessages'
import { afterProblem, authorProblem, idProblem, limitProblem, optionsProblem, roleProblem, roomProblem, searcherProblem, searchRoomsProblem, sendOptionsProblem, shownAuthor, textProblem, untilProblem, userIdProblem } from './serverApiInput'
import { MAX_MEMBER_ID } from './roomMembers'

export type { ChatRoomInput } from './hub'
export type { RoomMember, RoomRecord } from './roomMembers'
export type { ChatStreamHandle, ChatStreamOptions, ChatStreamResult } from './streams'
export type { ChatStreamSource, ChatStreamSourceInput } from './streamSource'
export type { ChatAiMessage, ChatAiMessagesOptions } from './aiMessages'

/** Who server-side messages come from unless `send` is told otherwise (a name no guest may take). */
export const SERVER_USER: ChatUser = Object.freeze({ id: 'server', name: 'server' })
/** Largest page `history` returns. */
const MAX_HISTORY_PAGE = 1000

export interface ChatServerSendOptions {
  /** Who the message is from. @default { id: 'server', name: 'server' } */
  user?: ChatUser
  /** Makes the send idempotent: a `cid` already stored for this user returns the stored message instead of storing it again. */
  cid?: string
  /** `send`: the id of the room's message it answers (docs/PROTOCOL.md, "Replies"). */
  replyTo?: number
  /** `send`: answer in the thread of this message (docs/PROTOCOL.md, "Threads"). */
  thread?: number
  /** `send` with `thread`: also show the reply in the room's main timeline. */
  alsoInRoom?: boolean
  /** `send`: attachments (docs/PROTOCOL.md, "Attachments"), stored first with their type checked from the bytes; the text may then be empty. */
  files?: { name: string, data: Uint8Array }[]
}

export interface ChatHistoryOptions {
  /** Messages with an id below this one. @default the newest */
  before?: number
  /** How many, at most 1000. @default 50 */
  limit?: number
  /** The replies of this message's thread instead of the room's main timeline. */
  thread?: number
}

/** What `useChatServer().search` takes besides the words (docs/PROTOCOL.md, "Search"). */
export interface ChatServerSearchOptions {
  /** Search as this person: the rooms they may read (their rooms list's, or `room`), as their own search would, without their limits. */
  user?: ChatUser
  /** Without `user`: the rooms server code searches (no check); with or without it, `room` narrows to one. */
  rooms?: string[]
  room?: string
  /** Only messages from this user id. */
  author?: string
  /** Only messages with `ts < before` / `ts >= after` (epoch ms). */
  before?: number
  after?: number
  /** The previous page's `cursor`. */
  cursor?: string
  /** Hits per page, 1-50. @default 20 */
  limit?: number
}

/** A bad argument as the H3 error server code catches: 400, its `data` the `bad_request` frame. */
function badRequest(problem: string): Error {
  return httpError(400, problem, errorFrame('bad_request', problem))
}

/** Throw the first of the arguments' problems (serverApiInput.ts), if any. */
function check(...problems: (string | undefined)[]) {
  const problem = problems.find(found => found !== undefined)
  if (problem !== undefined) throw badRequest(problem)
}

/** A stream into a `dm:` room needs the two people's direct room, as `send` does (server code skips the admission that would refuse it). */
async function checkWritable(hub: ReturnType<typeof useChatHub>, room: string) {
  const refused = await hub.serverWriteRefusal(room)
  if (refused) throw httpError(refused.status, refused.error.message, refused.error)
}

/** A refusal of the hub (`ChatRefusal`) as the H3 error server code catches; anything else as it is. */
async function asHttpError<T>(work: Promise<T>): Promise<T> {
  try {
    return await work
  }
  catch (error) {
    if (error instanceof ChatRefusal) throw httpError(error.status, error.message, errorFrame(refusalCode(error.status), error.message))
    throw error
  }
}

/** Store server code's attachments for `uid` in `room` (no quota, no rate limit: server code is trusted); a refusal throws its H3 error. */
async function storeServerFiles(room: string, uid: string, files: { name: string, data: Uint8Array }[]): Promise<string[]> {
  const options = (useRuntimeConfig().chat as ChatRuntimeConfig).files
  if (!options) throw httpError(400, 'Attachments are turned off', errorFrame('bad_request', 'Attachments are turned off'))
  const ids: string[] = []
  for (const file of files) {
    const stored = await storeFile(options, { room, uid, name: file.name, bytes: file.data })
    if ('error' in stored) throw httpError(stored.status, stored.error.message, stored.error)
    ids.push(stored.id)
  }
  return ids
}

/**
 * nuxt-chat's server-side API, for API routes, bots, cron jobs and plugins. Every call goes
 * through the same store and bus as the members' own messages, so it reaches every instance's
 * members once, in room order.
 *
 * ```ts
 * await useChatServer().send('lobby', 'Deploy finished', { user: { id: 'bot', name: 'Deploy bot' } })
 * ```
 */
export function useChatServer() {
  const hub = useChatHub()
  async function change(room: string, message: string, action: { kind: 'edit' | 'delete', target: number }, options: ChatServerSendOptions) {
    check(roomProblem(room), idProblem(action.target, 'id', { optional: false }), textProblem(message), sendOptionsProblem(options))
    const user = options.user ? shownAuthor(options.user) : SERVER_USER
    const result = await hub.send({ room, user, sender: user.id, message, cid: options.cid, action, fromServer: true })
    if (result.error) throw httpError(result.status, result.error.message, result.error)
    return result.frame as ChatEventFrame
  }
  /** A moderation command as the app's server code: the `chat:action` hook runs (`allow: true`); a refusal throws its H3 error. */
  async function moderate(room: string, command: ChatMemberCommand): Promise<ChatMemberFrame> {
    check(roomProblem(room), userIdProblem(command.user), command.type === 'role' ? roleProblem(command.role) : undefined, command.type === 'mute' ? untilProblem(command.until) : undefined)
    const result = await hub.moderate(room, command)
    if ('error' in result) throw httpError(result.status, result.error.message, result.error)
    return result.frame
  }
  return {
    /**
     * Make a room record (docs/PROTOCOL.md, "Rooms and members"): `owner` becomes its `owner`
     * member, `members` its `member`s. Throws 400 for bad fields, 409 when the room has a record.
     */
    async createRoom(input: ChatRoomInput = {}): Promise<RoomRecord> {
      check(optionsProblem(input, 'input'))
      return await asHttpError(hub.createRoom(input))
    },
    /** Change a room's title, topic or visibility; every instance applies it at once. Throws 404 when the room has no record. */
    async updateRoom(room: string, fields: Partial<Pick<RoomRecord, 'title' | 'topic' | 'visibility'>>): Promise<RoomRecord> {
      check(roomProblem(room), fields === undefined ? '`fields` must be an object' : optionsProblem(fields, 'fields'))
      const record = await asHttpError(hub.updateRoom(room, fields))
      if (!record) throw httpError(404, `Room "${room}" has no record`)
      return record
    },
    /** A room's record; undefined when it has none (a public room, as every v1 room). */
    room(room: string): Promise<RoomRecord | undefined> {
      check(roomProblem(room))
      return hub.roomRecord(room)
    },
    /** A page of a room's members (banned ones included, with `banned: true`), in id order, `limit` (at most 1000) after `after`. */
    async members(room: string, options: { after?: string, limit?: number } = {}): Promise<RoomMember[]> {
      check(roomProblem(room), optionsProblem(options))
      const { after, limit = 100 } = options
      check(afterProblem(after, MAX_MEMBER_ID), limitProblem(limit))
      return await hub.members(room, after, Math.max(1, Math.min(1000, Math.floor(limit))))
    },
    /** Add a member (`role`, default `member`); a banned person's ban goes. Resolves to the membership as a `member` frame. */
    async addMember(room: string, userId: string, role: ChatMemberRole = 'member'): Promise<ChatMemberFrame> {
      check(roomProblem(room), userIdProblem(userId), roleProblem(role))
      const frame = await moderate(room, { type: 'invite', user: userId })
      return frame.role === role ? frame : moderate(room, { type: 'role', user: userId, role })
    },
    /** End a membership: the person's connections to the room close on every instance (4003) and the room leaves their lists. */
    removeMember(room: string, userId: string): Promise<ChatMemberFrame> {
      return moderate(room, { type: 'remove', user: userId })
    },
    /** Set a member's role. */
    setRole(room: string, userId: string, role: ChatMemberRole): Promise<ChatMemberFrame> {
      return moderate(room, { type: 'role', user: userId, role })
    },
    /** Mute someone in the room until `until` (epoch ms; absent: indefinitely; in the past: unmute): they read, they cannot send (`muted`). */
    mute(room: string, userId: string, until?: number): Promise<ChatMemberFrame> {
      return moderate(room, until === undefined ? { type: 'mute', user: userId } : { type: 'mute', user: userId, until })
    },
    /** Ban someone from the room: removed at once on every instance, refused from then on. */
    ban(room: string, userId: string): Promise<ChatMemberFrame> {
      return moderate(room, { type: 'ban', user: userId })
    },
    /** Lift a ban (the person is no member until added again). */
    unban(room: string, userId: string): Promise<ChatMemberFrame> {
      return moderate(room, { type: 'unban', user: userId })
    },
    /** The direct room of two users (docs/PROTOCOL.md, "Direct messages"), made with both as members on first use; the same room whichever order they are given in. */
    async directRoom(userA: string, userB: string): Promise<RoomRecord> {
      check(userIdProblem(userA, 'userA'), userIdProblem(userB, 'userB'))
      return await asHttpError(hub.directRoom(userA, userB))
    },
    /**
     * Store a message and deliver it to the room. Runs the length check and the `chat:message`
     * hook like any message, but no rate limit. Resolves to the stored frame; a refusal throws
     * an H3 error (400, 403, 413, 503) whose `data` is the `error` frame.
     */
    async send(room: string, message: string, options: ChatServerSendOptions = {}): Promise<ChatMessageFrame> {
      check(roomProblem(room), textProblem(message), sendOptionsProblem(options))
      const user = options.user ? shownAuthor(options.user) : SERVER_USER
      const files = options.files?.length ? await storeServerFiles(room, user.id, options.files) : undefined
      const result = await hub.send({ room, user, sender: user.id, message, cid: options.cid, replyTo: options.replyTo, ...(files ? { files } : {}), ...(options.thread === undefined ? {} : { thread: options.thread, ...(options.alsoInRoom ? { alsoInRoom: true as const } : {}) }), fromServer: true })
      if (result.error) throw httpError(result.status, result.error.message, result.error)
      return result.frame as ChatMessageFrame
    },
    /**
     * Edit a stored message as `options.user` (default: `server`). Server code is trusted: no
     * author check and no edit window, but the `chat:action` hook runs (`allow` starts true) and so
     * does `chat:message` on the new text.
     */
    async edit(room: string, id: number, message: string, options: ChatServerSendOptions = {}): Promise<ChatEventFrame> {
      return await change(room, message, { kind: 'edit', target: id }, options)
    },
    /** Delete a stored message (its text leaves the store; clients drop it). Same rules as `edit`. */
    async delete(room: string, id: number, options: ChatServerSendOptions = {}): Promise<ChatEventFrame> {
      return await change(room, '', { kind: 'delete', target: id }, options)
    },
    /** A page of older history: the newest `limit` messages (with their current state; changes are not messages) before `before`, oldest first. */
    async history(room: string, options: ChatHistoryOptions = {}): Promise<ChatStoredFrame[]> {
      check(roomProblem(room), optionsProblem(options))
      const { before = Number.MAX_SAFE_INTEGER, limit = 50, thread } = options
      check(idProblem(before, 'before'), limitProblem(limit), idProblem(thread, 'thread'))
      return await hub.history(room, before, Math.max(1, Math.min(MAX_HISTORY_PAGE, Math.floor(limit))), thread)
    },
    /**
     * Find messages by their words (docs/PROTOCOL.md, "Search"): as `options.user` (the rooms they
     * may read), or in `options.rooms` / `options.room`. Resolves to the `search_results` frame (hits
     * newest first, `cursor` for the next page); a bad request throws 400 (403, 401 as the person's
     * own search would), a store failure 503, with the `error` frame as `data`.
     */
    async search(q: string, options: ChatServerSearchOptions = {}): Promise<ChatSearchResultsFrame> {
      check(optionsProblem(options))
      const { user, rooms, ...fields } = options
      check(user === undefined ? undefined : searcherProblem(user), searchRoomsProblem(rooms))
      const request = parseSearchRequest({ q, ...fields })
      if (typeof request === 'string') throw badRequest(request)
      if (!user && !rooms && request.room === undefined) throw badRequest('Give `user` (search as them), `rooms` or `room`')
      const answer = await hub.search(request, user ?? { rooms: rooms ?? [request.room!] })
      if ('error' in answer) throw httpError(answer.status, answer.error.message, answer.error)
      return answer.frame
    },
    /** Everyone online in the room, on every instance (one entry per user). */
    presence(room: string): Promise<ChatUser[]> {
      check(roomProblem(room))
      return hub.presence(room)
    },
    /** Names of the rooms the store holds, in name order, `limit` after `after` (page with the last name). */
    async rooms(options: { after?: string, limit?: number } = {}): Promise<string[]> {
      check(optionsProblem(options))
      const { after, limit = 100 } = options
      check(afterProblem(after, 64), limitProblem(limit))
      return await hub.storedRooms(after, Math.max(1, Math.min(1000, Math.floor(limit))))
    },
    /** How many messages from others the signed-in user `userId` has not read in the room (0 when they have no read position). */
    async unread(room: string, userId: string): Promise<number> {
      check(roomProblem(room), userIdProblem(userId))
      return (await hub.readStateOf(room, userId))?.unread ?? 0
    },
    /**
     * Move a user's read position in the room forward to `id` (absent: the newest); every
     * connection of theirs, on every instance, gets the new `read` frame. Resolves to the position,
     * or undefined when the user has none in the room (a read never creates one: joining does).
     */
    async markRead(room: string, userId: string, id?: number): Promise<number | undefined> {
      check(roomProblem(room), userIdProblem(userId), idProblem(id, 'id', { min: 0 }))
      check(userId.startsWith('guest:') ? 'Guests have no read state' : undefined)
      return (await hub.markRead(room, { id: userId, name: userId }, id))?.read
    },
    /**
     * Delete a user's read position in the room and their membership (a ban stays; e.g. when
     * barring them from it): the room leaves their rooms lists on every instance, and no `read`
     * brings it back; joining again does. Resolves to true when there was a position.
     */
    async forget(room: string, userId: string): Promise<boolean> {
      check(roomProblem(room), userIdProblem(userId))
      return await hub.forget(room, userId)
    },
    /**
     * Close every connection of a user to a room, on every instance, and take the room off their
     * open rooms lists (their read position stays: see `forget`). Clients may reconnect:
     * to keep someone out, refuse them in the `chat:identify` hook as well.
     */
    disconnect(room: string, userId: string): void {
      check(roomProblem(room), userIdProblem(userId))
      hub.disconnect(room, userId)
    },
    /**
     * Write a message from a source of text chunks (docs/PROTOCOL.md, "Streaming messages"): an
     * async iterable, a `ReadableStream`, an AI SDK `streamText` result, or a function given the
     * stream's `AbortSignal` that returns one. The message is stored at once (`streaming`), grows
     * on every member's screen, and is stored with its final text when the source ends (cut:
     * `incomplete`). Resolves once it is stored and delivered; `done` settles at its end. Past the
     * stream limits it throws 429; a `replyTo` / `thread` that is no message of the room, 400.
     *
     * ```ts
     * await useChatServer().stream('lobby', signal => streamText({ model, messages, abortSignal: signal }), { as: assistant, replyTo: frame.id })
     * ```
     */
    async stream(room: string, source: ChatStreamSourceInput, options: ChatStreamOptions): Promise<ChatStreamHandle> {
      check(roomProblem(room), options === undefined ? '`options` must be { as, replyTo?, thread?, signal? }' : optionsProblem(options))
      check(authorProblem(options.as, 'as'), idProblem(options.replyTo, 'replyTo'), idProblem(options.thread, 'thread'), options.signal === undefined || options.signal instanceof AbortSignal ? undefined : '`signal` must be an AbortSignal', typeof source === 'function' || isStreamSource(source) ? undefined : '`source` must be an async iterable of strings, a ReadableStream, a streamText() result, or a function that returns one')
      await checkWritable(hub, room)
      try {
        return await hub.streams.start(room, source, { ...options, as: shownAuthor(options.as) })
      }
      catch (error) {
        if (error instanceof ChatStreamRefusal) throw httpError(error.status, error.message, error.frame)
        throw error
      }
    },
    /**
     * A room's recent messages (or a thread's, with its parent first) in the AI SDK's message
     * format: `as`'s own messages `assistant`, everyone else's `user` with their name before the
     * text (`Alice: hi`); deleted and still streaming messages are left out.
     */
    async aiMessages(room: string, options: ChatAiMessagesOptions): Promise<ChatAiMessage[]> {
      check(roomProblem(room), options === undefined ? '`options` must be { as, thread?, limit? }' : optionsProblem(options))
      check(options.as !== null && typeof options.as === 'object' ? userIdProblem(options.as.id, 'as.id') : '`as` must be { id }', idProblem(options.thread, 'thread'), limitProblem(options.limit))
      return await aiMessagesOf(hub, room, options)
    },
    /** Make `user` (an AI member or bot) a member of the room under its name, so `@name` mentions it (`chat:mention`). */
    async addAiMember(room: string, user: ChatUser, role: ChatMemberRole = 'member'): Promise<ChatMemberFrame> {
      check(roomProblem(room), authorProblem(user), roleProblem(role))
      await hub.streams.saveName(shownAuthor(user))
      const frame = await moderate(room, { type: 'invite', user: user.id })
      return frame.role === role ? frame : moderate(room, { type: 'role', user: user.id, role })
    },
  }
}

export type ChatServer = ReturnType<typeof useChatServer>
