/** Types of the module's options, runtime config and server hooks. */
import type { RateLimitOptions } from './server/utils/rateLimit'
import type { ChatMemberAction, ChatMessageFrame, ChatStoredFrame, ChatUser } from './shared/protocol'

export type { RateLimitOptions }

/** A db0 connector and its options, as in Nitro's `database` config. */
export interface ChatDatabaseConfig {
  /** A db0 connector name: `node-sqlite` (`sqlite`), `postgresql`, `libsql`, `better-sqlite3`, `pglite`, … @buildTime */
  connector: string
  /**
   * The database server's URL (PostgreSQL, libSQL), read when the server starts: leave it out of
   * `nuxt.config` and set `NUXT_CHAT_DATABASE_URL`, so no secret is built into `.output`. Wins
   * over `options.url`. @default ''
   */
  url?: string
  /** The connector's options (runtime config: `NUXT_CHAT_DATABASE_OPTIONS_*`). A SQLite connector's `path` defaults to `.data/chat.sqlite` and its `cwd` to the app's root; other connectors get no SQLite default. */
  options?: Record<string, unknown>
}

export interface ChatHeartbeatOptions {
  /** Ping every this many milliseconds (client: app-level ping; server: WebSocket ping frames). @default 25000 */
  interval: number
  /** Client side: no pong within this many milliseconds means the connection is dead. @default 10000 */
  timeout: number
}

/** The metrics route (Prometheus text format). */
export interface ChatMetricsOptions {
  /** Where the metrics are served. @default '/_chat/metrics' @buildTime */
  route?: string
  /** When set, a scrape must send `Authorization: Bearer <token>` (else `401`). Runtime config: `NUXT_CHAT_METRICS_TOKEN`. @default '' */
  token?: string
}

/** Attachments (docs/PROTOCOL.md, "Attachments"). */
export interface ChatFilesOptions {
  /** Where files are uploaded (`POST ?room=`) and fetched (`GET /<id>`). @default '/_chat/files' @buildTime */
  route: string
  /** Largest file, in bytes: a bigger upload is refused `413` while it is read. @default 10485760 */
  maxSize: number
  /** Most files in one message. @default 10 */
  maxFiles: number
  /** Bytes one person (guests: one address) may upload in 24 hours (0: no bound). @default 209715200 */
  bytesPerDay: number
  /** Allowed MIME types, as read from the file's bytes (`file-type`; UTF-8 text without a signature is `text/plain`); empty: PNG, JPEG, GIF, WebP, AVIF, PDF, plain text, ZIP, MP3, Ogg, MP4 and WebM (a list given replaces these, never adds to them). @default [] */
  types: string[]
  /** An upload no message took within this many ms is removed. @default 3600000 */
  orphanTimeout: number
  /** How often each instance removes orphans and the files of deleted or expired messages, in ms (0: never). @default 60000 */
  sweepInterval: number
  /** The Nitro storage mount files are kept in; the module mounts the filesystem (`.data/chat-files`) under it unless `nitro.storage` has it. @default 'chat-files' @buildTime */
  storage: string
}

