import { defineNuxtModule, getNuxtVersion, addImports, addServerImports, addServerPlugin, addServerTemplate, addTypeTemplate, createResolver, useLogger } from '@nuxt/kit'
import { connectors } from 'db0'
import { defu } from 'defu'
import { name, version } from '../package.json'
import { trustOnlyDevServerHop } from './devServer'
import { setupDevtools } from './devtools'
import type { ChatMetricsOptions, ChatPublicRuntimeConfig, ChatPushOptions, ChatRuntimeConfig } from './runtime/types'
import { pushOptions, setupPush } from './push'
import { unsupportedStoreReason } from './runtime/server/utils/platform'
import { databaseForBuild, holdsPassword } from './runtime/server/utils/databaseConfig'
import { chatDefaults } from './runtime/defaults'
import { setupFiles } from './files'
import { chatRoutes } from './routes'

/** nuxt-chat's options (`chat` in `nuxt.config`); all but `autoImport` are also runtime config. */
export interface ModuleOptions extends ChatRuntimeConfig {
  /**
   * The name `useChat()` is auto-imported under; `false` turns the auto-import off (then
   * `import { useChat } from '#chat'`). Rename it when another module also auto-imports a
   * `useChat` (`@ai-sdk/vue`, TanStack AI): Nuxt keeps only one of them.
   * @default 'useChat'
   * @buildTime
   */
  autoImport: string | false
}

export type { ChatDatabaseConfig, ChatMetricsOptions, ChatHeartbeatOptions, ChatStreamsOptions, RateLimitOptions, ChatIdentifyContext, ChatMessageContext, ChatRequestInfo, ChatRuntimeHooks, ChatStoredContext, ChatMentionContext, ChatActionContext, ChatMessageActionContext, ChatMemberActionContext, ChatRoomActionContext, ChatNotifyContext, ChatPushOptions } from './runtime/types'
export type { ChatSearchHit, ChatSearchRequest, ChatSearchResultsFrame } from './runtime/shared/search'
export type { ChatServer, ChatServerSendOptions, ChatServerSearchOptions, ChatHistoryOptions, ChatRoomInput, RoomRecord, RoomMember } from './runtime/server/utils/useChatServer'
export type * from './runtime/shared/protocol'
export type { ChatRoomMatcher, InferChatPayload } from './runtime/server/utils/chatSchema'
export type { ChatStreamHandle, ChatStreamOptions, ChatStreamResult, ChatStreamSource, ChatStreamSourceInput, ChatAiMessage, ChatAiMessagesOptions } from './runtime/server/utils/useChatServer'
export type { ChatUiMessage, ChatUiMetadata, ChatUiOptions, ChatUiTextPart, UseChatUiReturn } from './runtime/app/chatUi'
export type { ChatMessage, ChatThreadView, UseChatOptions, UseChatReturn, ChatStatus } from './runtime/app/composables/useChat'
export type { ChatRoomEntry, UseChatRoomsOptions, UseChatRoomsReturn, ChatNewRoom, ChatRoomCommandResult, ChatRoomCommands, ChatSearchOptions } from './runtime/app/composables/useChatRooms'
export type { ChatNotificationPermission, ChatPushState, UseChatNotificationsOptions, UseChatNotificationsReturn } from './runtime/app/composables/useChatNotifications'

