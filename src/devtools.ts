import { addCustomTab } from '@nuxt/devtools-kit'
import { addServerHandler, type Resolver } from '@nuxt/kit'

/** Where the dev server serves the tab (never in a production build). */
export const DEVTOOLS_ROUTE = '/__nuxt_chat/devtools'

/**
 * The Nuxt DevTools tab (dev only): an iframe on a page the dev server serves, with its event
 * stream and its "post as the server" endpoint. Call only when `nuxt.options.dev`.
 */
export function setupDevtools(resolver: Resolver) {
  addServerHandler({ route: DEVTOOLS_ROUTE, method: 'get', handler: resolver.resolve('./runtime/server/devtools/page.get') })
  addServerHandler({ route: `${DEVTOOLS_ROUTE}/events`, method: 'get', handler: resolver.resolve('./runtime/server/devtools/events.get') })
  addServerHandler({ route: `${DEVTOOLS_ROUTE}/post`, method: 'post', handler: resolver.resolve('./runtime/server/devtools/post.post') })
  addCustomTab({
    name: 'nuxt-chat',
    title: 'Chat',
    icon: 'carbon:chat',
    view: { type: 'iframe', src: DEVTOOLS_ROUTE },
  })
}