/** The module's options, as `runtimeConfig.chat` holds them for the server. */
export interface ChatRuntimeConfig {
  /** WebSocket endpoint. @default '/_ws' @buildTime */
  route: string
  /** SSE endpoint: GET streams a room, POST sends into it. @default '/api/sse' @buildTime */
  sseRoute: string
  /** Messages replayed to a client that connects without a cursor. @default 50 */
  replay: number
  /** Most messages replayed after a cursor (`since` / `Last-Event-ID`). @default 1000 */
  maxReplay: number
  /** Longest message, in characters (UTF-16 code units). @default 2000 */
  maxLength: number
  /** How long after sending an author may edit a message, in ms; 0: always. Deleting one's own message has no limit. @default 0 */
  editWindow: number
  /**
   * Retention per room: at most `max` messages (0: no count limit) and none older than `maxAge` ms
   * (0: no age limit), applied to every room every `interval` ms (0: never), a hundred rows at a time.
   * Messages are counted and aged (edits and reactions are changes of them, bounded apart); a room
   * whose every message went keeps only its last number, so its ids never go back.
   * @default { max: 10000, maxAge: 0, interval: 60000 }
   */
  history: { max: number, maxAge: number, interval: number }
  /** Messages per person: a token bucket per user id or guest id, shared by all their connections and POSTs; `false` turns off both rate limits. @default { messages: 20, interval: 10000, burst: 10 } */
  rateLimit: false | RateLimitOptions
  /** Messages per client address (see `clientIpHeader`) of guests and unidentified requests: a second, higher bucket shared by every connection and POST from that address (signed-in people: `signedInIpFactor` times this); `false` turns it off. @default { messages: 60, interval: 10000, burst: 30 } */
  rateLimitPerIp: false | RateLimitOptions
  /** History pages (WebSocket `history`, SSE `?before=`) per person; `false` turns it off. @default { messages: 20, interval: 10000, burst: 10 } */
  historyRateLimit: false | RateLimitOptions
  /** History pages per client address of guests and unidentified requests (signed-in people: `signedInIpFactor` times this); `false` turns it off. @default { messages: 40, interval: 10000, burst: 20 } */
  historyRateLimitPerIp: false | RateLimitOptions
  /** Bytes of history served (pages, joins' replays, rooms lists: a join or list is refused while they are spent) per `interval` ms, per person and per address (signed-in people's address: `signedInIpFactor` times this); `false` turns it off. @default { bytes: 2097152, interval: 10000 } */
  historyBytes: false | { bytes: number, interval: number }
  /** `read` commands and POSTs per person; `false` turns it off. @default { messages: 30, interval: 10000, burst: 15 } */
  readRateLimit: false | RateLimitOptions
  /** `read` commands and POSTs per client address of guests and unidentified requests (signed-in people: `signedInIpFactor` times this); `false` turns it off. @default { messages: 60, interval: 10000, burst: 30 } */
  readRateLimitPerIp: false | RateLimitOptions
  /** New rooms per person: a message to a room with no messages, or a signed-in user's first read position in a room; `false` turns it off. @default { messages: 10, interval: 60000, burst: 20 } */
  newRoomRateLimit: false | RateLimitOptions
  /** New rooms per client address of guests and unidentified requests (signed-in people: `signedInIpFactor` times this); `false` turns it off. @default { messages: 20, interval: 60000, burst: 30 } */
  newRoomRateLimitPerIp: false | RateLimitOptions
  /** Joins of a room per person (a version 2 `join` or `dm`, a version 1 upgrade or SSE stream to a room), so churning `join` / `leave` cannot flood the `chat:join` hook, the store and every member's presence; `leave` costs nothing. Keep `burst` at least `maxRoomsPerConnection`: a tab rejoins all its rooms at once when it reconnects. `false` turns it off. @default { messages: 20, interval: 10000, burst: 200 } */
  joinRateLimit: false | RateLimitOptions
  /** Joins of a room per client address of guests and unidentified requests (signed-in people: `signedInIpFactor` times this); `false` turns it off. @default { messages: 40, interval: 10000, burst: 300 } */
  joinRateLimitPerIp: false | RateLimitOptions
  /** Signed-in people are counted per person; per address only against every per-address limit times this (an office behind one NAT address); 0: not per address at all. @default 50 */
  signedInIpFactor: number
  /** Open connections (WebSocket, SSE, open POSTs) per signed-in person (tabs and devices); 0: no cap. @default 20 */
  maxConnectionsPerUser: number
  /** A request's headers (an upgrade's too) must arrive within this many ms of its TCP connection (on a kept-alive connection: of the server's `keepAliveTimeout` after the previous answer), else the socket is closed; 0: Node's own bound (60 s). @default 10000 */
  headersTimeout: number
  /** Origins allowed besides the app's own, for browser upgrades, SSE and POST; `'*'` allows all, with the visitor's cookies: any site may then read and post as them where their browser sends its cookies cross-site (`SameSite=None`); prefer a list. @default [] */
  allowedOrigins: string[]
  /** Open connections per client address (WebSocket + SSE + open POSTs) of guests and of requests not yet identified (and, counted apart, sockets whose headers have not arrived); signed-in people's: `signedInIpFactor` times this; 0: no cap. Behind a proxy, set `clientIpHeader` or every client shares the proxy's address. @default 100 */
  maxConnectionsPerIp: number
  /** Read positions (rooms in the rooms list) kept per signed-in user: joining one more room deletes their least recently read one; 0: no cap. Runtime config: `NUXT_CHAT_MAX_READ_POSITIONS`. @default 500 */
  maxReadPositions: number
  /** A header your trusted reverse proxy sets with the client address (e.g. `'x-forwarded-for'`; its last entry is used, the one the proxy added); empty: the socket address. Setting it also declares the proxy trusted for `X-Forwarded-Proto` (the origin check's scheme). @default '' */
  clientIpHeader: string
  /** Display names no guest may take, besides `server` and `system` (compared by confusable skeleton, ignoring case). @default [] */
  reservedNames: string[]
  /** Largest incoming WebSocket frame and POST body, in bytes; a larger frame closes its connection with 1009. @default 65536 */
  maxPayload: number
  /** A POST body must arrive within this many milliseconds, else it is answered `408`. @default 10000 */
  bodyTimeout: number
  /** A connection whose unsent output grows past this many bytes is closed (slow reader). @default 4194304 */
  maxBufferedBytes: number
  /** Rooms one version 2 connection may be in at once (docs/PROTOCOL.md, "Version 2"); a `join` past it is refused with `too_many_rooms`. @default 100 */
  maxRoomsPerConnection: number
  /** Heartbeat: the client pings every `interval` ms and reconnects when no pong comes within `timeout`; the server pings with WebSocket ping frames and drops a peer silent for two intervals. @default { interval: 25000, timeout: 10000 } */
  heartbeat: ChatHeartbeatOptions
  /** SSE: keep-alive comment every `keepAlive` ms; `retry` sent to EventSource. @default { keepAlive: 15000, retry: 2000 } */
  sse: { keepAlive: number, retry: number }
  /** How often an instance re-announces its users to the others (scale-out); an instance silent for 3 intervals drops out. @default 5000 */
  presenceInterval: number
  /** Longest a room new on this instance waits for the other instances' users (a newcomer's first presence list, a guest's name check, `useChatServer().presence()`); a later answer reaches the room as a `presence_diff`. Runtime config: `NUXT_CHAT_PRESENCE_WAIT`. @default 500 */
  presenceWait: number
  /** Redis URL for the bus between instances; empty: one instance. Runtime config: `NUXT_CHAT_REDIS_URL`. @default '' */
  redisUrl: string
  /** The Redis pub/sub channel of this deployment; empty: derived from the database (connector and path or URL), so apps with different databases never share one. Runtime config: `NUXT_CHAT_REDIS_CHANNEL`. @default '' */
  redisChannel: string
  /** `'memory'` keeps rooms in process memory only (tests, throwaway rooms). Runtime config: `NUXT_CHAT_STORAGE`. @default 'database' */
  storage: 'database' | 'memory'
  /** The room log's database: a db0 connector and its options (as Nitro's `database` config), or `false` for memory. The connector is fixed at build time; its `url` (`NUXT_CHAT_DATABASE_URL`) and options (`NUXT_CHAT_DATABASE_OPTIONS_*`) are runtime config. (SQLite's `path`: `.data/chat.sqlite`). @default { connector: 'node-sqlite', url: '', options: {} } */
  database: ChatDatabaseConfig | false
  /** Serve this instance's metrics (connections, rooms, messages, refusals, store latency, bus state, slow-reader drops) in Prometheus text format; `true` uses the defaults. Off unless set, as they tell how busy the app is. @default false */
  metrics: boolean | ChatMetricsOptions
  /** In development (`nuxt dev`) only: a Nuxt DevTools tab with this instance's rooms, a live feed, store and bus status, counters and a box to post as the server. Never part of a production build. @default true @buildTime */
  devtools: boolean
  /** Files and images in messages (docs/PROTOCOL.md, "Attachments"); `false` turns uploads off. @default { route: '/_chat/files', maxSize: 10485760, maxFiles: 10, bytesPerDay: 209715200, types: [], orphanTimeout: 3600000, sweepInterval: 60000, storage: 'chat-files' } */
  files: false | ChatFilesOptions
  /**
   * Streaming messages of AI members and bots (`useChatServer().stream`, docs/PROTOCOL.md "Streaming messages"):
   * at most `perRoom` open streams per room and `perInstance` per instance (a new one past them is refused),
   * a stream's text at most `maxLength` characters and its source at most `chunksPerSecond` chunks a second
   * (else it is cut: `too_long`, `rate_limited`); its text is checkpointed every `checkpoint` ms, and a stream
   * whose instance stopped checkpointing for 3 of them is stored as `interrupted` by any instance's sweep.
   * @default { maxLength: 20000, perRoom: 3, perInstance: 100, chunksPerSecond: 500, checkpoint: 2000 }
   */
  streams: ChatStreamsOptions
  /** Web Push for signed-in people with no open connection (docs/PROTOCOL.md, "Notifications"): direct messages, mentions, replies in threads they follow. `true` uses the defaults; off without both VAPID keys (`NUXT_CHAT_PUSH_VAPID_PUBLIC_KEY`, `NUXT_CHAT_PUSH_VAPID_PRIVATE_KEY`). @default false */
  push: boolean | ChatPushOptions
}

