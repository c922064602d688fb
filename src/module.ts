import { defineNuxtModule, addImports, addServerHandler, addServerImports, addServerPlugin, addServerTemplate, addTypeTemplate, createResolver } from '@nuxt/kit'
import { connectors } from 'db0'
import { defu } from 'defu'
import type { ChatPublicRuntimeConfig, ChatRuntimeConfig } from './runtime/types'

/** nuxt-chat's options (`chat` in `nuxt.config`); every one is also runtime config. */
export type ModuleOptions = ChatRuntimeConfig

export type { ChatDatabaseConfig, ChatHeartbeatOptions, RateLimitOptions, ChatIdentifyContext, ChatMessageContext, ChatRequestInfo, ChatRuntimeHooks, ChatStoredContext, ChatActionContext } from './runtime/types'
export type { ChatServer, ChatServerSendOptions, ChatHistoryOptions } from './runtime/server/utils/useChatServer'
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
    editWindow: 0,
    history: { max: 10_000, maxAge: 0, interval: 60_000 },
    rateLimit: { messages: 20, interval: 10_000, burst: 10 },
    rateLimitPerIp: { messages: 60, interval: 10_000, burst: 30 },
    allowedOrigins: [],
    maxConnectionsPerIp: 100,
    clientIpHeader: '',
    reservedNames: [],
    maxPayload: 64 * 1024,
    bodyTimeout: 10_000,
    maxBufferedBytes: 4 * 1024 * 1024,
    heartbeat: { interval: 25_000, timeout: 10_000 },
    sse: { keepAlive: 15_000, retry: 2000 },
    presenceInterval: 5000,
    redisUrl: '',
    redisChannel: '',
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
    addServerHandler({ route: options.route, handler: resolver.resolve('./runtime/server/api/wsEndpoint') })
    addServerHandler({ route: options.sseRoute, method: 'get', handler: resolver.resolve('./runtime/server/api/sse.get') })
    addServerHandler({ route: options.sseRoute, method: 'head', handler: resolver.resolve('./runtime/server/api/sse.get') })
    addServerHandler({ route: options.sseRoute, method: 'post', handler: resolver.resolve('./runtime/server/api/sse.post') })
    addServerHandler({ route: options.sseRoute, method: 'options', handler: resolver.resolve('./runtime/server/api/sse.options') })
    addServerPlugin(resolver.resolve('./runtime/server/plugins/chat'))
    addServerImports([{ name: 'useChatServer', from: resolver.resolve('./runtime/server/utils/useChatServer') }])
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
