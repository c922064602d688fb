import { addCustomTab } from '@nuxt/devtools-kit'
import { addServerHandler, type Resolver } from '@nuxt/kit'

/** Where the dev server serves the tab (never in a production build). */
export const DEVTOOLS_ROUTE = '/__nuxt_chat/devtools'

/**
 * The Nuxt DevTools tab (dev only): an iframe on a page the dev server serves, with its event
 * stream, its "post as the server" endpoint and its icon. Call only when `nuxt.options.dev`;
 * `underBase` puts a route under the app's base URL, where the browser reaches Nitro.
 */
export function setupDevtools(resolver: Resolver, underBase: (route: string) => string) {
  addServerHandler({ route: DEVTOOLS_ROUTE, method: 'get', handler: resolver.resolve('./runtime/server/devtools/page.get') })
  addServerHandler({ route: `${DEVTOOLS_ROUTE}/events`, method: 'get', handler: resolver.resolve('./runtime/server/devtools/events.get') })
  addServerHandler({ route: `${DEVTOOLS_ROUTE}/post`, method: 'post', handler: resolver.resolve('./runtime/server/devtools/post.post') })
  addServerHandler({ route: `${DEVTOOLS_ROUTE}/icon.svg`, method: 'get', handler: resolver.resolve('./runtime/server/devtools/icon.get') })
  addCustomTab({
    name: 'nuxt-chat',
    title: 'Chat',
    // A path, not an Iconify name: DevTools fetches unknown icon sets from esm.sh, which fails offline.
    icon: underBase(`${DEVTOOLS_ROUTE}/icon.svg`),
    view: { type: 'iframe', src: underBase(DEVTOOLS_ROUTE) },
  })
}