/** Limits of streaming messages (see `streams`). */
export interface ChatStreamsOptions {
  /** Longest streamed message, in UTF-16 code units (at most 1,000,000). */
  maxLength: number
  /** Open streams per room. */
  perRoom: number
  /** Open streams this instance runs. */
  perInstance: number
  /** Chunks a source may yield per second, over each second. */
  chunksPerSecond: number
  /** Milliseconds between checkpoints of a stream's text and heartbeat. */
  checkpoint: number
}

/** Web Push (docs/PROTOCOL.md, "Notifications"). */
export interface ChatPushOptions {
  /** Where subscriptions are made (`POST`), ended (`DELETE`), rooms muted (`POST <route>/mute`); the service worker is `<route>/sw.js`. @default '/_chat/push' @buildTime */
  route?: string
  /** The VAPID public key (base64url, uncompressed P-256 point): `npx web-push generate-vapid-keys`. Runtime config: `NUXT_CHAT_PUSH_VAPID_PUBLIC_KEY`. @default '' */
  vapidPublicKey?: string
  /** The VAPID private key (base64url): keep it out of `nuxt.config`, set `NUXT_CHAT_PUSH_VAPID_PRIVATE_KEY`. @default '' */
  vapidPrivateKey?: string
  /** Who runs the app, for push services (`mailto:` or `https:` URL) (`NUXT_CHAT_PUSH_SUBJECT`). @default 'mailto:admin@localhost' */
  subject?: string
  /** Messages to one absent person within this many ms make one notification ("3 new messages from Ann"). @default 5000 */
  window?: number
  /** A notification's text is shortened to this many characters. @default 120 */
  maxLength?: number
  /** Subscriptions (browsers, devices) kept per person: a new one past it replaces their oldest. @default 10 */
  maxSubscriptions?: number
  /** Rooms one person may mute for notifications. @default 500 */
  maxMutes?: number
  /** How long a push service keeps an undelivered notification, in seconds. @default 86400 */
  ttl?: number
  /** The page a notification opens; `{room}` becomes the room's id (URL-encoded). @default '/?room={room}' */
  url?: string
  /** Accept `http://127.0.0.1` / `http://localhost` endpoints (a test's own push service); otherwise an endpoint must be `https:`. @default false */
  insecureLoopback?: boolean
}

