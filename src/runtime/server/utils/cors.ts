// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ./nitroV2.ts or ./nitroV3.ts for the app's Nitro.
import { getRequestHeader, setResponseHeader } from '#nuxt-chat/nitro'
import type { ChatRuntimeConfig } from '../../types'
import { isListedOrigin } from './access'

/** Request headers the routes read (besides cookies): a preflight asking for others is answered with these only. */
const ALLOWED_HEADERS = 'content-type, last-event-id, x-file-name, x-file-preview'
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE = 600

/** The request's `Origin` when `allowedOrigins` lists it (or holds `'*'`), else `undefined`. */
export function allowedCrossOrigin(event: H3Event, config: ChatRuntimeConfig): string | undefined {
  const origin = getRequestHeader(event, 'origin')
  if (!origin) return undefined
  return isListedOrigin(origin, config.allowedOrigins) ? origin : undefined
}

/**
 * Let a browser page from an allowed origin read this answer, with cookies: EventSource with
 * `withCredentials` and `fetch(…, { credentials: 'include' })`. Other origins get no CORS header.
 */
export function allowCrossOrigin(event: H3Event, config: ChatRuntimeConfig): boolean {
  // The answer depends on the Origin: caches must not serve one origin's answer to another.
  setResponseHeader(event, 'vary', 'Origin')
  const origin = allowedCrossOrigin(event, config)
  if (!origin) return false
  setResponseHeader(event, 'access-control-allow-origin', origin)
  setResponseHeader(event, 'access-control-allow-credentials', 'true')
  return true
}

/** Headers of a successful preflight answer (with `allowCrossOrigin`'s): `methods` are the route's own, its `Allow` (routeMethods.ts). */
export function allowPreflight(event: H3Event, methods: string): void {
  setResponseHeader(event, 'access-control-allow-methods', methods)
  setResponseHeader(event, 'access-control-allow-headers', ALLOWED_HEADERS)
  setResponseHeader(event, 'access-control-max-age', PREFLIGHT_MAX_AGE)
}
