import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { useLogger } from '@nuxt/kit'
import type { Nuxt } from '@nuxt/schema'

/** The header the chat reads the client address from under `nuxi dev`, after the dev server added its entry. */
const DEV_CLIENT_IP_HEADER = 'x-forwarded-for'

/**
 * Append `value` to a comma-separated header the client sent, as a proxy adds its hop after the
 * client's own entries. A header the client did not send is left to Nitro's dev proxy, which sets
 * it from the same socket (and other dev middleware, Nuxt DevTools', sees the request as before).
 */
function appendEntry(request: IncomingMessage, name: string, value: string) {
  const given = request.headers[name]
  if (given === undefined) return
  request.headers[name] = `${Array.isArray(given) ? given.join(', ') : given}, ${value}`
}

/** What nuxi's listener saw of the client: its own socket's address and scheme, after anything the client claimed. */
function addOwnHop(request: IncomingMessage) {
  // No address (a Unix socket): one shared key, so the per-address caps still count these clients.
  appendEntry(request, 'x-forwarded-for', request.socket.remoteAddress ?? 'unknown')
  appendEntry(request, 'x-forwarded-proto', (request.socket as TLSSocket).encrypted ? 'https' : 'http')
}

/**
 * Under `nuxi dev` (call only when `nuxt.options.dev`): the app runs behind Nitro's dev proxy,
 * which keeps an `X-Forwarded-For` or `X-Forwarded-Proto` the client sent and adds nothing
 * then, so a client could pick its own address for the per-address limits. The dev server's
 * listener appends the address and scheme of the socket it accepted to such a header, on every
 * request and upgrade before anything else reads it, and the chat reads the last entry.
 */
export function trustOnlyDevServerHop(nuxt: Nuxt, options: { clientIpHeader: string }) {
  if (options.clientIpHeader && options.clientIpHeader.toLowerCase() !== DEV_CLIENT_IP_HEADER) {
    useLogger('nuxt-chat').info(`\`clientIpHeader: '${options.clientIpHeader}'\` applies to production builds; under nuxi dev the client address is the one the dev server saw.`)
  }
  options.clientIpHeader = DEV_CLIENT_IP_HEADER
  nuxt.hook('listen', (server) => {
    for (const event of ['request', 'upgrade'] as const) server.prependListener(event, addOwnHop)
  })
}