/** What the browser needs (`runtimeConfig.public.chat`). */
export interface ChatPublicRuntimeConfig {
  route: string
  sseRoute: string
  maxLength: number
  /** So a UI can stop offering to edit once the server would refuse. */
  editWindow: number
  heartbeat: ChatHeartbeatOptions
  /** Attachments: the upload route and the limits a client checks before uploading; `false`: off. */
  files?: false | { route: string, maxSize: number, maxFiles: number, types: string[] }
  /** Web Push's route (`GET <route>/key` answers the VAPID public key); empty without the `push` option. */
  pushRoute?: string
}

/** The request a hook sees: the WebSocket upgrade, the SSE GET or the POST. */
export interface ChatRequestInfo {
  url: URL
  headers: Headers
  /** The client address (see `clientIpHeader`). */
  ip?: string
}

/**
 * Context of the `chat:identify` hook: set `user` to name the peer, or throw
 * `createError({ statusCode: 401 | 403 })`. Any other exception answers 500 (and is logged).
 */
export interface ChatIdentifyContext {
  request: ChatRequestInfo
  room: string
  /** The normalized `?name=` wish, if any. */
  name?: string
  /** `?dm=<user id>`: the request opens the direct room with that user (`room` is then `''`: the room follows from who the peer is). */
  dm?: string
  /** Set by the hook: who this peer is (a signed-in user). When set, `?name=` is ignored; when not, the peer is a guest. */
  user?: ChatUser
  /**
   * Set by the hook: what `chat:join` needs to know of this person (roles, teams), kept with the
   * connection and given to every `chat:join` of it; never sent to any client.
   */
  data?: Record<string, unknown>
}

