/**
 * Rooms and members commands of protocol version 2 (docs/PROTOCOL.md, "Rooms and members, version
 * 2") from the browser: each goes on the tab's shared connection (its WebSocket, or a POST to its
 * event stream) with a `ref`, and its answer (matched by that ref) resolves the call, or its
 * refusal rejects it with a `ChatClientError`. Free of Nuxt, so Node tests drive it as
 * `useChatRooms()` does.
 */
import type { ChatMemberRole } from '../shared/protocol'
import type { ChatSearchRequest, ChatSearchResultsFrame } from '../shared/search'
import type { ChatClientError, ChatTransport } from './chatConnection'
import { askSharedSocket } from './sharedSocket'
import { askSharedStream } from './sharedStream'

/** A new room: its creator becomes its owner, `members` its members. */
export interface ChatNewRoom {
  /** At most 200 characters. @default '' */
  title?: string
  /** At most 1000 characters. */
  topic?: string
  /** `private`: only members read and send. */
  visibility: 'public' | 'private'
  /** User ids to add as members (at most 100). */
  members?: string[]
}

/** What a command's answer says: the room it acted on (a new room's id, a direct room's `dm:` id). */
export interface ChatRoomCommandResult {
  room: string
}

/**
 * The commands. Each resolves with `{ room }` once the server answered, or rejects with a
 * `ChatClientError`: the server's refusal (`forbidden`, `unauthorized`, `not_found`, `bad_request`,
 * `rate_limited`, …, with its message), `unsupported` where the server speaks only version 1 (an
 * older server), `connection` when no answer came. `user` is a user id (what `chat:identify` sets).
 */
export interface ChatRoomCommands {
  /** A new room the user owns, `members` invited (signed-in users only); resolves with its id. */
  createRoom: (room: ChatNewRoom) => Promise<ChatRoomCommandResult>
  /** The direct room with `user` (made on first use; signed-in users only); resolves with its `dm:` id, to open with `useChat({ room })`. */
  openDirect: (user: string) => Promise<ChatRoomCommandResult>
  /** Add `user` as a member (a private room's way in). Owners and moderators. */
  invite: (room: string, user: string) => Promise<ChatRoomCommandResult>
  /** End `user`'s membership (their connections to the room end). Owners and moderators, on a lower role. */
  remove: (room: string, user: string) => Promise<ChatRoomCommandResult>
  /** Set `user`'s role. Owners, on a lower role. */
  setRole: (room: string, user: string, role: ChatMemberRole) => Promise<ChatRoomCommandResult>
  /** `user` reads but cannot send until `until` (epoch ms; absent: until unmuted; `0` or past: unmute). Owners and moderators, on a lower role. */
  mute: (room: string, user: string, until?: number) => Promise<ChatRoomCommandResult>
  /** Remove `user` and refuse them in the room from now on. Owners and moderators, on a lower role. */
  ban: (room: string, user: string) => Promise<ChatRoomCommandResult>
  /** Lift `user`'s ban (they are no member until invited again). Owners and moderators. */
  unban: (room: string, user: string) => Promise<ChatRoomCommandResult>
  /** Change the room's title or topic. Owners and moderators. */
  update: (room: string, fields: { title?: string, topic?: string }) => Promise<ChatRoomCommandResult>
  /**
   * Find messages by their words in the rooms the user may read (docs/PROTOCOL.md, "Search"):
   * hits newest first, each with its `room` and `id` (open the room at it) and a plain-text
   * `excerpt`; `cursor` asks for the next page. A guest names a public `room`.
   */
  search: (q: string, options?: ChatSearchOptions) => Promise<ChatSearchResultsFrame>
  /** The members of a room this tab has joined, by name (at most 500; for `@` completion). */
  members: (room: string) => Promise<{ uid: string, name: string }[]>
}

/** Filters and paging of `search`. */
export type ChatSearchOptions = Partial<Omit<ChatSearchRequest, 'q'>>

export interface RoomCommandsOptions {
  transport: ChatTransport
  /** The WebSocket route (`/_ws`). */
  route: string
  /** The SSE route (`/api/sse`), for `transport: 'sse'`. */
  sseRoute: string
  /** The tab's guest key: the same one its rooms use, so commands ride on their socket. */
  guestKey: string
  /** Where relative routes resolve. @default location.href */
  baseURL?: string
  /** How long an answer may take. @default 10000 */
  timeout?: number
}

