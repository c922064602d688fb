import { addCustomTab } from '@nuxt/devtools-kit'
import type { AddChatRoute } from './routes'

/** Where the dev server serves the tab (never in a production build). */
export const DEVTOOLS_ROUTE = '/__nuxt_chat/devtools'

/**
 * The Nuxt DevTools tab (dev only): an iframe on a page the dev server serves, with its event
 * stream, its "post as the server" endpoint and its icon. Call only when `nuxt.options.dev`;
 * `underBase` puts a route under the app's base URL, where the browser reaches Nitro.
 */
export function setupDevtools(addRoute: AddChatRoute, underBase: (route: string) => string) {
  // Their own preflight: the tab is of this origin, so no other (not even one of `allowedOrigins`) gets a CORS grant.
  const options = './runtime/server/devtools/preflight.options'
  addRoute(DEVTOOLS_ROUTE, { get: './runtime/server/devtools/page.get', options })
  addRoute(`${DEVTOOLS_ROUTE}/events`, { get: './runtime/server/devtools/events.get', options })
  addRoute(`${DEVTOOLS_ROUTE}/post`, { post: './runtime/server/devtools/post.post', options })
  addRoute(`${DEVTOOLS_ROUTE}/icon.svg`, { get: './runtime/server/devtools/icon.get', options })
  addCustomTab({
    name: 'nuxt-chat',
    title: 'Chat',
    // A path, not an Iconify name: DevTools fetches unknown icon sets from esm.sh, which fails offline.
    icon: underBase(`${DEVTOOLS_ROUTE}/icon.svg`),
    view: { type: 'iframe', src: underBase(DEVTOOLS_ROUTE) },
  })
}