/**
 * Context of the `chat:join` hook: `user` (already identified, once per connection) enters `room`,
 * on any protocol version and carrier, and before a rooms list shows the room. Set `allow = false`
 * or `reject` (or throw `createError({ statusCode: 401 | 403 })`) to keep them out: the join is
 * refused (`forbidden`, or the thrown status) and the connection stays. Per-room rules go here.
 */
export interface ChatJoinContext {
  room: string
  user: ChatUser
  /** What `chat:identify` set as `ctx.data` for this connection (or request). */
  data?: Record<string, unknown>
  /**
   * A direct room opened by naming the other person (version 2 `dm`, version 1 `?dm=`): their id
   * as given, asked before the room is made (refuse a person who does not exist, or who blocks
   * this one). Absent when the room is joined by its `dm:` id.
   */
  dm?: string
  /** Starts true; the room's own policy (members, bans, private rooms) still applies after. */
  allow: boolean
  reject?: string
}

/**
 * Context of the `chat:message` hook: change `message`, or set `reject` (or throw
 * `createError({ statusMessage })`) to refuse it. Any other exception answers `unavailable`.
 */
export interface ChatMessageContext {
  room: string
  user: ChatUser
  message: string
  cid?: string
  /** Set by the hook to refuse the message; the sender gets an `error` frame with code `rejected` and this reason. */
  reject?: string
}

/**
 * Context of the `chat:stored` hook: one event the room log stored, on the instance that stored
 * it, once. Called after the event was delivered; delivery never waits for it, and a hook that
 * throws is logged.
 */
export interface ChatStoredContext {
  room: string
  /** The stored event as its wire frame: `message`, `edit` or `delete`. */
  frame: ChatStoredFrame
}

