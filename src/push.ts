import { addServerHandler, type Resolver } from '@nuxt/kit'
import { defu } from 'defu'
import type { ChatPushOptions } from './runtime/types'
import { pushDefaults } from './runtime/defaults'

/** `push: true` or a partial object, with every default (docs/configuration.md): the keys are there, empty, so `NUXT_CHAT_PUSH_*` can set them at run time. */
export function pushOptions(push: true | ChatPushOptions): Required<ChatPushOptions> {
  return defu(push === true ? {} : push, pushDefaults)
}

/** Web Push's routes (docs/PROTOCOL.md, "Notifications"). */
export function setupPush(resolver: Resolver, push: ChatPushOptions) {
  const route = push.route!
  addServerHandler({ route, method: 'post', handler: resolver.resolve('./runtime/server/api/push.post') })
  addServerHandler({ route, method: 'delete', handler: resolver.resolve('./runtime/server/api/push.delete') })
  addServerHandler({ route: `${route}/mute`, method: 'post', handler: resolver.resolve('./runtime/server/api/pushMute.post') })
  addServerHandler({ route: `${route}/mute`, method: 'get', handler: resolver.resolve('./runtime/server/api/pushMute.get') })
  addServerHandler({ route: `${route}/key`, method: 'get', handler: resolver.resolve('./runtime/server/api/pushKey.get') })
  // JSON bodies and DELETE: a page of another allowed origin asks first.
  for (const asked of [route, `${route}/mute`]) addServerHandler({ route: asked, method: 'options', handler: resolver.resolve('./runtime/server/api/preflight.options') })
  addServerHandler({ route: `${route}/sw.js`, method: 'get', handler: resolver.resolve('./runtime/server/api/pushWorker.get') })
}
