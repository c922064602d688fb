import { defu } from 'defu'
import type { AddChatRoute } from './routes'
import type { ChatPushOptions } from './runtime/types'
import { pushDefaults } from './runtime/defaults'

/** `push: true` or a partial object, with every default (docs/configuration.md): the keys are there, empty, so `NUXT_CHAT_PUSH_*` can set them at run time. */
export function pushOptions(push: true | ChatPushOptions): Required<ChatPushOptions> {
  return defu(push === true ? {} : push, pushDefaults)
}

/** Web Push's routes (docs/PROTOCOL.md, "Notifications"). */
export function setupPush(addRoute: AddChatRoute, push: ChatPushOptions) {
  const route = push.route!
  // JSON bodies and DELETE: a page of another allowed origin asks first (the preflight every route answers).
  addRoute(route, { post: './runtime/server/api/push.post', delete: './runtime/server/api/push.delete' })
  addRoute(`${route}/mute`, { get: './runtime/server/api/pushMute.get', post: './runtime/server/api/pushMute.post' })
  addRoute(`${route}/key`, { get: './runtime/server/api/pushKey.get' })
  addRoute(`${route}/sw.js`, { get: './runtime/server/api/pushWorker.get' })
}