export default defineNuxtModule<ModuleOptions>({
  meta: {
    name,
    version,
    configKey: 'chat',
    compatibility: { nuxt: '>=4.0.0' },
  },
  defaults: chatDefaults,
  onInstall() {
    useLogger(name).info('useChat() is ready. By default chat history goes to .data/chat.sqlite in your app: keep .data out of git.')
  },
  onUpgrade(_nuxt, _options, previousVersion) {
    useLogger(name).info(`upgraded from ${previousVersion} to ${version}: see the CHANGELOG.`)
  },
  setup(options, nuxt) {
    const resolver = createResolver(import.meta.url)
    const connectorPath = options.database ? connectors[options.database.connector as keyof typeof connectors] : undefined
    if (options.database && !connectorPath) throw new Error(`[nuxt-chat] unknown db0 connector "${options.database.connector}"`)
    // A Node.js that cannot run the store stops the build (or `nuxi dev`) here, in one line.
    const unsupported = options.storage !== 'memory' && options.database ? unsupportedStoreReason(options.database.connector) : undefined
    if (unsupported) throw Object.assign(new Error(unsupported), { stack: unsupported })
    // SQLite's default file, relative to the app, only for SQLite; any other connector's URL comes at run time.
    if (options.database) options.database = databaseForBuild(options.database, nuxt.options.rootDir)
    if (options.database && holdsPassword(options.database)) useLogger(name).warn('chat.database holds a password, which is built into .output: leave it out of nuxt.config and set NUXT_CHAT_DATABASE_URL when the server starts.')

    // `nuxi dev` proxies every request to the app: the client's address is the one its listener adds, never one the client sent.
    if (nuxt.options.dev) trustOnlyDevServerHop(nuxt, options)

    // `metrics: true` means the defaults; an object always carries `token`, so NUXT_CHAT_METRICS_TOKEN can set it.
    if (options.metrics) options.metrics = defu(options.metrics === true ? {} : options.metrics, { route: '/_chat/metrics', token: '' })

    // `push: true` means the defaults; an object always carries its keys, so NUXT_CHAT_PUSH_* can set them.
    if (options.push) options.push = pushOptions(options.push)

    // The user's values win over the module's.
    const { autoImport, ...serverOptions } = options
    const runtimeConfig = nuxt.options.runtimeConfig as { chat?: ChatRuntimeConfig, public: { chat?: ChatPublicRuntimeConfig } }
    runtimeConfig.chat = defu(runtimeConfig.chat, serverOptions)
    // The browser reaches the chat under the app's base URL (`app.baseURL`), where Nitro serves it.
    const underBase = (route: string) => `${nuxt.options.app.baseURL.replace(/\/+$/, '')}${route}`
    runtimeConfig.public.chat = defu(runtimeConfig.public.chat, {
      route: underBase(options.route),
      sseRoute: underBase(options.sseRoute),
      maxLength: options.maxLength,
      editWindow: options.editWindow,
      heartbeat: options.heartbeat,
      pushRoute: options.push ? underBase((options.push as ChatPushOptions).route!) : '',
    })

    // App
    const composable = resolver.resolve('./runtime/app/composables/useChat')
    nuxt.options.alias['#chat'] = composable
    if (autoImport) addImports({ name: 'useChat', as: autoImport, from: composable })
    addImports({ name: 'useChatRooms', from: resolver.resolve('./runtime/app/composables/useChatRooms') })
    // Without `push` it answers `unsupported`: a page may use it before push is configured.
    addImports({ name: 'useChatNotifications', from: resolver.resolve('./runtime/app/composables/useChatNotifications') })
    addImports(['useChatUi', 'toChatUiMessages'].map(name => ({ name, from: resolver.resolve('./runtime/app/chatUi') })))
    const chatSchema = resolver.resolve('./runtime/server/utils/chatSchema')
    addImports({ name: 'InferChatPayload', from: chatSchema, type: true })

    // Server
    // Nuxt 5 runs Nitro 3 (h3 2, crossws 0.4): its flag, hook types and ./runtime/server/utils/nitroV3.ts.
    const nitroMajor = Number.parseInt(getNuxtVersion(nuxt)) >= 5 ? 3 : 2
    const nitroConfig = nuxt.options.nitro as typeof nuxt.options.nitro & { features?: Record<string, unknown> }
    if (nitroMajor === 3) nitroConfig.features = defu(nitroConfig.features, { websocket: true })
    else nitroConfig.experimental = defu(nitroConfig.experimental, { websocket: true })
    addServerTemplate({
      filename: '#nuxt-chat/nitro',
      getContents: () => `export * from '${resolver.resolve(`./runtime/server/utils/nitroV${nitroMajor}`)}'`,
    })
    addServerTemplate({
      filename: '#nuxt-chat/connector',
      getContents: () => connectorPath ? `export { default } from '${connectorPath}'` : 'export default undefined',
    })
    // Each route answers a preflight, and the methods it does not serve 405, not with the app's page (docs/PROTOCOL.md, "Methods").
    const addRoute = chatRoutes(resolver)
    // The upgrade, or without one the admission probe.
    addRoute(options.route, { get: './runtime/server/api/wsEndpoint' })
    addRoute(options.sseRoute, { get: './runtime/server/api/sse.get', post: './runtime/server/api/sse.post' })
    addRoute(`${options.sseRoute}/search`, { get: './runtime/server/api/search.get' })
    addServerPlugin(resolver.resolve('./runtime/server/plugins/chat'))
    if (options.metrics) addRoute((options.metrics as ChatMetricsOptions).route!, { get: './runtime/server/api/metrics.get' })
    if (options.files) setupFiles(resolver, addRoute, nuxt, options.files, underBase)
    addServerImports([
      { name: 'defineChatSchema', from: chatSchema },
      { name: 'InferChatPayload', from: chatSchema, type: true },
      { name: 'useChatServer', from: resolver.resolve('./runtime/server/utils/useChatServer') },
    ])
    if (options.push) setupPush(addRoute, options.push as ChatPushOptions)
    if (nuxt.options.dev && options.devtools) setupDevtools(addRoute, underBase)
    addTypeTemplate({
      filename: 'types/nuxt-chat.d.ts',
      getContents: () => `import type { ChatRuntimeHooks } from '${resolver.resolve('./runtime/types')}'
declare module '${nitroMajor === 3 ? 'nitro/types' : 'nitropack/types'}' {
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
