/** Options of the module as the server runtime sees them (`runtimeConfig.chat`). */
import type { RateLimitOptions } from './server/utils/rateLimit'
import type { ChatUser } from './shared/protocol'

export type { RateLimitOptions }

/** A db0 connector and its options, as in Nitro's `database` config. */
export interface ChatDatabaseConfig {
  /** A db0 connector name: `node-sqlite` (`sqlite`), `postgresql`, `libsql`, `better-sqlite3`, `pglite`, … */
  connector: string
  options?: Record<string, unknown>
}

export interface ChatHeartbeatOptions {
  /** Ping every this many milliseconds (client: app-level ping; server: WebSocket ping frames). @default 25000 */
  interval: number
  /** Client side: no pong within this many milliseconds means the connection is dead. @default 10000 */
  timeout: number
}

export interface ChatRuntimeConfig {
  route: string
  sseRoute: string
  replay: number
  maxReplay: number
  maxLength: number
  history: { max: number, maxAge: number }
  rateLimit: false | RateLimitOptions
  allowedOrigins: string[]
  maxConnectionsPerIp: number
  clientIpHeader: string
  maxPayload: number
  maxBufferedBytes: number
  heartbeat: ChatHeartbeatOptions
  sse: { keepAlive: number, retry: number }
  presenceInterval: number
  redisUrl: string
  storage: 'database' | 'memory'
  database: ChatDatabaseConfig | false
}

/** What the browser needs (`runtimeConfig.public.chat`). */
export interface ChatPublicRuntimeConfig {
  route: string
  sseRoute: string
  maxLength: number
  heartbeat: ChatHeartbeatOptions
}

/** The request a hook sees: the WebSocket upgrade, the SSE GET or the POST. */
export interface ChatRequestInfo {
  url: URL
  headers: Headers
  /** The client address (see `clientIpHeader`). */
  ip?: string
}

/** Context of the `chat:identify` hook: set `user` to name the peer, or throw `createError({ statusCode: 401 | 403 })`. */
export interface ChatIdentifyContext {
  request: ChatRequestInfo
  room: string
  /** The sanitised `?name=` wish, if any. */
  name?: string
  /** Set by the hook: who this peer is. When set, `?name=` is ignored. */
  user?: ChatUser
}

/** Context of the `chat:message` hook: change `message`, or set `reject` (or throw) to refuse it. */
export interface ChatMessageContext {
  room: string
  user: ChatUser
  message: string
  cid?: string
  /** Set by the hook to refuse the message; the sender gets an `error` frame with code `rejected` and this reason. */
  reject?: string
}

/** Typed Nitro runtime hooks of nuxt-chat. */
export interface ChatRuntimeHooks {
  'chat:identify': (context: ChatIdentifyContext) => void | Promise<void>
  'chat:message': (context: ChatMessageContext) => void | Promise<void>
}