/**
 * Context of the `chat:mention` hook: a stored message mentions the member `uid` (by name, or by
 * an owner's or moderator's `@room` / `@here`). Called once per member (never the sender), on the
 * instance that stored the message, after it was delivered; a hook that throws is logged.
 */
export interface ChatMentionContext {
  room: string
  /** The member mentioned. */
  uid: string
  /** The stored message frame (`mentions`, `mentionsAll`). */
  frame: ChatMessageFrame
}

/**
 * Context of the `chat:action` hook: `user` wants to `edit` or `delete` message `target`.
 * `allow` starts true for the author (an edit only within `editWindow`) and false for anyone
 * else: set it to let a moderator delete others' messages. Set `reject` (or throw
 * `createError({ statusMessage })`) to refuse; the sender gets `forbidden` with the reason.
 */
export type ChatActionContext = ChatMessageActionContext | ChatMemberActionContext | ChatRoomActionContext

/** `chat:action` for a change of a message (edit, delete); owners and moderators of the room start with `allow` on deletes. */
export interface ChatMessageActionContext {
  room: string
  user: ChatUser
  action: 'edit' | 'delete'
  target: ChatMessageFrame
  allow: boolean
  reject?: string
}

/**
 * `chat:action` for a moderation command (docs/PROTOCOL.md, "Moderation commands"): `user` wants
 * to act on the person `subject` in the room. `allow` starts as the role rules say (true for the
 * app's server code); set it, or `reject`, as for edits.
 */
export interface ChatMemberActionContext {
  room: string
  /** Who acts: `{ id: 'server', name: 'server' }` for the app's server code. */
  user: ChatUser
  action: ChatMemberAction
  /** The id of the person acted on. */
  subject: string
  /** `role`: the new role. */
  role?: 'owner' | 'moderator' | 'member'
  /** `mute`: until when (epoch ms). */
  until?: number
  allow: boolean
  reject?: string
}

/**
 * `chat:action` for a room's record: `create` (a new room, `room` its id) or `update`. `allow`
 * starts true for `create` and for the app's server code, and as the record rule says for
 * `update` (owners change `visibility`; owners and moderators `title` and `topic`).
 */
export interface ChatRoomActionContext {
  room: string
  /** Who acts: `{ id: 'server', name: 'server' }` for the app's server code. */
  user: ChatUser
  action: 'create' | 'update'
  /** The record's fields as given. */
  fields: { title?: string, topic?: string, visibility?: 'public' | 'private' }
  /** `create`: the members it is made with, besides its owner. */
  members?: string[]
  allow: boolean
  reject?: string
}

/**
 * Context of the `chat:notify` hook: a notification for `uid`, who has no open connection, about
 * `messages` (one or more, batched within `push.window`). Change `title`, `body` or `url`, or set
 * `send = false` to suppress the push (and send an e-mail or use another channel yourself).
 * Called on the instance that stored the messages; a hook that throws is logged and nothing is sent.
 */
export interface ChatNotifyContext {
  uid: string
  /** The room of the newest message (`messages` may span rooms). */
  room: string
  /** The stored message frames, oldest first. */
  messages: ChatMessageFrame[]
  title: string
  body: string
  /** The page the notification opens (`push.url`). */
  url?: string
  /** Starts true: the person has a subscription; false when they have none (the hook can still reach them elsewhere). */
  send: boolean
}

/** Typed Nitro runtime hooks of nuxt-chat. */
export interface ChatRuntimeHooks {
  'chat:identify': (context: ChatIdentifyContext) => void | Promise<void>
  'chat:join': (context: ChatJoinContext) => void | Promise<void>
  'chat:message': (context: ChatMessageContext) => void | Promise<void>
  'chat:action': (context: ChatActionContext) => void | Promise<void>
  'chat:stored': (context: ChatStoredContext) => void | Promise<void>
  'chat:mention': (context: ChatMentionContext) => void | Promise<void>
  'chat:notify': (context: ChatNotifyContext) => void | Promise<void>
}
