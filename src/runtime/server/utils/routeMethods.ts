// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../routes.d.ts" />
import type { H3Event } from 'h3'
// The module picks ./nitroV2.ts or ./nitroV3.ts for the app's Nitro.
import { matchedRoute, setResponseHeader } from '#nuxt-chat/nitro'
import { allowedMethods } from '#nuxt-chat/routes'

/** Answer with `Allow`: the methods the request's route serves (docs/PROTOCOL.md, "Methods"); returns them. */
export function announceMethods(event: H3Event): string {
  const allow = allowedMethods[matchedRoute(event)] ?? ''
  setResponseHeader(event, 'allow', allow)
  return allow
}
