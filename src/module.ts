import { defineNuxtModule, addImports, addServerHandler, addServerPlugin, addServerTemplate, addTypeTemplate, createResolver } from '@nuxt/kit'
import { connectors } from 'db0'
import { defu } from 'defu'
import type { ChatDatabaseConfig, ChatHeartbeatOptions, ChatPublicRuntimeConfig, ChatRuntimeConfig, RateLimitOptions } from './runtime/types'

export interface ModuleOptions {
  /** WebSocket endpoint. @default '/_ws' */
  route: string
  /** SSE endpoint: GET streams a room, POST sends into it. @default '/api/sse' */
  sseRoute: string
  /** Messages replayed to a client that connects without a cursor. @default 50 */
  replay: number
  /** Most messages replayed after a cursor (`since` / `Last-Event-ID`). @default 1000 */
  maxReplay: number
  /** Longest message, in characters (UTF-16 code units). @default 2000 */
  maxLength: number
  /** Retention per room: at most `max` messages, and none older than `maxAge` ms (0: no age limit). @default { max: 10000, maxAge: 0 } */
  history: { max: number, maxAge: number }
  /** Per-connection token bucket (and per user/address for POST); `false` turns it off. @default { messages: 20, interval: 10000, burst: 10 } */
  rateLimit: false | RateLimitOptions
  /** Origins allowed besides the app's own, for browser upgrades, SSE and POST; `'*'` allows all. @default [] */
  allowedOrigins: string[]
  /** Open connections per client address (WebSocket + SSE); 0: no cap. @default 0 */
  maxConnectionsPerIp: number
  /** A header set by your trusted reverse proxy that carries the client address (e.g. `'x-forwarded-for'`); empty: the socket address. @default '' */
  clientIpHeader: string
  /** Largest incoming WebSocket frame and POST body, in bytes; a larger frame closes its connection with 1009. @default 65536 */
  maxPayload: number
  /** A connection whose unsent output grows past this many bytes is closed (slow reader). @default 4194304 */
  maxBufferedBytes: number
  /** Heartbeat: the client pings every `interval` ms and reconnects when no pong comes within `timeout`; the server pings with WebSocket ping frames and drops a peer silent for two intervals. @default { interval: 25000, timeout: 10000 } */
  heartbeat: ChatHeartbeatOptions
  /** SSE: keep-alive comment every `keepAlive` ms; `retry` sent to EventSource. @default { keepAlive: 15000, retry: 2000 } */
  sse: { keepAlive: number, retry: number }
  /** How often an instance re-announces its users to the others (scale-out); an instance silent for 3 intervals drops out. @default 5000 */
  presenceInterval: number
  /** Redis URL for the bus between instances; empty: one instance. Runtime config: `NUXT_CHAT_REDIS_URL`. @default '' */
  redisUrl: string
  /** `'memory'` keeps rooms in process memory only (tests, throwaway rooms). Runtime config: `NUXT_CHAT_STORAGE`. @default 'database' */
  storage: 'database' | 'memory'
  /** The room log's database: a db0 connector and its options (as Nitro's `database` config), or `false` for memory. The connector is fixed at build time; its options are runtime config (`NUXT_CHAT_DATABASE_OPTIONS_*`). @default { connector: 'node-sqlite', options: { path: '.data/chat.sqlite' } } */
  database: ChatDatabaseConfig | false
}

export type { ChatDatabaseConfig, ChatHeartbeatOptions, RateLimitOptions, ChatIdentifyContext, ChatMessageContext, ChatRequestInfo, ChatRuntimeHooks } from './runtime/types'
export type * from './runtime/shared/protocol'
export type { ChatMessage, UseChatOptions, UseChatReturn, ChatStatus } from './runtime/app/composables/useChat'

export default defineNuxtModule<ModuleOptions>({
  meta: {
    name: 'nuxt-chat',
    configKey: 'chat',
    compatibility: { nuxt: '>=4.0.0' },
  },
  defaults: {
    route: '/_ws',
    sseRoute: '/api/sse',
    replay: 50,
    maxReplay: 1000,
    maxLength: 2000,
    history: { max: 10_000, maxAge: 0 },
    rateLimit: { messages: 20, interval: 10_000, burst: 10 },
    allowedOrigins: [],
    maxConnectionsPerIp: 0,
    clientIpHeader: '',
    maxPayload: 64 * 1024,
    maxBufferedBytes: 4 * 1024 * 1024,
    heartbeat: { interval: 25_000, timeout: 10_000 },
    sse: { keepAlive: 15_000, retry: 2000 },
    presenceInterval: 5000,
    redisUrl: '',
    storage: 'database',
    database: { connector: 'node-sqlite', options: { path: '.data/chat.sqlite' } },
  },
  setup(options, nuxt) {
    const resolver = createResolver(import.meta.url)
    const connectorPath = options.database ? connectors[options.database.connector as keyof typeof connectors] : undefined
    if (options.database && !connectorPath) throw new Error(`[nuxt-chat] unknown db0 connector "${options.database.connector}"`)

    // The user's values win over the module's.
    const runtimeConfig = nuxt.options.runtimeConfig as { chat?: ChatRuntimeConfig, public: { chat?: ChatPublicRuntimeConfig } }
    runtimeConfig.chat = defu(runtimeConfig.chat, options)
    runtimeConfig.public.chat = defu(runtimeConfig.public.chat, {
      route: options.route,
      sseRoute: options.sseRoute,
      maxLength: options.maxLength,
      heartbeat: options.heartbeat,
    })

    // App
    addImports({ name: 'useChat', from: resolver.resolve('./runtime/app/composables/useChat') })

    // Server
    nuxt.options.nitro.experimental = defu(nuxt.options.nitro.experimental, { websocket: true })
    addServerTemplate({
      filename: '#nuxt-chat/connector',
      getContents: () => connectorPath ? `export { default } from '${connectorPath}'` : 'export default undefined',
    })
    addServerHandler({ route: options.route, handler: resolver.resolve('./runtime/server/api/ws') })
    addServerHandler({ route: options.sseRoute, method: 'get', handler: resolver.resolve('./runtime/server/api/sse.get') })
    addServerHandler({ route: options.sseRoute, method: 'post', handler: resolver.resolve('./runtime/server/api/sse.post') })
    addServerPlugin(resolver.resolve('./runtime/server/plugins/chat'))
    addTypeTemplate({
      filename: 'types/nuxt-chat.d.ts',
      getContents: () => `import type { ChatRuntimeHooks } from '${resolver.resolve('./runtime/types')}'
declare module 'nitropack/types' {
  interface NitroRuntimeHooks extends ChatRuntimeHooks {}
}
export {}
`,
    }, { nitro: true, nuxt: true })
  },
})

declare module '@nuxt/schema' {
  interface RuntimeConfig {
    chat: import('./runtime/types').ChatRuntimeConfig
  }
  interface PublicRuntimeConfig {
    chat: import('./runtime/types').ChatPublicRuntimeConfig
  }
}
