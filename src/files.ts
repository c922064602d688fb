import { addServerPlugin, type Resolver } from '@nuxt/kit'
import type { Nuxt } from '@nuxt/schema'
import type { AddChatRoute } from './routes'
import type { ChatFilesOptions, ChatPublicRuntimeConfig } from './runtime/types'

/**
 * Attachments (docs/PROTOCOL.md, "Attachments"): the upload and fetch routes, the sweep plugin,
 * the browser's copy of the limits, and a filesystem mount for `files.storage` unless the app
 * configured one (any unstorage driver: S3, Redis, Azure, …).
 */
export function setupFiles(resolver: Resolver, addRoute: AddChatRoute, nuxt: Nuxt, files: ChatFilesOptions, underBase: (route: string) => string) {
  // Nitro's own config type, which Nuxt's schema leaves out.
  const nitro = nuxt.options.nitro as { storage?: Record<string, { driver: string, [option: string]: unknown }> }
  nitro.storage ||= {}
  // Relative: under the server's working directory, like `.data/chat.sqlite` when started from the app's root.
  nitro.storage[files.storage] ??= { driver: 'fs', base: '.data/chat-files' }
  // An upload names its file in a header: a page of another allowed origin asks first (the preflight every route answers).
  addRoute(files.route, { post: './runtime/server/api/files.post' })
  addRoute(`${files.route}/:id`, { get: './runtime/server/api/files.get' })
  addServerPlugin(resolver.resolve('./runtime/server/plugins/chatFiles'))
  const publicChat = (nuxt.options.runtimeConfig.public as { chat: ChatPublicRuntimeConfig }).chat
  publicChat.files = { route: underBase(files.route), maxSize: files.maxSize, maxFiles: files.maxFiles, types: files.types }
}