const UNSUPPORTED: ChatClientError = { code: 'unsupported', message: 'Rooms and members commands need protocol version 2; this server speaks version 1 only' }

const REF_PREFIX = 'rc'
let refs = 0

/** A frame answering one of these commands (the rooms list leaves their refusals to the caller). */
export const answersRoomCommand = (frame: object) => 'ref' in frame && typeof frame.ref === 'string' && frame.ref.startsWith(REF_PREFIX)

/** The result of an answer, or the refusal it carries. */
function settle(frame: { type: string, room?: unknown, code?: unknown, message?: unknown }, followed: boolean): ChatRoomCommandResult | ChatClientError {
  const room = typeof frame.room === 'string' ? frame.room : ''
  if (frame.type === 'ack' || frame.type === 'joined' || frame.type === 'member') return { room }
  // A `dm` of a direct room the tab already follows: it is open, which is what was asked.
  if (frame.type === 'join_refused' && frame.code === 'bad_request' && followed) return { room }
  const code = (frame.type === 'error' || frame.type === 'join_refused') && typeof frame.code === 'string' ? frame.code : 'bad_request'
  return { code: code as ChatClientError['code'], message: typeof frame.message === 'string' ? frame.message : 'The server refused the command' }
}

/** The version 2 room commands for one tab's route and guest key. */
export function createRoomCommands(options: RoomCommandsOptions): ChatRoomCommands {
  const sse = options.transport === 'sse'
  // The same route and guest key as the tab's rooms list: the commands ride on its connection.
  const target = () => {
    const url = new URL(sse ? options.sseRoute : options.route, new URL(options.baseURL ?? globalThis.location.href))
    if (!sse) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    url.searchParams.set('guest', options.guestKey)
    return url
  }

  /** Send a command with a fresh ref; its answer frame (and whether the tab follows its room), or the rejection. */
  async function answerOf(command: { type: string } & Record<string, unknown>) {
    const ref = `${REF_PREFIX}${++refs}`
    const answer = await (sse ? askSharedStream : askSharedSocket)(target(), { ...command, ref }, options.timeout ?? 10_000)
    if (answer === 'v1') return Promise.reject(UNSUPPORTED)
    if (!answer) return Promise.reject({ code: 'connection', message: 'No answer from the server: the connection closed or is too slow; try again' } satisfies ChatClientError)
    return answer
  }

  async function ask(command: { type: string } & Record<string, unknown>): Promise<ChatRoomCommandResult> {
    const answer = await answerOf(command)
    const result = settle(answer.frame, answer.followed)
    return 'code' in result ? Promise.reject(result) : result
  }

  async function search(q: string, filters: ChatSearchOptions = {}): Promise<ChatSearchResultsFrame> {
    const { frame } = await answerOf({ type: 'search', q, ...filters })
    if (frame.type === 'search_results') return frame
    const refusal = settle(frame, false)
    return Promise.reject('code' in refusal ? refusal : { code: 'bad_request', message: 'The server answered a search with something else' })
  }

  async function members(room: string): Promise<{ uid: string, name: string }[]> {
    const { frame } = await answerOf({ type: 'members', room })
    if (frame.type === 'members') return frame.members
    const refusal = settle(frame, false)
    return Promise.reject('code' in refusal ? refusal : { code: 'bad_request', message: 'The server answered a members request with something else' })
  }

  return {
    members,
    createRoom: ({ title, topic, visibility, members }) => ask({ type: 'create', title: title ?? '', visibility, ...(topic === undefined ? {} : { topic }), ...(members ? { members } : {}) }),
    openDirect: user => ask({ type: 'dm', user }),
    invite: (room, user) => ask({ type: 'invite', room, user }),
    remove: (room, user) => ask({ type: 'remove', room, user }),
    setRole: (room, user, role) => ask({ type: 'role', room, user, role }),
    mute: (room, user, until) => ask({ type: 'mute', room, user, ...(until === undefined ? {} : { until }) }),
    ban: (room, user) => ask({ type: 'ban', room, user }),
    unban: (room, user) => ask({ type: 'unban', room, user }),
    update: (room, fields) => ask({ type: 'update', room, ...fields }),
    search,
  }
}
